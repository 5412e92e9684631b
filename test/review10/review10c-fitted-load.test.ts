// review10c: lmtpd fitted to a low open-file limit (b85717f) under load. The start line
// says how many connections the limit leaves room for, keeping FD_HEADROOM (32)
// descriptors for the spool's files; but the journal's write-out opens the files of a
// whole batch at once (up to 256, writeJobFiles), so with that many connections
// delivering, the write-out runs out of descriptors (EMFILE), lmtpd stops using its
// journal ("could not be written into out/") and answers 451 to transactions it could
// have taken (and an accept past the limit is closed by libuv unseen again). At the
// room lmtpd itself announces, every transaction must be answered 250.

import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { makeSharedTempDir, removeTempDir } from '../helpers/mta-common.js';
import { LmtpClient } from '../unit/lmtp/lmtp-client.js';
import { isAlive, mailbagBin, writeLmtpdConfig } from '../unit/lmtp/lmtpd-process.js';

let dir: string;
let pid: number | undefined;

beforeEach(() => {
  dir = makeSharedTempDir('review10c-fitted');
});
afterEach(() => {
  if (pid !== undefined && isAlive(pid)) process.kill(pid, 'SIGKILL');
  pid = undefined;
  removeTempDir(dir);
});

async function fitted(size: number, per: number, together = false): Promise<void> {
  const { config, socket, spool } = writeLmtpdConfig({ dir, peers: { hub: ['a.test'] }, extraToml: 'max_connections = 300' });
  // exec: the shell's PID becomes lmtpd's
  const child = spawn('sh', ['-c', 'ulimit -n 200 && exec "$0" "$@"', process.execPath, mailbagBin, 'lmtpd', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
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
  const m = /open-file limit \(ulimit -n\) is 200, with \d+ open: room for (\d+) connection\(s\) at once/.exec(log);
  expect(m, log).not.toBeNull();
  const room = Number(m![1]);
  let arrived = 0;
  const codes: Record<string, number> = {};
  await Promise.all(Array.from({ length: room }, async (_, k) => {
    // a connection closed before its greeting (by lmtpd's connection limit, or by libuv
    // past the open-file limit) is counted, not retried
    let c: LmtpClient;
    try {
      c = await LmtpClient.connect(socket, 20_000);
      expect((await c.read()).code).toBe(220);
    } catch {
      codes.closed = (codes.closed ?? 0) + 1;
      arrived++;
      return;
    }
    expect((await c.cmd('LHLO t.test')).code).toBe(250);
    for (let i = 0; i < per; i++) {
      const r = await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<x@a.test>']);
      expect(r.map((x) => x.code)).toEqual([250]);
      let code: string;
      if (together) {
        // every connection's message in the middle of its DATA at once (each over 128 KiB
        // so far: staged in tmp/, a file open each), then each ends it
        expect((await c.cmd('DATA')).code).toBe(354);
        await c.writeDrained(`Subject: r10c ${k}/${i}\r\n\r\n${`${'x'.repeat(998)}\r\n`.repeat(size / 1000)}`);
        arrived++;
        const all = Date.now() + 30_000;
        while (arrived < room && Date.now() < all) await new Promise((r) => setTimeout(r, 20));
        const until = Date.now() + 5_000;
        while (readdirSync(join(spool, 'tmp')).length < room && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
        c.write('end\r\n.\r\n');
        code = String((await c.read()).code);
      } else {
        code = String((await c.data(`Subject: r10c ${k}/${i}\n\n${'x'.repeat(size)}\n`, 1))[0]!.code);
      }
      codes[code] = (codes[code] ?? 0) + 1;
      if (code !== '250') await c.cmd('RSET');
    }
    await c.cmd('QUIT');
  }));
  process.kill(pid, 'SIGTERM');
  const stop = setTimeout(() => child.kill('SIGKILL'), 40_000);
  expect(await exited).toBe(0);
  clearTimeout(stop);
  const emfile = log.split('\n').filter((l) => l.includes('EMFILE'));
  expect({ codes, emfile: emfile.length, first: emfile[0] }).toEqual({ codes: { 250: room * per }, emfile: 0, first: undefined });
}

// small messages: through the journal, written into out/ in batches
it('review10c R2: at ulimit -n 200, as many connections as lmtpd says it has room for each get 250 for every transaction (2 KB messages)', () => fitted(2000, 15), 120_000);

// messages over the journal's 128 KiB are staged in tmp/ as they arrive: a second
// descriptor per connection while its DATA is under way (here every connection's at once)
it('review10c R2: at ulimit -n 200, as many connections as lmtpd says it has room for each get 250 for every transaction (200 KB messages arriving at once)', () => fitted(200_000, 1, true), 120_000);
