// The MTA is never misled (../shared/DESIGN.md, promise 5), even when node is missing:
// docs/postfix.md's two master.cf lines, as written (`/usr/local/bin/mailbag` and
// `/usr/local/bin/mailbag-uux`, npm's global links), in a real Postfix on a machine where
// pipe(8)'s PATH (/usr/bin:/bin, always) has no node and no fallback place has one either
// (a private mount namespace: launcher-helpers.ts). The front door cannot start, and
// Postfix must keep the mail queued with the reason (exit 75, a 4.3.5 line), not bounce
// it to its sender (what exit 127 from `#!/usr/bin/env node` did). Once node is put
// where the front doors look (/usr/local/bin/node), a flush delivers the same messages
// into the spool.

import { copyFileSync, linkSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { havePostfix, startPostfix, POSTFIX_BIN, type PostfixInstance } from '../helpers/postfix.js';
import { repoRoot, removeTempDir, run, waitFor } from '../helpers/mta-common.js';
import { jobIds, makeMailbagSite, newJobs } from '../helpers/mta-site.js';
import { docSnippet } from './docs-snippet.js';
import { haveNamespaces, installedNodes, inWorld } from './launcher-helpers.js';

const lines = (name: string): string[] =>
  docSnippet('postfix.md', name)
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('#'));

const bins = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin;

interface QueueEntry {
  queue_name: string;
  queue_id: string;
  recipients: Array<{ address: string; delay_reason?: string }>;
}

describe.skipIf(!(havePostfix() && haveNamespaces()))('a real Postfix whose pipe(8) finds no node: the mail is deferred with the reason, not bounced', () => {
  let pf: PostfixInstance;
  let dir: string;
  let spool: string;

  async function postqueue(): Promise<QueueEntry[]> {
    const r = await run('/usr/sbin/postqueue', ['-c', pf.configDir, '-j'], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    return r.stdout.toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as QueueEntry);
  }

  beforeAll(async () => {
    const site = await makeMailbagSite('launcher-postfix');
    ({ dir, spool } = site);
    // the page's lines with only the user changed: the program paths stay npm's links
    const localise = (l: string): string => l.replace('user=mailbag ', `user=${site.user.name} `);
    const masterA = lines('postfix-master-a').map(localise);
    const masterB = lines('postfix-master-b').map(localise);
    expect(masterA.join('\n')).toContain('argv=/usr/local/bin/mailbag-uux ');
    expect(masterB.join('\n')).toContain('argv=/usr/local/bin/mailbag enqueue ');
    pf = await startPostfix({
      masterCf: [masterA.join('\n'), masterB.join('\n')],
      transports: { 'example.org': 'mailbag:hub', 'uux.test': 'uucp:hub' },
      environment: { MAILBAG_CONFIG: site.config },
      user: site.user,
    });
    // again, in the namespace: /usr/local/bin holds npm's links to this checkout and a
    // link to node that leads nowhere yet; node is nowhere else
    await run(POSTFIX_BIN, ['-c', pf.configDir, 'stop'], { timeoutMs: 30_000 });
    await waitFor(async () => (await run(POSTFIX_BIN, ['-c', pf.configDir, 'status'])).code !== 0, 30_000, 'Postfix to stop');
    mkdirSync(join(dir, 'later'), { mode: 0o755 });
    const localBin = Object.fromEntries(['mailbag', 'mailbag-uux', 'rmail', 'rsmtp'].map((b) => [b, join(repoRoot, bins[b]!)]));
    const argv = inWorld(dir, { localBin: { ...localBin, node: join(dir, 'later', 'node') }, hide: installedNodes() }, [POSTFIX_BIN, '-c', pf.configDir, 'start']);
    const started = await run(argv[0]!, argv.slice(1), { timeoutMs: 60_000 });
    expect(started.code, started.stderr).toBe(0);
    await waitFor(async () => (await run(POSTFIX_BIN, ['-c', pf.configDir, 'status'])).code === 0, 30_000, 'Postfix to start in the namespace');
  }, 180_000);

  afterAll(async () => {
    await pf?.stop();
    if (dir) removeTempDir(dir);
  });

  test('both services defer with the front door\'s 4.3.5 line; node at /usr/local/bin/node then delivers them', async () => {
    const before = await jobIds(spool, 'hub');
    for (const [to, subject] of [['bob@example.org', 'B'], ['carol@uux.test', 'A']]) {
      const r = await pf.sendmail(['-f', 'alice@elsewhere.test', '--', to!], `Subject: ${subject}\n\nhello\n`);
      expect(r.code, r.stderr).toBe(0);
    }
    const bob = await pf.waitLog(/to=<bob@example\.org>.*status=(deferred|bounced)/, 60_000);
    const carol = await pf.waitLog(/to=<carol@uux\.test>.*status=(deferred|bounced)/, 60_000);
    expect(bob).toMatch(/relay=mailbag, .*dsn=4\.3\.5, status=deferred \(mailbag: cannot start: no node /);
    expect(carol).toMatch(/relay=uucp, .*dsn=4\.3\.5, status=deferred \(mailbag-uux: cannot start: no node /);
    expect(pf.log()).not.toMatch(/status=bounced/);
    // both still in Postfix's queue, each with the front door's line as its reason
    // (Postfix takes the 4.3.5 off the front as the status: dsn=4.3.5 above)
    const queued = await postqueue();
    const reasons = Object.fromEntries(queued.flatMap((q) => q.recipients.map((r) => [r.address, `${q.queue_name}: ${r.delay_reason ?? ''}`])));
    expect(reasons['bob@example.org']).toMatch(/^deferred: mailbag: cannot start: no node in PATH \(\/usr\/bin:\/bin\) nor at \/usr\/local\/bin\/node, /);
    expect(reasons['carol@uux.test']).toMatch(/^deferred: mailbag-uux: cannot start: no node in PATH \(\/usr\/bin:\/bin\) nor at \/usr\/local\/bin\/node, /);
    expect(await newJobs(spool, 'hub', before)).toEqual([]);

    // the admin puts node where the front doors look: the same messages go through
    const node = join(dir, 'later', 'node');
    try {
      linkSync(realpathSync(process.execPath), node);
    } catch {
      copyFileSync(realpathSync(process.execPath), node);
    }
    await pf.flush();
    await pf.waitLog(/to=<bob@example\.org>.*relay=mailbag.*status=sent/, 60_000);
    await pf.waitLog(/to=<carol@uux\.test>.*relay=uucp.*status=sent/, 60_000);
    await pf.waitQueueEmpty();
    const jobs = await newJobs(spool, 'hub', before);
    expect(jobs.map((j) => [j.header.sender, [...j.header.recipients]]).sort()).toEqual([
      ['alice@elsewhere.test', ['bob@example.org']],
      ['alice@elsewhere.test', ['carol@uux.test']],
    ]);
    expect(pf.log()).not.toMatch(/status=bounced/);
  }, 180_000);
});
