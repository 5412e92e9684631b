// review10c: b85717f's fitting of connections to the open-file limit with lmtp.workers > 1.
// A worker's listener gets `net.maxConnections`; but with node:cluster's round-robin
// (lmtpd sets SCHED_RR) the primary accepts, and a worker at maxConnections answers the
// hand-over "not accepted" (no 'drop' event, so no line), and the primary hands the same
// connection to the next worker, and again, for as long as every worker is full: the
// connection is neither greeted nor closed (the MTA waits for its greeting timeout), and
// the hand-overs go round without a pause (the primary and workers busy; measured, not
// asserted, below). Each connection past the room must be answered or closed promptly,
// and the refusals said in the log, as with one process.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { makeSharedTempDir, removeTempDir } from '../helpers/mta-common.js';
import { childPids, isAlive, mailbagBin, writeLmtpdConfig } from '../unit/lmtp/lmtpd-process.js';

let dir: string;
let pid: number | undefined;
const sockets: Socket[] = [];

beforeEach(() => {
  dir = makeSharedTempDir('review10c-workers');
});
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
  if (pid !== undefined && isAlive(pid)) {
    const pids = childPids(pid);
    process.kill(pid, 'SIGKILL');
    for (const p of pids) if (isAlive(p)) process.kill(p, 'SIGKILL');
  }
  pid = undefined;
  removeTempDir(dir);
});

/** one connection, kept open: its first reply line's code, 'closed' when closed with none, 'none' when neither within 10 s */
function greeting(socket: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(socket);
    sockets.push(s);
    let got = '';
    const done = (v: string): void => {
      clearTimeout(t);
      resolve(v);
    };
    const t = setTimeout(() => done('none'), 10_000);
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n')) done(got.slice(0, 3));
    });
    s.on('error', () => done('error'));
    s.on('close', () => done(got === '' ? 'closed' : got.slice(0, 3)));
  });
}

/** CPU ticks (user + system) of a process */
function ticks(p: number): number {
  const stat = readFileSync(`/proc/${p}/stat`, 'latin1');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

it('review10c R3: with two workers at ulimit -n 60, connections past the room are answered or closed at once, and logged', async () => {
  const { config, socket } = writeLmtpdConfig({ dir, peers: { hub: ['a.test'] }, workers: 2, extraToml: 'max_connections = 200' });
  // exec: the shell's PID becomes lmtpd's
  const child = spawn('sh', ['-c', 'ulimit -n 60 && exec "$0" "$@"', process.execPath, mailbagBin, 'lmtpd', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  pid = child.pid!;
  let log = '';
  child.stdout!.on('data', (b: Buffer) => (log += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (log += b.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const deadline = Date.now() + 20_000;
  while (!/ready\n/.test(log) || (log.match(/room for \d+ connection/g) ?? []).length < 2) {
    expect(Date.now() < deadline, log).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
  }
  const room = [...log.matchAll(/room for (\d+) connection/g)].reduce((n, m) => n + Number(m[1]), 0);
  // the room of both workers and as many again, all kept open
  const results = await Promise.all(Array.from({ length: 2 * room }, () => greeting(socket)));
  const procs = [pid, ...childPids(pid)];
  const before = procs.map(ticks);
  await new Promise((r) => setTimeout(r, 2_000));
  const cpu = procs.map((p, i) => ticks(p) - before[i]!);
  const tally: Record<string, number> = {};
  for (const r of results) tally[r] = (tally[r] ?? 0) + 1;
  console.log(`review10c R3: room ${room}, results ${JSON.stringify(tally)}, CPU ticks of lmtpd's processes over 2 s with the connections held: ${cpu.join(' ')}`);
  for (const s of sockets.splice(0)) s.destroy();
  const until = Date.now() + 12_000;
  while (!/connection\(s\) (closed without a greeting|refused)/.test(log) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  expect({ tally, logged: /connection\(s\) (closed without a greeting|refused)/.test(log) }).toEqual({ tally: expect.not.objectContaining({ none: expect.anything() }), logged: true });
  process.kill(pid, 'SIGTERM');
  const stop = setTimeout(() => child.kill('SIGKILL'), 40_000);
  expect(await exited).toBe(0);
  clearTimeout(stop);
}, 90_000);
