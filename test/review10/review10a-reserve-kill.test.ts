// review10a: rsmtp's reserve (0516681, c10bf7d) when rsmtp is killed (SIGKILL: an OOM kill,
// uuxqt's timeout) while the MTA has transaction 1: the reserve (up to 64 MiB) must not
// stay in SPOOL/tmp/ for ever. The real program (the repo's dist/bin/rsmtp.js, as
// fixes9-stage-kill runs it) is killed with the reserve written; the caller's retry (the
// next Spool.open's cleanup of dead writers' files) removes it, delivers each transaction
// once (the killed run's MTA was killed before it took anything) and leaves tmp/ empty.
// Checks what the commits claim; passes on main.

import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { need } from '../helpers/need.js';
import { Spool } from '../../lib/spool/index.js';
import { FAKE_SENDMAIL } from '../unit/runner/helpers.js';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const bin = join(repo, 'dist', 'bin', 'rsmtp.js');
const ready = need('the built rsmtp (dist/bin)', [bin], 'run npm run build first');
const dir = mkdtempSync(join(tmpdir(), 'mailbag-review10a-kill-'));
const pids: number[] = [];
afterAll(() => {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

it.skipIf(!ready)('rsmtp killed while the MTA has transaction 1: its reserve goes at the retry, each transaction once', async () => {
  const calls = join(dir, 'calls');
  mkdirSync(calls);
  const hold = join(dir, 'hold');
  const mtaPid = join(dir, 'mta.pid');
  // the MTA: while `hold` exists it says its PID and waits (at most 30 s) before taking anything
  const mta = join(dir, 'sendmail');
  writeFileSync(mta, `#!/bin/sh\nif [ -e '${hold}' ]; then echo $$ > '${mtaPid}'; i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; exit 75; fi\nexec '${FAKE_SENDMAIL}' "$@"\n`);
  chmodSync(mta, 0o755);
  const spoolDir = join(dir, 'spool');
  const config = join(dir, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${spoolDir}"\n[delivery]\nsendmail = "${mta}"\nmta = "sendmail"\n`);
  await Spool.open(spoolDir, { create: true });
  const batch = 'MAIL FROM:<s@x>\nRCPT TO:<a@y>\nDATA\none\n.\nMAIL FROM:<s@x>\nRCPT TO:<b@y>\nDATA\ntwo\n.\nQUIT\n';
  const env = { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0' };
  const run = (): { p: ReturnType<typeof spawn>; done: Promise<{ code: number | null; signal: NodeJS.Signals | null; err: string }> } => {
    const p = spawn(process.execPath, [bin, '--config', config], { env, stdio: ['pipe', 'ignore', 'pipe'] });
    pids.push(p.pid!);
    let err = '';
    p.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    p.stdin!.end(batch);
    return { p, done: new Promise((res) => p.on('close', (code, signal) => res({ code, signal, err }))) };
  };
  writeFileSync(hold, '');
  const first = run();
  for (let i = 0; i < 300 && !existsSync(mtaPid); i++) await sleep(50);
  expect(existsSync(mtaPid)).toBe(true);
  // the reserve is there, with room for both records
  const reserves = readdirSync(join(spoolDir, 'tmp')).filter((n) => n.includes('reserve'));
  expect(reserves.length).toBeGreaterThan(0);
  expect(reserves.reduce((n, r) => n + statSync(join(spoolDir, 'tmp', r)).size, 0)).toBeGreaterThan(0);
  first.p.kill('SIGKILL');
  expect((await first.done).signal).toBe('SIGKILL');
  // the MTA the killed run left is stopped by its PID before it took anything
  const pid = Number(readFileSync(mtaPid, 'utf8').trim());
  pids.push(pid);
  process.kill(pid, 'SIGKILL');
  rmSync(hold);
  // the caller's retry of the same input
  const second = await run().done;
  expect(second.code, second.err).toBe(0);
  const delivered = readdirSync(calls)
    .filter((n) => n.endsWith('.argv'))
    .map((n) => readFileSync(join(calls, n), 'utf8').trim().split('\n').at(-1)!)
    .sort();
  expect(delivered).toEqual(['a@y', 'b@y']);
  // nothing of either run's reserve (nor input copy) is left
  expect(readdirSync(join(spoolDir, 'tmp'))).toEqual([]);
}, 60_000);
