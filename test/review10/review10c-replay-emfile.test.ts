// review10c: lmtpd's start-up replay of its journal at a low open-file limit. b85717f fits
// lmtpd's connections to `ulimit -n` (32 descriptors kept for the spool's files), but the
// replay writes up to REPLAY_BATCH (256) job files with their descriptors all open at
// once (writeJobFiles: every open issued together, then every fsync). With more answered
// records in the journal than descriptors left, opens fail with EMFILE, the replay ends
// without a reset and lmtpd exits 75 at start: a crash with a full batch of answered
// mail in the journal keeps lmtpd from starting until the limit is raised (each start
// writes out only the jobs that found a descriptor). The answered mail must be written
// into out/ and lmtpd must start.

import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { makeSharedTempDir, removeTempDir } from '../helpers/mta-common.js';
import { LmtpClient } from '../unit/lmtp/lmtp-client.js';
import { isAlive, mailbagBin, readJobs, startLmtpd, type Lmtpd } from '../unit/lmtp/lmtpd-process.js';

let dir: string;
let first: Lmtpd | undefined;
let pid: number | undefined;

beforeEach(() => {
  dir = makeSharedTempDir('review10c-emfile');
});
afterEach(async () => {
  if (first) await first.kill();
  first = undefined;
  if (pid !== undefined && isAlive(pid)) process.kill(pid, 'SIGKILL');
  pid = undefined;
  removeTempDir(dir);
});

const JOBS = 150;

it('review10c R1: after a crash with 150 answered jobs only in the journal, lmtpd starts at ulimit -n 60 and writes them all into out/', async () => {
  // answered, then held in the journal (never written into out/), then SIGKILL
  first = await startLmtpd({ dir, peers: { hub: ['a.test'] }, env: { MAILBAG_FAULT: 'journal-hold' } });
  const d = first;
  await Promise.all(Array.from({ length: 5 }, async (_, k) => {
    const c = await LmtpClient.connect(d.socket);
    expect((await c.read()).code).toBe(220);
    expect((await c.cmd('LHLO t.test')).code).toBe(250);
    for (let i = 0; i < JOBS / 5; i++) {
      expect((await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<x@a.test>'])).map((r) => r.code)).toEqual([250]);
      expect((await c.data(`Subject: r10c ${k}/${i}\n\nbody\n`, 1))[0]!.code).toBe(250);
    }
    await c.cmd('QUIT');
  }));
  await d.kill();
  first = undefined;
  const outDir = join(d.spool, 'out', 'hub');
  const files = (): number => (existsSync(outDir) ? readdirSync(outDir).length : 0);
  expect(files()).toBe(0);
  expect(readJobs(d.spool, 'hub')).toHaveLength(JOBS);

  // the restart, at the open-file limit of lmtp-open-files.test.ts (exec: the shell's PID is lmtpd's)
  const child = spawn('sh', ['-c', 'ulimit -n 60 && exec "$0" "$@"', process.execPath, mailbagBin, 'lmtpd', '--config', d.config], { stdio: ['ignore', 'pipe', 'pipe'] });
  pid = child.pid!;
  let log = '';
  child.stdout!.on('data', (b: Buffer) => (log += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (log += b.toString()));
  let exit: number | null | undefined;
  child.on('exit', (code) => (exit = code));
  const deadline = Date.now() + 30_000;
  while (!/ready\n/.test(log) && exit === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  expect({ exit, ready: /ready\n/.test(log), files: files() }, log).toEqual({ exit: undefined, ready: true, files: JOBS });
  process.kill(pid, 'SIGTERM');
  const stop = setTimeout(() => child.kill('SIGKILL'), 40_000);
  await new Promise<void>((r) => (exit !== undefined ? r() : child.on('exit', () => r())));
  clearTimeout(stop);
});
