// lmtpd's log with lmtp.workers = 2: the primary and each worker write to the same
// stderr pipe. When the reader of that pipe lags (a full pipe: a busy syslog or journald,
// a paused reader), a write of more than PIPE_BUF bytes is taken in parts, and another
// process's write could land between two parts of one line. Every line must come out
// whole: in this test the log's reader stops reading while two workers log a few hundred
// long lines, then catches up 200 bytes at a time.

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { makeSharedTempDir, removeTempDir } from '../helpers/mta-common.js';
import { LmtpClient } from '../unit/lmtp/lmtp-client.js';
import { childPids, isAlive, mailbagBin, writeLmtpdConfig } from '../unit/lmtp/lmtpd-process.js';

/**
 * The log's reader: reads stdin and copies it to stdout; once it has seen lmtpd's
 * `ready` line it reads nothing until the file named by argv[1] exists (a log reader
 * that lags: the pipe fills), then 200 bytes at a time, 1 ms apart.
 */
const SLOW_READER = `
const fs = require('node:fs');
const go = process.argv[1];
const buf = Buffer.alloc(200);
const nap = new Int32Array(new SharedArrayBuffer(4));
let seen = '';
for (;;) {
  if (seen !== null && /ready\\n/.test(seen)) {
    while (!fs.existsSync(go)) Atomics.wait(nap, 0, 0, 10);
    seen = null;
  }
  let n;
  try { n = fs.readSync(0, buf, 0, buf.length, null); } catch (e) { if (e.code === 'EAGAIN') { Atomics.wait(nap, 0, 0, 1); continue; } throw e; }
  if (n === 0) break;
  fs.writeSync(1, buf.subarray(0, n));
  if (seen === null) Atomics.wait(nap, 0, 0, 1);
  else seen += buf.toString('latin1', 0, n);
}
`;

let dir: string;
let pid: number | undefined;
let readerPid: number | undefined;

beforeEach(() => {
  dir = makeSharedTempDir('lmtp-log-lines');
});
afterEach(async () => {
  if (pid !== undefined && isAlive(pid)) {
    const pids = childPids(pid);
    process.kill(pid, 'SIGKILL');
    for (const p of pids) if (isAlive(p)) process.kill(p, 'SIGKILL');
  }
  if (readerPid !== undefined && isAlive(readerPid)) process.kill(readerPid, 'SIGKILL');
  pid = undefined;
  readerPid = undefined;
  removeTempDir(dir);
});

it('with two workers and a lagging log reader, every log line comes out whole', async () => {
  const { config, socket } = writeLmtpdConfig({ dir, peers: { hub: ['a.test'] }, workers: 2, extraToml: 'max_connections = 200' });
  const go = join(dir, 'go');
  const reader = spawn(process.execPath, ['-e', SLOW_READER, go], { stdio: ['pipe', 'pipe', 'inherit'] });
  readerPid = reader.pid!;
  const chunks: Buffer[] = [];
  reader.stdout!.on('data', (b: Buffer) => chunks.push(b));
  const readerDone = new Promise<void>((r) => reader.on('exit', () => r()));
  const child = spawn(process.execPath, [mailbagBin, 'lmtpd', '--config', config], { stdio: ['ignore', 'ignore', reader.stdin!] });
  pid = child.pid!;
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const deadline = Date.now() + 20_000;
  while (!/ready\n/.test(Buffer.concat(chunks).toString())) {
    expect(Date.now() < deadline, Buffer.concat(chunks).toString()).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
  }
  // long lines (the sender is in each job's line), several connections: both workers log
  const sender = `${'s'.repeat(60)}@${['a'.repeat(60), 'b'.repeat(60), 'c'.repeat(60)].join('.')}.test`;
  const perConn = 20;
  const conns = 96;
  await Promise.all(Array.from({ length: conns }, async (_, k) => {
    const c = await LmtpClient.connect(socket, 20_000);
    expect((await c.read()).code).toBe(220);
    expect((await c.cmd('LHLO t.test')).code).toBe(250);
    for (let i = 0; i < perConn; i++) {
      const r = await c.envelope(`MAIL FROM:<${sender}>`, ['RCPT TO:<x@a.test>']);
      expect(r.map((x) => x.code)).toEqual([250]);
      const d = await c.data(`Subject: ${k}/${i}\n\nbody\n`, 1);
      expect(d[0]!.code).toBe(250);
    }
    await c.cmd('QUIT');
  }));
  // the reader catches up, slowly
  writeFileSync(go, '');
  process.kill(pid, 'SIGTERM');
  const stop = setTimeout(() => child.kill('SIGKILL'), 40_000);
  expect(await exited).toBe(0);
  clearTimeout(stop);
  // lmtpd's end of the pipe is closed; ours too: the reader reads to the end and exits (bounded)
  reader.stdin!.destroy();
  const readerStop = setTimeout(() => reader.kill('SIGKILL'), 40_000);
  await readerDone;
  clearTimeout(readerStop);
  const text = Buffer.concat(chunks).toString();
  const lines = text.split('\n');
  expect(lines.pop()).toBe('');
  const bad = lines.filter((l) => !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z lmtpd(?: worker \d+)?: \S/.test(l) || (/ job /.test(l) && !l.endsWith(`: <${sender}> -> 1 recipient(s)`)));
  expect(bad.slice(0, 3), `${bad.length} spliced line(s) of ${lines.length}`).toEqual([]);
  const jobs = lines.filter((l) => / job [0-9a-z]{24} for hub: /.test(l));
  expect(jobs).toHaveLength(conns * perConn);
  // both workers took mail
  expect(new Set(jobs.map((l) => /worker (\d+)/.exec(l)?.[1])).size).toBe(2);
});
