// A job that fails for good when the room for its notice's record (docs/spool.md R2a,
// lib/runner/reserve.ts) cannot be held: the failure was recorded and the job moved to
// failed/, then Runner.finishFailedNotices met the full spool and its error went up as
// the job's: the run counted a retry and never said "failed", while the job sat in
// failed/ with its notice owed. Now the run says what happened: the job failed (counted,
// its line), its notice waits for the next run (said, a failure of the run), and goes
// out once, when there is room. And an admin action that fails for good as the spool
// fills: no room was held for its record, which met the full spool, so the job stayed in
// in/ as a retry and the action ran again at the next run; now the room is held before it
// runs. A real tmpfs, filled before the run or by the action itself.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../../../lib/config/index.js';
import { newJobId, type JobHeader } from '../../../lib/job/index.js';
import { readState } from '../../../lib/runner/state.js';
import { runJobs } from '../../../lib/runner/runner.js';
import { Spool } from '../../../lib/spool/index.js';
import { canMount, mountTmpfs, unmount } from '../spool/mount.js';
import { FAKE_SENDMAIL } from './helpers.js';

const mounted = canMount('runner12, a failed job whose notice has no room');
let dir: string | undefined;
let mnt: string | undefined;

beforeAll(() => {
  if (!mounted) return;
  dir = mkdtempSync(join(tmpdir(), 'mailbag-runner12-room-'));
  mnt = join(dir, 'mnt');
  mountTmpfs(mnt, '1m');
});
afterEach(() => {
  // a case that failed leaves no full tmpfs to the next
  if (mnt) for (const f of readdirSync(mnt)) if (f.startsWith('filler')) rmSync(join(mnt, f), { force: true });
});
afterAll(() => {
  if (mnt) unmount(mnt);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it.skipIf(!mounted)('a job failing for good with no room for its notice\'s record: counted and said as failed, its notice waits and goes once', async () => {
  const calls = join(dir!, 'calls');
  mkdirSync(calls);
  const filler = join(mnt!, 'filler');
  const notices = (): string[] => readdirSync(calls).filter((n) => n.endsWith('.stdin') && /^Content-Type: multipart\/report/im.test(readFileSync(join(calls, n), 'utf8')));
  const env = { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0' };
  // a command the peer may not run fails for good before anything is handed over, so no
  // room is held before its record. The tmpfs is filled and k pages given back: the first
  // k that leaves the job in failed/ with no notice sent is the case (its lock, its batch
  // journal and its failure's record took the pages left; the notice's room found none)
  for (let k = 1; k <= 8; k++) {
    const spoolDir = join(mnt!, `spool-${k}`);
    const file = join(dir!, `mailbag-${k}.toml`);
    writeFileSync(file, ['site = "home"', `spool = "${spoolDir}"`, '[delivery]', `sendmail = "${FAKE_SENDMAIL}"`, 'mta = "sendmail"', 'concurrency = 1',
      '[peers.hub]', 'transport = "command"', 'command = ["true"]'].join('\n'));
    const config = loadConfig({ path: file, env: {} });
    const spool = await Spool.open(spoolDir, { create: true });
    const h: JobHeader = { id: newJobId(), from: 'hub', to: 'home', created: new Date().toISOString(), command: 'uucico', args: [], sender: 's@x.example', recipients: ['r@y.example'] };
    await spool.writeJob('in', 'hub', h, Buffer.from('payload\n'));
    spawnSync('/bin/sh', ['-c', `dd if=/dev/zero of='${filler}' bs=4096 2>/dev/null; truncate -s -${k * 4096} '${filler}'`]);
    const lines: string[] = [];
    const s = await runJobs({ config, spool, env, log: (l) => lines.push(l) });
    const inFailed = (await spool.listJobs('failed', 'hub')).length === 1;
    if (!inFailed) {
      // no room for the failure's record either: the job waits in in/, nothing sent
      expect(notices()).toHaveLength(0);
      unlinkSync(filler);
      rmSync(spoolDir, { recursive: true, force: true });
      continue;
    }
    const said = lines.join('\n');
    expect(notices(), `k = ${k}: room for the notice too, the case never came\n${said}`).toHaveLength(0);
    // before: { retry: 1, failed: 0 } and no "failed" line, the job in failed/ all the same
    expect({ done: s.done, retry: s.retry, failed: s.failed }, said).toEqual({ done: 0, retry: 0, failed: 1 });
    expect(said).toMatch(new RegExp(`hub/${h.id}: failed: command "uucico" is not allowed`));
    expect(said).toMatch(new RegExp(`hub/${h.id}: the notice waits for the next run: spool full`));
    expect(s.unfinished?.map((u) => [u.peer, u.error.code])).toEqual([['hub', 'spool-full']]);
    expect((await readState(spool, 'hub', h.id))?.failed?.noticeSent).toBe(false);

    // room again: the next run sends it, and no run after sends it again
    unlinkSync(filler);
    const next = await runJobs({ config, spool, env });
    expect(next.unfinished).toBeUndefined();
    await runJobs({ config, spool, env, force: true });
    await runJobs({ config, spool, env, now: () => new Date(Date.now() + 86_400_000) });
    expect(notices()).toHaveLength(1);
    expect((await readState(spool, 'hub', h.id))?.failed?.noticeSent).toBe(true);
    rmSync(spoolDir, { recursive: true, force: true });
    return;
  }
  throw new Error('no k of 1-8 left room for the failure\'s record and none for its notice\'s');
}, 60_000);

it.skipIf(!mounted)('an action that fails for good as the spool fills: its failure is recorded in the room held before it ran, and it is not run again', async () => {
  const calls = join(dir!, 'calls-fills');
  mkdirSync(calls);
  const runs = join(dir!, 'runs');
  writeFileSync(runs, '');
  const filler = join(mnt!, 'filler-fills');
  // the action counts its runs, fills the tmpfs to its last page and fails for good (67)
  const action = join(dir!, 'act-fills');
  writeFileSync(action, `#!/bin/sh\ncat >/dev/null\necho run >> '${runs}'\ndd if=/dev/zero of='${filler}' bs=4096 2>/dev/null\nexit 67\n`);
  chmodSync(action, 0o755);
  const spoolDir = join(mnt!, 'spool-fills');
  const file = join(dir!, 'mailbag-fills.toml');
  writeFileSync(file, ['site = "home"', `spool = "${spoolDir}"`, '[delivery]', `sendmail = "${FAKE_SENDMAIL}"`, 'mta = "sendmail"', 'concurrency = 1',
    '[peers.hub]', 'transport = "command"', 'command = ["true"]', '[peers.hub.actions]', `act = ["${action}"]`].join('\n'));
  const config = loadConfig({ path: file, env: {} });
  const spool = await Spool.open(spoolDir, { create: true });
  const h: JobHeader = { id: newJobId(), from: 'hub', to: 'home', created: new Date().toISOString(), command: 'act', args: [], sender: 's@x.example', recipients: ['r@y.example'] };
  await spool.writeJob('in', 'hub', h, Buffer.from('payload\n'));
  const env = { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0' };
  const notices = (): string[] => readdirSync(calls).filter((n) => n.endsWith('.stdin') && /^Content-Type: multipart\/report/im.test(readFileSync(join(calls, n), 'utf8')));
  const ran = (): number => readFileSync(runs, 'utf8').split('\n').filter(Boolean).length;

  const lines: string[] = [];
  const s = await runJobs({ config, spool, env, log: (l) => lines.push(l) });
  const said = lines.join('\n');
  expect(ran()).toBe(1);
  // before: the failure's record met the full spool, the job stayed in in/ as a retry
  expect({ retry: s.retry, failed: s.failed }, said).toEqual({ retry: 0, failed: 1 });
  expect(said).toMatch(/progress kept in the room reserved for it/);
  expect((await spool.listJobs('failed', 'hub')).map((r) => r.id)).toEqual([h.id]);
  unlinkSync(filler);
  // room again: the action is not run again; the notice goes once
  await runJobs({ config, spool, env, force: true });
  await runJobs({ config, spool, env, force: true });
  expect(ran()).toBe(1);
  expect(notices()).toHaveLength(1);
  expect((await readState(spool, 'hub', h.id))?.failed?.noticeSent).toBe(true);
}, 60_000);
