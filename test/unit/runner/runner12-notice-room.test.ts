// A job that fails for good when the room for its notice's record (docs/spool.md R2a,
// lib/runner/reserve.ts) cannot be held: the failure was recorded and the job moved to
// failed/, then Runner.finishFailedNotices met the full spool and its error went up as
// the job's: the run counted a retry and never said "failed", while the job sat in
// failed/ with its notice owed. Now the run says what happened: the job failed (counted,
// its line), its notice waits for the next run (said, a failure of the run), and goes
// out once, when there is room. A real tmpfs, filled by the job's own action as it runs.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
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
afterAll(() => {
  if (mnt) unmount(mnt);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it.skipIf(!mounted)('a job failing for good with no room for its notice\'s record: counted and said as failed, its notice waits and goes once', async () => {
  const calls = join(dir!, 'calls');
  mkdirSync(calls);
  const filler = join(mnt!, 'filler');
  // the peer's action fills the tmpfs, gives one page back (the failure's record takes
  // it) and fails for good (67): no page is left for the notice's record
  const action = join(dir!, 'act');
  writeFileSync(action, `#!/bin/sh\ncat >/dev/null\ndd if=/dev/zero of='${filler}' bs=4096 2>/dev/null\ntruncate -s -4096 '${filler}'\nexit 67\n`);
  chmodSync(action, 0o755);
  const spoolDir = join(mnt!, 'spool');
  const file = join(dir!, 'mailbag.toml');
  writeFileSync(file, ['site = "home"', `spool = "${spoolDir}"`, '[delivery]', `sendmail = "${FAKE_SENDMAIL}"`, 'mta = "sendmail"', 'concurrency = 1',
    '[peers.hub]', 'transport = "command"', 'command = ["true"]', '[peers.hub.actions]', `act = ["${action}"]`].join('\n'));
  const config = loadConfig({ path: file, env: {} });
  const spool = await Spool.open(spoolDir, { create: true });
  const h: JobHeader = { id: newJobId(), from: 'hub', to: 'home', created: new Date().toISOString(), command: 'act', args: [], sender: 's@x.example', recipients: ['r@y.example'] };
  await spool.writeJob('in', 'hub', h, Buffer.from('payload\n'));
  const env = { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0' };
  const notices = (): string[] => readdirSync(calls).filter((n) => n.endsWith('.stdin') && /^Content-Type: multipart\/report/im.test(readFileSync(join(calls, n), 'utf8')));

  const lines: string[] = [];
  const s = await runJobs({ config, spool, env, log: (l) => lines.push(l) });
  const said = lines.join('\n');
  expect(existsSync(filler), said).toBe(true);
  // before: { retry: 1, failed: 0 } and no "failed" line, the job in failed/ all the same
  expect({ done: s.done, retry: s.retry, failed: s.failed }, said).toEqual({ done: 0, retry: 0, failed: 1 });
  expect(said).toMatch(new RegExp(`hub/${h.id}: failed: `));
  expect(said).toMatch(new RegExp(`hub/${h.id}: the notice waits for the next run: spool full`));
  expect(s.unfinished?.map((u) => [u.peer, u.error.code])).toEqual([['hub', 'spool-full']]);
  expect((await spool.listJobs('failed', 'hub')).map((r) => r.id)).toEqual([h.id]);
  expect(notices()).toHaveLength(0);
  expect((await readState(spool, 'hub', h.id))?.failed?.noticeSent).toBe(false);

  // room again: the next run sends it, and no run after sends it again
  unlinkSync(filler);
  const next = await runJobs({ config, spool, env });
  expect(next.unfinished).toBeUndefined();
  await runJobs({ config, spool, env, force: true });
  await runJobs({ config, spool, env, now: () => new Date(Date.now() + 86_400_000) });
  expect(notices()).toHaveLength(1);
  expect((await readState(spool, 'hub', h.id))?.failed?.noticeSent).toBe(true);
}, 60_000);
