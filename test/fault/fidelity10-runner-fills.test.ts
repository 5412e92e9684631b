// The runner delivering a BSMTP job when the spool's file system fills *between* the
// MTA's taking a transaction and the job's progress record (docs/spool.md R2/R3): the
// record met ENOSPC, the attempt ended with that transaction unrecorded, and the next
// attempt, once there was room, handed it to the MTA again. The sendmail here fills a
// real tmpfs (dd to ENOSPC) as it takes the first transaction, then accepts it.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config/index.js';
import { newJobId, type JobHeader } from '../../lib/job/index.js';
import { runJobs } from '../../lib/runner/runner.js';
import { Spool } from '../../lib/spool/index.js';
import { FAKE_SENDMAIL } from '../unit/runner/helpers.js';
import { canMount, mountTmpfs, unmount } from '../unit/spool/mount.js';
import { eximBinary, haveExim, startExim } from '../helpers/exim.js';

const mounted = canMount('fidelity10 runner, a spool that fills mid-job');
let dir: string | undefined;
let mnt: string | undefined;

beforeAll(() => {
  if (!mounted) return;
  dir = mkdtempSync(join(tmpdir(), 'mailbag-fidelity10-fills-'));
  mnt = join(dir, 'mnt');
  mountTmpfs(mnt, '256k');
});
afterAll(() => {
  if (mnt) unmount(mnt);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it.skipIf(!mounted)('a disk that fills after the MTA took a BSMTP transaction: recorded all the same, nothing delivered twice', async () => {
  const calls = join(dir!, 'calls');
  mkdirSync(calls);
  const filler = join(mnt!, 'filler');
  const fillOnce = join(dir!, 'fill-once');
  const mta = join(dir!, 'sendmail');
  writeFileSync(mta, `#!/bin/sh\nif [ -e '${fillOnce}' ]; then rm -f '${fillOnce}'; dd if=/dev/zero of='${filler}' bs=4096 2>/dev/null; fi\nexec '${FAKE_SENDMAIL}' "$@"\n`);
  chmodSync(mta, 0o755);
  const spoolDir = join(mnt!, 'spool');
  const file = join(dir!, 'mailbag.toml');
  writeFileSync(file, ['site = "home"', `spool = "${spoolDir}"`, '[delivery]', `sendmail = "${mta}"`, 'mta = "sendmail"', 'concurrency = 1', '[peers.hub]', 'transport = "command"', 'command = ["true"]'].join('\n'));
  const config = loadConfig({ path: file, env: {} });
  const spool = await Spool.open(spoolDir, { create: true });
  const h: JobHeader = { id: newJobId(), from: 'hub', to: 'home', created: new Date().toISOString(), command: 'rsmtp', args: [], sender: 's@x.example', recipients: ['a@y.example', 'b@y.example'] };
  const tx = (rcpt: string, text: string): string => `MAIL FROM:<s@x.example>\nRCPT TO:<${rcpt}>\nDATA\nSubject: ${text}\n\n${text}\n.\n`;
  await spool.writeJob('in', 'hub', h, Buffer.from(tx('a@y.example', 'one') + tx('b@y.example', 'two')));
  const env = { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0' };
  writeFileSync(fillOnce, '');
  const delivered = (): string[] =>
    readdirSync(calls)
      .filter((n) => n.endsWith('.argv'))
      .map((n) => readFileSync(join(calls, n), 'utf8').trim().split('\n').at(-1)!)
      .sort();
  const lines: string[] = [];
  const first = await runJobs({ config, spool, env, now: () => new Date(), log: (l) => lines.push(l) });
  // the record went into the room held for it before the hand-over
  expect(lines.join('\n')).toMatch(/spool full.*progress kept in the room reserved for it/);
  // the room is let go with the worker
  expect(readdirSync(join(spoolDir, 'tmp')).filter((n) => n.includes('run-reserve'))).toEqual([]);
  // room again, as an admin (or the next log rotation) makes it; the job runs again
  if (existsSync(filler)) unlinkSync(filler);
  for (let i = 0; i < 3 && (await spool.listJobs('in', 'hub')).length > 0; i++) {
    await runJobs({ config, spool, env, now: () => new Date(Date.now() + 86_400_000 * (i + 1)) });
  }
  expect(await spool.listJobs('in', 'hub')).toEqual([]);
  // each transaction reached the MTA exactly once (before the fix: a@ twice)
  expect(delivered(), JSON.stringify(first)).toEqual(['a@y.example', 'b@y.example']);
});

// the same with the real Exim 4.96 under `exim -bS` (the whole job in one run, then a
// record per transaction): the wrapper fills the spool's file system before Exim reads
it.skipIf(!mounted || !haveExim())('exim -bS: the spool fills as Exim takes the batch; every transaction recorded, each delivered once', async () => {
  const ex = await startExim({ mailboxes: ['a', 'b', 'c'] });
  try {
    const filler = join(mnt!, 'filler2');
    const fillOnce = join(dir!, 'fill-once-exim');
    const wrapper = join(dir!, 'exim');
    const runs = join(dir!, 'exim-runs');
    writeFileSync(wrapper, `#!/bin/sh\necho run >> '${runs}'\nif [ -e '${fillOnce}' ]; then rm -f '${fillOnce}'; dd if=/dev/zero of='${filler}' bs=4096 2>/dev/null; fi\nexec ${eximBinary()} -C ${ex.configFile} -odq "$@"\n`);
    chmodSync(wrapper, 0o755);
    const spoolDir = join(mnt!, 'spool-exim');
    const file = join(dir!, 'mailbag-exim.toml');
    writeFileSync(file, ['site = "home"', `spool = "${spoolDir}"`, '[delivery]', `sendmail = "${wrapper}"`, 'mta = "exim"', 'concurrency = 1', '[peers.hub]', 'transport = "command"', 'command = ["true"]'].join('\n'));
    const config = loadConfig({ path: file, env: {} });
    const spool = await Spool.open(spoolDir, { create: true });
    const rcpts = ['a', 'b', 'c'].map((n) => `${n}@maildir.test`);
    const h: JobHeader = { id: newJobId(), from: 'hub', to: 'home', created: new Date().toISOString(), command: 'rsmtp', args: [], sender: 's@maildir.test', recipients: rcpts };
    const tx = (rcpt: string): string => `MAIL FROM:<s@maildir.test>\nRCPT TO:<${rcpt}>\nDATA\nSubject: to ${rcpt}\n\nhello\n.\n`;
    await spool.writeJob('in', 'hub', h, Buffer.from(rcpts.map(tx).join('')));
    writeFileSync(fillOnce, '');
    const lines: string[] = [];
    await runJobs({ config, spool, env: process.env, now: () => new Date(), log: (l) => lines.push(l) });
    expect(lines.join('\n')).toMatch(/progress kept in the room reserved for it/);
    if (existsSync(filler)) unlinkSync(filler);
    for (let i = 0; i < 3 && (await spool.listJobs('in', 'hub')).length > 0; i++) {
      await runJobs({ config, spool, env: process.env, now: () => new Date(Date.now() + 86_400_000 * (i + 1)) });
    }
    expect(await spool.listJobs('in', 'hub')).toEqual([]);
    // one exim -bS run took the whole batch, and none was needed again
    expect(readFileSync(runs, 'utf8').trim().split('\n')).toHaveLength(1);
    await ex.runQueue();
    for (const n of ['a', 'b', 'c']) {
      const md = ex.maildir(n);
      expect(readdirSync(join(md, 'new')).concat(readdirSync(join(md, 'cur'))).length, n).toBe(1);
    }
  } finally {
    ex.stop();
  }
}, 120_000);
