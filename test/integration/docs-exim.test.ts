// docs/exim.md's recommended router and transport, read from the page and pasted into a
// real Exim's configuration with only the program path, the user and the configuration
// file changed: Exim must accept the configuration as written (a comment after a value
// is part of the value in Exim, which the page once had), and a message to the page's
// domains must become one BSMTP job for the page's peer, a bounce with `MAIL FROM:<>`.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { haveExim, startExim, type EximInstance } from '../helpers/exim.js';
import { repoRoot, removeTempDir } from '../helpers/mta-common.js';
import { jobIds, makeMailbagSite, newJobs } from '../helpers/mta-site.js';
import { splitBsmtp } from '../helpers/spool-jobs.js';
import { docSnippet } from './docs-snippet.js';

const mailbagCjs = join(repoRoot, 'dist/bin/mailbag.cjs');

describe.skipIf(!haveExim())('docs/exim.md: the recommended router and transport in a real Exim', () => {
  let ex: EximInstance;
  let dir: string;
  let spool: string;

  beforeAll(async () => {
    const site = await makeMailbagSite('docs-exim');
    ({ dir, spool } = site);
    const text = docSnippet('exim.md', 'exim-bsmtp')
      .replaceAll('/usr/local/bin/mailbag', mailbagCjs)
      .replaceAll('/etc/mailbag/mailbag.toml', site.config)
      .replace(/^(\s*(?:user|group)\s*=\s*)mailbag$/gm, `$1${site.user.name}`);
    const at = text.indexOf('begin transports');
    expect(text.startsWith('begin routers\n')).toBe(true);
    expect(at).toBeGreaterThan(0);
    ex = await startExim({
      routers: text.slice('begin routers\n'.length, at),
      transports: text.slice(at + 'begin transports\n'.length),
      user: site.user,
    });
  });

  afterAll(() => {
    ex?.stop();
    if (dir) removeTempDir(dir);
  });

  test('Exim takes the configuration as the page writes it', async () => {
    const r = await ex.exim(['-bV']);
    expect(`${r.stdout.toString()}${r.stderr}`).not.toMatch(/configuration error/i);
    expect(r.code, r.stderr).toBe(0);
  });

  test('two recipients of the page\'s domains: one BSMTP job for peer hub with both', async () => {
    const before = await jobIds(spool, 'hub');
    const r = await ex.submit('alice@elsewhere.test', ['bob@example.org', 'carol@sub.example.org'], 'Subject: docs\n\nhello\n');
    expect(r.code, r.stderr).toBe(0);
    await ex.waitLog(/[-=]> carol@sub\.example\.org .*T=mailbag_bsmtp/);
    const jobs = await newJobs(spool, 'hub', before);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.header).toMatchObject({ to: 'hub', command: 'rsmtp', sender: 'alice@elsewhere.test' });
    expect([...jobs[0]!.header.recipients].sort()).toEqual(['bob@example.org', 'carol@sub.example.org']);
  });

  test('a bounce keeps its null sender', async () => {
    const before = await jobIds(spool, 'hub');
    const r = await ex.submit('<>', ['dave@example.org'], 'Subject: bounce\n\nsorry\n');
    expect(r.code, r.stderr).toBe(0);
    await ex.waitLog(/[-=]> dave@example\.org .*P=<> .*T=mailbag_bsmtp/);
    const jobs = await newJobs(spool, 'hub', before);
    expect(jobs).toHaveLength(1);
    expect(splitBsmtp(jobs[0]!.payload).map((t) => [t.mailFrom, t.rcptTo])).toEqual([['', ['dave@example.org']]]);
  });
});
