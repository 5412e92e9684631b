// `mailbag lmtpd` as a process at its limits: a spool on a full tmpfs (451 with a clear
// text, nothing partial left, Postfix keeps the mail and delivers it once there is
// room; too small for lmtpd's journal, and with the journal made but the disk filling
// behind it), an oversize message (SIZE advertised, 552), malformed LMTP, the connection cap.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { havePostfix, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { isRoot, makeSharedTempDir, removeTempDir } from '../helpers/mta-common.js';
import { need } from '../helpers/need.js';
import { LmtpClient } from '../unit/lmtp/lmtp-client.js';
import { readJobs, startLmtpd, tmpLeftovers, type Lmtpd } from '../unit/lmtp/lmtpd-process.js';
import { JOURNAL_SIZE } from '../../lib/lmtp/journal.js';

const canMount = need('root (mounts a small tmpfs for the full-spool test)', isRoot ? [] : ['uid 0'], 'run as root');

async function session(where: string | number): Promise<LmtpClient> {
  const c = await LmtpClient.connect(where);
  expect((await c.read()).code).toBe(220);
  expect((await c.cmd('LHLO t.test')).code).toBe(250);
  return c;
}

describe.skipIf(!canMount || !havePostfix())('a full spool', () => {
  let dir: string;
  let mnt: string;
  let lmtpd: Lmtpd;
  let pf: PostfixInstance;

  beforeAll(async () => {
    dir = makeSharedTempDir('lmtp-full');
    mnt = join(dir, 'fs');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0755', 'tmpfs', mnt]);
    lmtpd = await startLmtpd({ dir: mnt, peers: { hub: ['a.test'] }, socket: join(dir, 'lmtp.sock'), socketMode: '0666' });
    pf = await startPostfix({ transports: { 'a.test': `lmtp:unix:${lmtpd.socket}` } });
  });

  afterAll(async () => {
    await pf?.stop();
    await lmtpd?.stop();
    if (mnt) execFileSync('umount', [mnt]);
    if (dir) removeTempDir(dir);
  });

  it('answers 451 with a clear text, leaves nothing partial, and the MTA delivers once there is room', async () => {
    // no room for the journal: every job is committed with its own fsyncs
    expect(lmtpd.log()).toMatch(/no LMTP journal \(.*no space left on device.*\): every job is made durable with its own fsync/i);
    const line = '0123456789abcdef'.repeat(4);
    const big = `Subject: too big for the disk\n\n${`${line}\n`.repeat(6000)}`;
    // directly: the reply says why
    const c = await session(lmtpd.socket);
    await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<x@a.test>']);
    const [r] = await c.data(big, 1);
    c.destroy();
    expect(r!.code).toBe(451);
    expect(r!.raw).toMatch(/^451 4\.3\.0 not queued for hub: spool full: .*no space left on device/i);
    expect(tmpLeftovers(lmtpd.spool)).toEqual([]);
    expect(readJobs(lmtpd.spool, 'hub')).toEqual([]);

    // through Postfix: deferred, kept, delivered after the spool grows
    expect((await pf.sendmail(['-f', 's@src.test', '--', 'x@a.test'], big)).code).toBe(0);
    await pf.waitLog(/to=<x@a\.test>.*status=deferred .*451 4\.3\.0 not queued for hub: spool full/);
    expect(pf.queued()).toHaveLength(1);
    expect(tmpLeftovers(lmtpd.spool)).toEqual([]);
    execFileSync('mount', ['-o', 'remount,size=8m', mnt]);
    await pf.flush();
    await pf.waitQueueEmpty(60_000);
    const jobs = readJobs(lmtpd.spool, 'hub');
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.message).toContain('Subject: too big for the disk\n');
    expect(jobs[0]!.message.endsWith(`\n\n${`${line}\n`.repeat(6000)}`)).toBe(true);
  });
});

