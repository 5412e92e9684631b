// review9a: rsmtp's (and rmail's) progress records are pruned by runner/state.ts
// pruneStale when their mtime is ledger_retention older than the clock. A board without
// an RTC that ran rsmtp before NTP set its clock (weeks behind) wrote its records with
// that old time; the caller's retry after NTP prunes them and delivers the settled
// transactions again. dbdddfa closed the same hole in the session ledger (the age counts
// from the newest entry when the clock is ahead of it); pruneStale has no such guard.
// Harness as test/unit/cli/rsmtp-cut.test.ts (fake sendmail).
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, expect, it } from 'vitest';
import { main as rsmtp } from '../../lib/cli/rsmtp.js';
import { Spool } from '../../lib/spool/index.js';
import { FAKE_SENDMAIL } from '../unit/runner/helpers.js';

const DAY = 86_400_000;
let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

const TX1 = 'MAIL FROM:<s@x>\nRCPT TO:<a@y>\nDATA\none\n.\n';
const TX2 = 'MAIL FROM:<s@x>\nRCPT TO:<b@y>\nDATA\ntwo\n.\n';

// fails at HEAD 56db119: /work/brief/req-review9a.md E4; passes since the fix (apply9a)
it('records written while the clock was weeks behind survive the retry after NTP set it', async () => {
  dir = mkdtempSync(join(tmpdir(), 'review9a-rsmtp-clock-'));
  const d = dir;
  const calls = join(d, 'calls');
  mkdirSync(calls);
  const config = join(d, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${join(d, 'spool')}"\n[delivery]\nsendmail = "${FAKE_SENDMAIL}"\nmta = "sendmail"\n`);
  await Spool.open(join(d, 'spool'), { create: true });
  const call = (exits: string): Promise<number> =>
    rsmtp(['--config', config], {
      stdin: Readable.from([Buffer.from(TX1 + TX2)]),
      stdout: new PassThrough().resume(),
      stderr: new PassThrough().resume(),
      env: { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: exits },
      cwd: d,
      isTTY: false,
    }).catch((x: unknown) => (x as { exitCode?: number }).exitCode ?? 75);
  // before NTP: a@y accepted, b@y deferred; the records carry the board's clock, 30 days behind
  expect(await call('a@y=0,b@y=75')).toBe(75);
  const records = join(d, 'spool', 'run', 'rsmtp-stdin');
  expect(readdirSync(records).length).toBeGreaterThan(0);
  for (const n of readdirSync(records)) {
    const p = join(records, n);
    const t = (statSync(p).mtimeMs - 30 * DAY) / 1000;
    utimesSync(p, t, t);
  }
  // NTP has set the clock; the caller retries the same input
  expect(await call('0')).toBe(0);
  const got = readdirSync(calls)
    .filter((n) => n.endsWith('.argv'))
    .sort((a, b) => parseInt(a) - parseInt(b))
    .map((n) => readFileSync(join(calls, n), 'utf8').split('\n').slice(-2, -1)[0]!);
  expect(got).toEqual(['a@y', 'b@y', 'b@y']); // b@y tried twice, a@y once
});
