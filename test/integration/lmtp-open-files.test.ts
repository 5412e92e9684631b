// lmtpd under a low open-file limit (`ulimit -n 60`, disk9's finding): past the limit an
// accept fails with EMFILE and libuv closes the waiting connections itself, unseen by
// Node, so 161 of 200 connections were closed without a greeting and nothing was logged.
// Now the connections are fitted to the limit: a line at the start says the limit leaves
// room for fewer connections than lmtp.max_connections, a line says how many were closed,
// and the connections it takes are served.

import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { makeSharedTempDir, removeTempDir } from '../helpers/mta-common.js';
import { LmtpClient } from '../unit/lmtp/lmtp-client.js';
import { isAlive, mailbagBin, writeLmtpdConfig } from '../unit/lmtp/lmtpd-process.js';

let dir: string;
let pid: number | undefined;

beforeEach(() => {
  dir = makeSharedTempDir('lmtp-open-files');
});
afterEach(() => {
  if (pid !== undefined && isAlive(pid)) process.kill(pid, 'SIGKILL');
  pid = undefined;
  removeTempDir(dir);
});

/** one connection: its first reply line's code, or 'closed' when it is closed with none (bounded) */
function greeting(socket: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(socket);
    let got = '';
    const done = (v: string): void => {
      clearTimeout(t);
      s.destroy();
      resolve(v);
    };
    const t = setTimeout(() => done('timeout'), 10_000);
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n')) done(got.slice(0, 3));
    });
    s.on('error', () => done('error'));
    s.on('close', () => done(got === '' ? 'closed' : got.slice(0, 3)));
  });
}

it('at ulimit -n 60 with 200 connections at once, the closed connections are logged and the rest served', async () => {
  const { config, socket } = writeLmtpdConfig({ dir, peers: { hub: ['a.test'] }, extraToml: 'max_connections = 200' });
  // exec: the shell's PID becomes lmtpd's
  const child = spawn('sh', ['-c', 'ulimit -n 60 && exec "$0" "$@"', process.execPath, mailbagBin, 'lmtpd', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  pid = child.pid!;
  let log = '';
  child.stdout!.on('data', (b: Buffer) => (log += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (log += b.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const deadline = Date.now() + 20_000;
  while (!/ready\n/.test(log)) {
    expect(Date.now() < deadline, log).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
  }
  const results = await Promise.all(Array.from({ length: 200 }, () => greeting(socket)));
  const closed = results.filter((r) => r === 'closed').length;
  expect(results.filter((r) => r !== 'closed' && r !== '220'), results.join(' ')).toEqual([]);
  expect(closed).toBeGreaterThan(0);
  // said at the start, and when it happens
  expect(log).toMatch(/open-file limit \(ulimit -n\) is 60, with \d+ open: room for \d+ connection\(s\) at once, fewer than lmtp\.max_connections = 200/);
  const until = Date.now() + 5_000;
  while (!/connection\(s\) closed without a greeting/.test(log) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  expect(log).toMatch(/\d+ connection\(s\) closed without a greeting: \d+ were open, all that the open-file limit \(ulimit -n 60\) leaves room for/);
  // and mail still goes through
  const c = await LmtpClient.connect(socket);
  expect((await c.read()).code).toBe(220);
  expect((await c.cmd('LHLO t.test')).code).toBe(250);
  expect((await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<x@a.test>'])).map((r) => r.code)).toEqual([250]);
  expect((await c.data('Subject: after\n\nbody\n', 1))[0]!.code).toBe(250);
  await c.cmd('QUIT');
  process.kill(pid, 'SIGTERM');
  const stop = setTimeout(() => child.kill('SIGKILL'), 40_000);
  expect(await exited).toBe(0);
  clearTimeout(stop);
});