describe.skipIf(!canMount)('a spool filling up behind the journal', () => {
  let dir: string;
  let mnt: string;
  let lmtpd: Lmtpd;

  beforeAll(async () => {
    dir = makeSharedTempDir('lmtp-full-journal');
    mnt = join(dir, 'fs');
    mkdirSync(mnt);
    // the journal (made whole at start) and about 400 KiB more
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${JOURNAL_SIZE + 400 * 1024},mode=0755`, 'tmpfs', mnt]);
    lmtpd = await startLmtpd({ dir: mnt, peers: { hub: ['a.test'] }, socket: join(dir, 'lmtp.sock'), socketMode: '0666' });
  });

  afterAll(async () => {
    await lmtpd?.stop();
    if (mnt) execFileSync('umount', [mnt]);
    if (dir) removeTempDir(dir);
  });

  it('jobs answered 250 stay in the journal until there is room; new ones get 451 and leave nothing; none lost, none twice', async () => {
    expect(lmtpd.log()).not.toMatch(/no LMTP journal/);
    const line = '0123456789abcdef'.repeat(4);
    const body = (n: number): string => `Subject: filling ${n}\n\n${`${line}\n`.repeat(900)}`;
    const accepted: number[] = [];
    const refused: number[] = [];
    const c = await session(lmtpd.socket);
    try {
      for (let n = 0; n < 40 && refused.length === 0; n++) {
        await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<x@a.test>']);
        const [r] = await c.data(body(n), 1);
        if (r!.code === 250) accepted.push(n);
        else {
          expect(r!.raw).toMatch(/^451 4\.3\.0 not queued for hub: spool full: .*no space left on device/i);
          refused.push(n);
        }
        expect((await c.cmd('RSET')).code).toBe(250);
      }
    } finally {
      c.destroy();
    }
    expect(accepted.length).toBeGreaterThan(0);
    expect(refused).toHaveLength(1);
    // the writes into out/ failed (and are tried again); answered jobs are still held
    expect(lmtpd.log()).toMatch(/jobs in the LMTP journal could not be written into out\/ .*no space left on device/i);
    const subjects = (): string[] => readJobs(lmtpd.spool, 'hub').map((j) => /Subject: (filling \d+)/.exec(j.message)![1]!).sort();
    expect(subjects()).toEqual(accepted.map((n) => `filling ${n}`).sort());

    // room again: every answered job reaches out/, once; the refused one never does
    execFileSync('mount', ['-o', `remount,size=${JOURNAL_SIZE + 16 * 1024 * 1024}`, mnt]);
    const out = join(lmtpd.spool, 'out', 'hub');
    const deadline = Date.now() + 60_000;
    while ((existsSync(out) ? readdirSync(out).length : 0) < accepted.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(readdirSync(out)).toHaveLength(accepted.length);
    expect(subjects()).toEqual(accepted.map((n) => `filling ${n}`).sort());
    expect(lmtpd.log()).toMatch(/the LMTP journal's jobs are written into out\/ again/);
    // and new mail goes through the journal again
    const d = await session(lmtpd.socket);
    await d.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<x@a.test>']);
    expect((await d.data(body(99), 1))[0]!.code).toBe(250);
    d.destroy();
    expect(readJobs(lmtpd.spool, 'hub')).toHaveLength(accepted.length + 1);
    await lmtpd.stop();
    expect(readdirSync(out)).toHaveLength(accepted.length + 1);
    expect(tmpLeftovers(lmtpd.spool)).toEqual([]);
  });
});

describe('bounded memory (promise 7)', () => {
  let dir: string;
  let lmtpd: Lmtpd;

  beforeAll(async () => {
    dir = makeSharedTempDir('lmtp-memory');
    lmtpd = await startLmtpd({ dir, peers: { hub: ['a.test'], mx2: ['b.test'] }, extraToml: '\n[limits]\nmax_message_size = "300M"\n' });
  });

  afterAll(async () => {
    await lmtpd?.stop();
    if (dir) removeTempDir(dir);
  });

  it('a 200 MiB message for two peers streams through: peak RSS stays far below the message size', async () => {
    const { readFileSync, statSync } = await import('node:fs');
    const c = await session(lmtpd.socket);
    try {
      await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<x@a.test>', 'RCPT TO:<y@b.test>']);
      expect((await c.cmd('DATA')).code).toBe(354);
      const line = `${'m'.repeat(1022)}\r\n`;
      const chunk = Buffer.from(`${line}`.repeat(1024)); // 1 MiB
      await c.writeDrained('Subject: big\r\n\r\n');
      for (let i = 0; i < 200; i++) await c.writeDrained(chunk);
      await c.writeDrained('.\r\n');
      const replies = [await c.read(), await c.read()];
      expect(replies.map((r) => r.code)).toEqual([250, 250]);
    } finally {
      c.destroy();
    }
    const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${lmtpd.pid}/status`, 'latin1'))![1]) * 1024;
    process.stderr.write(`lmtpd peak RSS after a 200 MiB message: ${(hwm / 1048576).toFixed(1)} MiB\n`);
    expect(hwm).toBeLessThan(150 * 1024 * 1024);
    for (const peer of ['hub', 'mx2']) {
      const dirOut = join(lmtpd.spool, 'out', peer);
      const { readdirSync } = await import('node:fs');
      const [id] = readdirSync(dirOut);
      // CRLF became LF: 1023 bytes a line, 204,800 lines
      expect(statSync(join(dirOut, id!)).size).toBeGreaterThan(1023 * 204_800);
    }
  }, 240_000);
});

