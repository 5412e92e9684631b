// docs/postfix.md's master.cf services (A: mailbag-uux in Debian's uucp line; B:
// mailbag enqueue), its transport map and its environment lines, read from the page and
// pasted into a real Postfix with only the program paths, the user and the
// configuration file changed. Neither service line names a configuration: the spool
// must come from MAILBAG_CONFIG as the page's import_environment/export_environment
// pass it, and mail for the map's domains must reach peer hub with its envelope.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { havePostfix, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { repoRoot, removeTempDir } from '../helpers/mta-common.js';
import { jobIds, makeMailbagSite, newJobs } from '../helpers/mta-site.js';
import { splitBsmtp } from '../helpers/spool-jobs.js';
import { docSnippet } from './docs-snippet.js';

const lines = (name: string): string[] =>
  docSnippet('postfix.md', name)
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('#'));

describe.skipIf(!havePostfix())('docs/postfix.md: the services, transport map and environment in a real Postfix', () => {
  let pf: PostfixInstance;
  let dir: string;
  let spool: string;

  beforeAll(async () => {
    const site = await makeMailbagSite('docs-postfix');
    ({ dir, spool } = site);
    const localise = (l: string): string =>
      l
        .replace('/usr/local/bin/mailbag-uux', join(repoRoot, 'dist/bin/mailbag-uux.cjs'))
        .replace('/usr/local/bin/mailbag', join(repoRoot, 'dist/bin/mailbag.cjs'))
        .replace('user=mailbag ', `user=${site.user.name} `)
        .replace('MAILBAG_CONFIG=/etc/mailbag/site.toml', `MAILBAG_CONFIG=${site.config}`);
    const masterA = lines('postfix-master-a').map(localise);
    const masterB = lines('postfix-master-b').map(localise);
    expect(masterA[0]).toMatch(/^uucp\s+unix\s/);
    expect(masterB[0]).toMatch(/^mailbag\s+unix\s/);
    for (const l of [...masterA, ...masterB]) expect(l).not.toMatch(/--config/);
    // the map's entries as written (the harness serves them as texthash: no postmap here)
    const map = lines('postfix-transport').filter((l) => !l.includes('='));
    const transports = Object.fromEntries(map.map((l) => l.trim().split(/\s+/) as [string, string]));
    expect(transports).toEqual({ 'example.org': 'mailbag:hub', '.example.org': 'mailbag:hub' });
    pf = await startPostfix({
      masterCf: [masterA.join('\n'), masterB.join('\n')],
      transports: { ...transports, 'uux.test': 'uucp:hub' },
      mainCf: lines('postfix-environment').map(localise),
      user: site.user,
    });
  }, 120_000);

  afterAll(async () => {
    await pf?.stop();
    if (dir) removeTempDir(dir);
  });

  test('B: mail for example.org and a subdomain becomes an rmail job for hub, spool from MAILBAG_CONFIG', async () => {
    const before = await jobIds(spool, 'hub');
    const r = await pf.sendmail(['-f', 'alice@elsewhere.test', '--', 'bob@example.org', 'carol@sub.example.org'], 'Subject: B\n\nhello\n');
    expect(r.code, r.stderr).toBe(0);
    await pf.waitLog(/to=<carol@sub\.example\.org>.*relay=mailbag.*status=sent/);
    await pf.waitLog(/to=<bob@example\.org>.*relay=mailbag.*status=sent/);
    const jobs = await newJobs(spool, 'hub', before);
    expect(jobs.every((j) => j.header.command === 'rmail' && j.header.sender === 'alice@elsewhere.test')).toBe(true);
    expect(jobs.flatMap((j) => [...j.header.recipients]).sort()).toEqual(['bob@example.org', 'carol@sub.example.org']);
  });

  test('B: a bounce (null sender) becomes a BSMTP job with MAIL FROM:<>', async () => {
    const before = await jobIds(spool, 'hub');
    const r = await pf.sendmail(['-f', '', '--', 'dave@example.org'], 'Subject: bounce\n\nsorry\n');
    expect(r.code, r.stderr).toBe(0);
    await pf.waitLog(/to=<dave@example\.org>.*relay=mailbag.*status=sent/);
    const jobs = await newJobs(spool, 'hub', before);
    expect(jobs).toHaveLength(1);
    expect(splitBsmtp(jobs[0]!.payload).map((t) => [t.mailFrom, t.rcptTo])).toEqual([['', ['dave@example.org']]]);
  });

  test('A: the uucp service line with mailbag-uux queues an rmail job with the sender', async () => {
    const before = await jobIds(spool, 'hub');
    const r = await pf.sendmail(['-f', 'erin@elsewhere.test', '--', 'frank@uux.test'], 'Subject: A\n\nhello\n');
    expect(r.code, r.stderr).toBe(0);
    await pf.waitLog(/to=<frank@uux\.test>.*relay=uucp.*status=sent/);
    const jobs = await newJobs(spool, 'hub', before);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.header).toMatchObject({ command: 'rmail', sender: 'erin@elsewhere.test', recipients: ['frank@uux.test'] });
  });
});