describe('bounded memory with docs/lmtp.md\'s 100 connections', () => {
  let dir: string;
  let lmtpd: Lmtpd;

  beforeAll(async () => {
    dir = makeSharedTempDir('lmtp-memory-wide');
    lmtpd = await startLmtpd({ dir, peers: { hub: ['a.test'] }, extraToml: 'max_connections = 100\n' });
  });

  afterAll(async () => {
    await lmtpd?.stop();
    if (dir) removeTempDir(dir);
  });

  it('100 connections in DATA at once, 6 MiB each: peak RSS stays far below what they carry', async () => {
    const { readFileSync, readdirSync } = await import('node:fs');
    const conns = await Promise.all(Array.from({ length: 100 }, () => session(lmtpd.socket)));
    try {
      for (const c of conns) {
        await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<x@a.test>']);
        expect((await c.cmd('DATA')).code).toBe(354);
      }
      // every connection is in the middle of its message at once, 256 KiB at a time
      const piece = Buffer.from(`${'w'.repeat(1022)}\r\n`.repeat(256));
      for (let round = 0; round < 24; round++) {
        await Promise.all(conns.map((c, i) => c.writeDrained(round === 0 ? Buffer.concat([Buffer.from(`Subject: wide ${i}\r\n\r\n`), piece]) : piece)));
      }
      for (const c of conns) c.write('.\r\n');
      const replies = await Promise.all(conns.map((c) => c.read()));
      expect(replies.map((r) => r.code)).toEqual(conns.map(() => 250));
    } finally {
      for (const c of conns) c.destroy();
    }
    const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${lmtpd.pid}/status`, 'latin1'))![1]) * 1024;
    process.stderr.write(`lmtpd peak RSS with 100 connections of 6 MiB each in DATA: ${(hwm / 1048576).toFixed(1)} MiB\n`);
    // 600 MiB were in flight at once; what stays is per connection (buffers, garbage not yet collected)
    expect(hwm).toBeLessThan(256 * 1024 * 1024);
    expect(readdirSync(join(lmtpd.spool, 'out', 'hub'))).toHaveLength(100);
  }, 240_000);
});

describe('limits and malformed input against the process', () => {
  let dir: string;
  let lmtpd: Lmtpd;

  beforeAll(async () => {
    dir = makeSharedTempDir('lmtp-limits');
    lmtpd = await startLmtpd({
      dir,
      peers: { hub: ['a.test'] },
      extraToml: 'max_connections = 2\nmax_recipients = 3\n\n[limits]\nmax_message_size = "64K"\n',
    });
  });

  afterAll(async () => {
    await lmtpd?.stop();
    if (dir) removeTempDir(dir);
  });

  it('advertises SIZE from limits.max_message_size and refuses more with 552, nothing stored', async () => {
    const c = await session(lmtpd.socket);
    try {
      const lhlo = await c.cmd('LHLO again.test');
      expect(lhlo.lines).toContain('SIZE 65536');
      expect((await c.cmd('MAIL FROM:<s@src.test> SIZE=70000')).raw).toMatch(/^552 5\.3\.4 .*65536/);
      await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<x@a.test>']);
      const [r] = await c.data(`Subject: big\n\n${'y'.repeat(99)}\n`.repeat(700), 1);
      expect(r!.raw).toMatch(/^552 5\.2\.2 message larger than the limit of 65536 bytes/);
      expect(readJobs(lmtpd.spool, 'hub')).toEqual([]);
      expect(tmpLeftovers(lmtpd.spool)).toEqual([]);
    } finally {
      c.destroy();
    }
  });

  it('caps recipients (lmtp.max_recipients) and connections (lmtp.max_connections)', async () => {
    const open: LmtpClient[] = [];
    try {
      const a = await session(lmtpd.socket);
      open.push(a);
      const replies = await a.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<1@a.test>', 'RCPT TO:<2@a.test>', 'RCPT TO:<3@a.test>', 'RCPT TO:<4@a.test>']);
      expect(replies.map((r) => r.code)).toEqual([250, 250, 250, 452]);
      open.push(await session(lmtpd.socket));
      const third = await LmtpClient.connect(lmtpd.socket);
      open.push(third);
      expect((await third.read()).raw).toMatch(/^421 .*too many connections \(lmtp\.max_connections = 2\)/);
    } finally {
      for (const c of open) c.destroy();
    }
    await new Promise((r) => setTimeout(r, 200));
  });

  it('malformed LMTP gets clear replies; NUL and over-long lines do not hurt the listener', async () => {
    const c = await LmtpClient.connect(lmtpd.socket);
    expect((await c.read()).code).toBe(220);
    expect((await c.cmd('HELO t.test')).code).toBe(500);
    expect((await c.cmd('LHLO')).raw).toMatch(/^501 /);
    expect((await c.cmd('LHLO t.test')).code).toBe(250);
    expect((await c.cmd('MAIL FROM:<s\u0000@src.test>')).code).toBe(501);
    expect((await c.cmd('MAIL FROM:<s@src.test> BODY=BINARYMIME')).code).toBe(501);
    expect((await c.cmd('MAIL FROM:<s@src.test>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<nobody@elsewhere.test>')).raw).toMatch(/^550 5\.1\.1 nobody@elsewhere\.test: no peer takes mail for elsewhere\.test/);
    const long = await c.cmd(`RCPT TO:<${'z'.repeat(20_000)}@a.test>`);
    // smtp-server's command line cap: the connection is ended with a 421 that says why
    expect(long.raw).toMatch(/^421 .*too long/i);
    c.destroy();
    // still serving
    const d = await session(lmtpd.socket);
    await d.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<ok@a.test>']);
    expect((await d.data('Subject: fine\n\nok\n', 1))[0]!.code).toBe(250);
    d.destroy();
    expect(readJobs(lmtpd.spool, 'hub')).toHaveLength(1);
  });

  it('a second listener on the same socket refuses to start (exit 75, one 4.3.0 line)', async () => {
    const { run } = await import('../helpers/mta-common.js');
    const { mailbagBin } = await import('../unit/lmtp/lmtpd-process.js');
    const r = await run(process.execPath, [mailbagBin, 'lmtpd', '--config', lmtpd.config], { timeoutMs: 20_000 });
    expect(r.code).toBe(75);
    expect(r.stderr).toMatch(/^4\.3\.0 mailbag: another listener is answering on .*lmtp\.sock; stop it first$/m);
  });

  it('stops on SIGTERM with exit 0 and removes its socket', async () => {
    const code = await lmtpd.stop();
    expect(code).toBe(0);
    expect(lmtpd.log()).toMatch(/SIGTERM: stopping/);
    const { existsSync } = await import('node:fs');
    expect(existsSync(lmtpd.socket)).toBe(false);
  });
});
