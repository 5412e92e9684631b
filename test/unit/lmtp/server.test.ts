// The LMTP listener over a real unix socket (and TCP), with an in-memory store: routing
// at RCPT, one BSMTP job per peer with every ESMTP parameter, per-recipient replies,
// limits, malformed input, spool errors, retried transactions, stale sockets, stop.

import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LIMITS } from '../../../lib/limits.js';
import { buildRouter } from '../../../lib/lmtp/route.js';
import { coalesceReplies, LmtpServer, removeStaleSocket } from '../../../lib/lmtp/server.js';
import { LmtpClient } from './lmtp-client.js';
import { MemoryLedger, MemoryStore } from './memory-store.js';

const router = buildRouter({
  peers: {
    hub: { name: 'hub', domains: ['example.org'], addresses: [] },
    backup: { name: 'backup', domains: ['example.net'], addresses: ['special@example.org'] },
  },
});

let dir: string;
let sock: string;
let store: MemoryStore;
let ledger: MemoryLedger;
let server: LmtpServer;
let clients: LmtpClient[];

async function start(over: Partial<ConstructorParameters<typeof LmtpServer>[0]> = {}): Promise<void> {
  server = new LmtpServer({
    router, store, ledger, hostname: 'lmtp.test', maxMessageSize: 10_000, maxRecipients: 5, maxConnections: 3, ...over,
  });
  await server.listenUnix(sock, 0o660);
}

async function client(): Promise<LmtpClient> {
  const c = await LmtpClient.connect(sock);
  clients.push(c);
  const greeting = await c.read();
  expect(greeting.code).toBe(220);
  return c;
}

async function lhlo(): Promise<LmtpClient> {
  const c = await client();
  expect((await c.cmd('LHLO mta.test')).code).toBe(250);
  return c;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-lmtp-unit-'));
  sock = join(dir, 'lmtp.sock');
  store = new MemoryStore();
  ledger = new MemoryLedger();
  clients = [];
});

afterEach(async () => {
  for (const c of clients) c.destroy();
  await server?.close(1000);
  rmSync(dir, { recursive: true, force: true });
});

describe('LMTP listener', () => {
  it('advertises the extensions and SIZE, and makes the socket 0660', async () => {
    await start();
    expect(statSync(sock).mode & 0o777).toBe(0o660);
    const c = await client();
    const r = await c.cmd('LHLO mta.test');
    expect(r.code).toBe(250);
    for (const ext of ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'DSN', 'SIZE 10000']) {
      expect(r.lines).toContain(ext);
    }
    expect(r.lines).not.toContain('STARTTLS');
  });

  it('makes one BSMTP job per peer with every ESMTP parameter, replies per recipient in order', async () => {
    await start();
    const c = await lhlo();
    const rcpt = await c.envelope('MAIL FROM:<sender@src.test> RET=HDRS ENVID=id+2B42=x BODY=8BITMIME SIZE=120', [
      'RCPT TO:<a@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Borig@example.org',
      'RCPT TO:<b@example.net> NOTIFY=NEVER',
      'RCPT TO:<c@Example.ORG>',
      'RCPT TO:<special@example.org>',
    ]);
    expect(rcpt.map((r) => r.code)).toEqual([250, 250, 250, 250]);
    const msg = 'Subject: hi\n\n.leading dot\n..two dots\nlast line\n';
    const replies = await c.data(msg, 4);
    expect(replies.map((r) => r.code)).toEqual([250, 250, 250, 250]);
    expect(replies[0]!.raw).toMatch(/^250 2\.6\.0 queued for hub as job job\d+$/);
    expect(replies[1]!.raw).toMatch(/queued for backup/);
    expect(replies[2]!.raw).toMatch(/queued for hub/);
    expect(replies[3]!.raw).toMatch(/queued for backup/);
    expect(store.jobs).toHaveLength(2);
    const hub = store.jobs.find((j) => j.header.to === 'hub')!;
    const backup = store.jobs.find((j) => j.header.to === 'backup')!;
    expect(hub.header).toEqual({ to: 'hub', command: 'rsmtp', args: [], sender: 'sender@src.test', recipients: ['a@example.org', 'c@Example.ORG'] });
    const body = 'Subject: hi\n\n..leading dot\n...two dots\nlast line\n.\n';
    expect(hub.payload.toString()).toBe(
      'MAIL FROM:<sender@src.test> RET=HDRS ENVID=id+2B42+3Dx BODY=8BITMIME SIZE=120\n' +
      'RCPT TO:<a@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Borig@example.org\n' +
      'RCPT TO:<c@Example.ORG>\n' +
      `DATA\n${body}`,
    );
    expect(backup.payload.toString()).toBe(
      'MAIL FROM:<sender@src.test> RET=HDRS ENVID=id+2B42+3Dx BODY=8BITMIME SIZE=120\n' +
      'RCPT TO:<b@example.net> NOTIFY=NEVER\nRCPT TO:<special@example.org>\n' +
      `DATA\n${body}`,
    );
    expect(store.open).toBe(0);
  });

  it('keeps the null sender, SMTPUTF8 and an xn-- domain as sent', async () => {
    await start();
    const c = await lhlo();
    await c.envelope('MAIL FROM:<> SMTPUTF8', ['RCPT TO:<jörg@example.org>']);
    expect((await c.data('x\n', 1))[0]!.code).toBe(250);
    await c.envelope('MAIL FROM:<bounce@xn--bcher-kva.example>', ['RCPT TO:<u@xn--bcher-kva.example.org>']);
    // no peer has that domain: refused at RCPT, so DATA has no recipients
    const c2 = await lhlo();
    await c2.envelope('MAIL FROM:<bounce@xn--bcher-kva.example>', ['RCPT TO:<u@example.org>']);
    expect((await c2.data('y\n', 1))[0]!.code).toBe(250);
    expect(store.jobs[0]!.payload.toString('utf8')).toBe('MAIL FROM:<> SMTPUTF8\nRCPT TO:<jörg@example.org>\nDATA\nx\n.\n');
    expect(store.jobs[0]!.header.sender).toBe('');
    expect(store.jobs[1]!.payload.toString()).toMatch(/^MAIL FROM:<bounce@xn--bcher-kva\.example>\n/);
  });

  it('refuses a recipient no peer takes with 550 and a clear text; the others go on', async () => {
    await start();
    const c = await lhlo();
    const r = await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<x@nowhere.test>', 'RCPT TO:<a@example.org>']);
    expect(r[0]!.code).toBe(550);
    expect(r[0]!.raw).toMatch(/^550 5\.1\.1 x@nowhere\.test: no peer takes mail for nowhere\.test/);
    expect(r[1]!.code).toBe(250);
    const replies = await c.data('hello\n', 1);
    expect(replies[0]!.code).toBe(250);
    expect(store.jobs).toHaveLength(1);
    expect(store.jobs[0]!.header.recipients).toEqual(['a@example.org']);
  });

  it('sends a default peer what nothing else matches', async () => {
    await start({ router: buildRouter({ peers: { hub: { name: 'hub', domains: [], addresses: [] } }, defaultPeer: 'hub' }) });
    const c = await lhlo();
    await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<x@anywhere.test>', 'RCPT TO:<postmaster>']);
    expect((await c.data('hi\n', 2)).map((r) => r.code)).toEqual([250, 250]);
    expect(store.jobs[0]!.header).toMatchObject({ to: 'hub', recipients: ['x@anywhere.test', 'postmaster'] });
  });

  it('answers 451 for the recipients of a peer whose job failed, 250 for the others; nothing partial stays', async () => {
    await start();
    store.failWrite.add('backup');
    const c = await lhlo();
    await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<a@example.org>', 'RCPT TO:<b@example.net>']);
    const replies = await c.data('hello\n', 2);
    expect(replies[0]!.code).toBe(250);
    expect(replies[1]!.code).toBe(451);
    expect(replies[1]!.raw).toMatch(/^451 4\.3\.0 not queued for backup: .*no space left/);
    expect(store.jobs.map((j) => j.header.to)).toEqual(['hub']);
    expect(store.open).toBe(0);
    // the MTA sends the deferred recipient again once the spool has room
    store.failWrite.clear();
    await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<b@example.net>']);
    expect((await c.data('hello\n', 1))[0]!.code).toBe(250);
    expect(store.jobs.map((j) => j.header.to)).toEqual(['hub', 'backup']);
  });

  it('answers 451 when the commit itself fails', async () => {
    await start();
    store.failCommit.add('hub');
    const c = await lhlo();
    await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<a@example.org>']);
    const [r] = await c.data('hello\n', 1);
    expect(r!.code).toBe(451);
    expect(store.jobs).toHaveLength(0);
    expect(store.open).toBe(0);
  });

  it('refuses a message over SIZE: at MAIL when declared, after DATA when not; nothing stored', async () => {
    await start({ maxMessageSize: 1000 });
    const c = await lhlo();
    const m = await c.cmd('MAIL FROM:<s@src.test> SIZE=5000');
    expect(m.code).toBe(552);
    await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<a@example.org>', 'RCPT TO:<b@example.net>']);
    const replies = await c.data(`Subject: big\n\n${'x'.repeat(100)}\n`.repeat(30), 2);
    expect(replies.map((r) => r.code)).toEqual([552, 552]);
    expect(replies[0]!.raw).toMatch(/message larger than the limit of 1000 bytes/);
    expect(store.jobs).toHaveLength(0);
    expect(store.open).toBe(0);
    expect(store.aborted).toBe(2);
    // the connection is still usable
    await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<a@example.org>']);
    expect((await c.data('small\n', 1))[0]!.code).toBe(250);
  });

  it('refuses a message with a line longer than a BSMTP job carries (554 5.6.0, per recipient); nothing stored', async () => {
    await start({ maxMessageSize: 4 << 20 });
    const c = await lhlo();
    await c.envelope('MAIL FROM:<>', ['RCPT TO:<a@example.org>', 'RCPT TO:<b@example.net>']);
    const replies = await c.data(`Subject: long\n\n${'x'.repeat(LIMITS.maxBsmtpTextLine + 1)}\nend\n`, 2);
    expect(replies.map((r) => r.code)).toEqual([554, 554]);
    expect(replies[0]!.raw).toMatch(/^554 5\.6\.0 a line of the message is longer than 1048576 bytes, more than a BSMTP job carries/);
    expect(store.jobs).toHaveLength(0);
    expect(store.open).toBe(0);
    expect(store.aborted).toBe(2);
    // a line of exactly that length is taken; the connection is still usable
    await c.envelope('MAIL FROM:<>', ['RCPT TO:<a@example.org>']);
    expect((await c.data(`Subject: long\n\n${'x'.repeat(LIMITS.maxBsmtpTextLine)}\nend\n`, 1))[0]!.code).toBe(250);
  });

  it('refuses at RCPT and MAIL an address the peer\'s BSMTP reader would refuse (553), takes the others', async () => {
    await start({});
    const c = await lhlo();
    const r = await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<-oQ@example.org>', 'RCPT TO:<"a\\"b@example.org>', 'RCPT TO:<a@example.org>']);
    expect(r.map((x) => x.code)).toEqual([553, 553, 250]);
    expect(r[0]!.raw).toMatch(/^553 5\.1\.3 recipient "-oQ@example\.org" begins with "-": a BSMTP job cannot carry it/);
    expect(r[1]!.raw).toMatch(/^553 5\.1\.3 recipient .*cannot be written in a BSMTP path/);
    const [d] = await c.data('hello\n', 1);
    expect(d!.code).toBe(250);
    expect(store.jobs).toHaveLength(1);
    expect(store.jobs[0]!.header.recipients).toEqual(['a@example.org']);
    await c.cmd('RSET');
    const m = await c.cmd('MAIL FROM:<"s\\"x@src.test>');
    expect(m.raw).toMatch(/^553 5\.1\.[0-9] sender .*cannot be written in a BSMTP path/);
  });

  it('refuses at RCPT and MAIL an address in bytes that are not UTF-8 (Latin-1), 553 5.1.3, instead of queueing U+FFFD; UTF-8 addresses are taken', async () => {
    await start({});
    const c = await lhlo();
    expect((await c.cmd('MAIL FROM:<s@src.test>')).code).toBe(250);
    // "jörg" in Latin-1: the byte 0xF6 alone, not UTF-8
    c.write(Buffer.concat([Buffer.from('RCPT TO:<j'), Buffer.from([0xf6]), Buffer.from('rg@example.org>\r\n')]));
    const bad = await c.read();
    expect(bad.raw).toMatch(/^553 5\.1\.3 recipient address is not UTF-8/);
    expect((await c.cmd('RCPT TO:<a@example.org>')).code).toBe(250);
    expect((await c.data('hello\n', 1))[0]!.code).toBe(250);
    expect(store.jobs).toHaveLength(1);
    expect(store.jobs[0]!.header.recipients).toEqual(['a@example.org']);
    // the sender the same way
    c.write(Buffer.concat([Buffer.from('MAIL FROM:<m'), Buffer.from([0xfc]), Buffer.from('ller@src.test>\r\n')]));
    expect((await c.read()).raw).toMatch(/^553 5\.1\.3 sender address is not UTF-8/);
    // the same names in UTF-8 (SMTPUTF8) are addresses like any other
    c.write(Buffer.from('MAIL FROM:<m\u00fcller@src.test> SMTPUTF8\r\n', 'utf8'));
    expect((await c.read()).code).toBe(250);
    c.write(Buffer.from('RCPT TO:<j\u00f6rg@example.org>\r\n', 'utf8'));
    expect((await c.read()).code).toBe(250);
    expect((await c.data('hello\n', 1))[0]!.code).toBe(250);
    expect(store.jobs).toHaveLength(2);
    expect(store.jobs[1]!.header.sender).toBe('m\u00fcller@src.test');
    expect(store.jobs[1]!.header.recipients).toEqual(['j\u00f6rg@example.org']);
    expect(JSON.stringify(store.jobs.map((j) => j.header))).not.toContain('\ufffd');
  });

  it('limits recipients per transaction and connections', async () => {
    await start({ maxRecipients: 2, maxConnections: 2 });
    const c = await lhlo();
    const r = await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<a@example.org>', 'RCPT TO:<b@example.org>', 'RCPT TO:<c@example.org>']);
    expect(r.map((x) => x.code)).toEqual([250, 250, 452]);
    expect(r[2]!.raw).toMatch(/^452 4\.5\.3 /);
    await client();
    const third = await LmtpClient.connect(sock);
    clients.push(third);
    const refused = await third.read();
    expect(refused.code).toBe(421);
    expect(refused.raw).toMatch(/too many connections/);
  });

  it('answers malformed LMTP with clear 5xx replies and stays in sync', async () => {
    await start();
    const c = await client();
    expect((await c.cmd('EHLO mta.test')).code).toBe(500); // LMTP has LHLO only
    expect((await c.cmd('MAIL FROM:<s@src.test>')).code).toBe(503);
    expect((await c.cmd('LHLO mta.test')).code).toBe(250);
    expect((await c.cmd('FROB')).code).toBe(500);
    expect((await c.cmd('MAIL FROM:s@src.test')).code).toBe(501);
    expect((await c.cmd('MAIL FROM:<s@src.test> RET=MAYBE')).code).toBe(501);
    expect((await c.cmd('MAIL FROM:<s@src.test> ENVID=a ENVID=b')).code).toBe(501);
    expect((await c.cmd('RCPT TO:<a@example.org>')).code).toBe(503);
    expect((await c.cmd('DATA')).code).toBe(503);
    expect((await c.cmd('MAIL FROM:<s@src.test>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<a@example.org> NOTIFY=SOMETIMES')).code).toBe(501);
    expect((await c.cmd('RCPT TO:<a@example.org> ORCPT=nosemicolon')).code).toBe(501);
    expect((await c.cmd('RCPT TO:<a@example.org>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<A@example.org>')).code).toBe(452); // duplicate in one transaction
    expect((await c.cmd(`RCPT TO:<${'x'.repeat(1200)}@example.org>`)).code).toBe(501);
    const [ok] = await c.data('fine\n', 1);
    expect(ok!.code).toBe(250);
    expect(store.jobs).toHaveLength(1);
    expect((await c.cmd('QUIT')).code).toBe(221);
  });

  it('pipelined commands get their replies in order', async () => {
    await start();
    const c = await lhlo();
    c.write('MAIL FROM:<s@src.test>\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n');
    const codes = [];
    for (let i = 0; i < 4; i++) codes.push((await c.read()).code);
    expect(codes).toEqual([250, 250, 250, 354]);
    c.write('Subject: p\r\n\r\nbody\r\n.\r\nRSET\r\n');
    const after = [await c.read(), await c.read(), await c.read()];
    expect(after.map((r) => r.code)).toEqual([250, 250, 250]);
    expect(store.jobs).toHaveLength(2);
  });

  it('drops the partial job when the client goes away mid-message', async () => {
    await start();
    const c = await lhlo();
    await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<a@example.org>', 'RCPT TO:<b@example.net>']);
    expect((await c.cmd('DATA')).code).toBe(354);
    c.write('Subject: cut\r\n\r\nhalf a message');
    await new Promise((r) => setTimeout(r, 200));
    c.destroy();
    const deadline = Date.now() + 5000;
    while (store.aborted < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(store.aborted).toBe(2);
    expect(store.open).toBe(0);
    expect(store.jobs).toHaveLength(0);
  });

  it('stores a transaction the MTA sends again after a lost reply only once per peer', async () => {
    await start();
    for (let round = 0; round < 2; round++) {
      const c = await lhlo();
      await c.envelope('MAIL FROM:<s@src.test> ENVID=q1', ['RCPT TO:<a@example.org>', 'RCPT TO:<b@example.net>']);
      const replies = await c.data('Message-ID: <1@src.test>\n\nsame\n', 2);
      expect(replies.map((r) => r.code)).toEqual([250, 250]);
      if (round === 1) expect(replies[0]!.raw).toMatch(/already queued for hub as job job0001/);
    }
    expect(store.jobs).toHaveLength(2);
    expect(store.open).toBe(0);
    // a different recipient set is a different transaction
    const c = await lhlo();
    await c.envelope('MAIL FROM:<s@src.test> ENVID=q1', ['RCPT TO:<z@example.org>']);
    await c.data('Message-ID: <1@src.test>\n\nsame\n', 1);
    expect(store.jobs).toHaveLength(3);
  });

  it('also listens on 127.0.0.1:PORT', async () => {
    await start();
    const port = await server.listenTcp('127.0.0.1', 0);
    const c = await LmtpClient.connect(port);
    clients.push(c);
    expect((await c.read()).code).toBe(220);
    expect((await c.cmd('LHLO mta.test')).code).toBe(250);
    await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<a@example.org>']);
    expect((await c.data('tcp\n', 1))[0]!.code).toBe(250);
  });

  it('stops gracefully: a transaction in progress finishes, new connections are refused, the socket goes', async () => {
    await start();
    const c = await lhlo();
    await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<a@example.org>']);
    expect((await c.cmd('DATA')).code).toBe(354);
    c.write('Subject: slow\r\n\r\nfirst half\r\n');
    const closed = server.close(5000);
    await new Promise((r) => setTimeout(r, 100));
    c.write('second half\r\n.\r\n');
    expect((await c.read()).code).toBe(250);
    c.end();
    await closed;
    expect(store.jobs).toHaveLength(1);
    expect(() => statSync(sock)).toThrow();
  });
});

describe('stale socket handling', () => {
  it('replaces a socket nobody answers on, refuses a live one and a non-socket', async () => {
    // a socket file left behind: bind, then close the fd without unlinking (as SIGKILL would)
    const stale = join(dir, 'stale.sock');
    const s = createServer();
    await new Promise<void>((r) => s.listen(stale, r));
    const live = stale;
    await expect(removeStaleSocket(live)).rejects.toThrow(/another listener is answering/);
    // node unlinks on close; leave a dead socket file by binding from a child that is killed
    await new Promise<void>((r) => s.close(() => r()));
    const { spawnSync } = await import('node:child_process');
    const dead = join(dir, 'dead.sock');
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(dead)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(statSync(dead).isSocket()).toBe(true);
    await removeStaleSocket(dead);
    expect(() => statSync(dead)).toThrow();
    const file = join(dir, 'plain');
    writeFileSync(file, 'x');
    await expect(removeStaleSocket(file)).rejects.toThrow(/is not a socket/);
    // and the listener starts over a dead socket
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    await start();
    const c = await lhlo();
    expect(c.closed).toBe(false);
  });
});

describe('coalesceReplies', () => {
  it('holds the writes of one turn of the event loop and sends them together right after it', async () => {
    let serverSide: Socket | undefined;
    const srv = createServer((s) => {
      serverSide = s;
    });
    await new Promise<void>((r) => srv.listen(sock, r));
    const c = connect(sock);
    const got: string[] = [];
    c.setEncoding('latin1');
    c.on('data', (d: string) => got.push(d));
    try {
      for (let i = 0; i < 200 && !serverSide; i++) await new Promise((r) => setTimeout(r, 5));
      const s = serverSide!;
      coalesceReplies(s);
      s.write('250 2.1.0 Accepted\r\n');
      s.write('250 2.1.5 Accepted\r\n');
      s.write('354 End data\r\n');
      // still held: nothing has gone to the kernel yet
      expect(s.writableCorked).toBe(1);
      expect(s.writableLength).toBe(20 + 20 + 14);
      await new Promise((r) => setImmediate(r));
      expect(s.writableCorked).toBe(0);
      expect(s.writableLength).toBe(0);
      // and the next turn's writes are held again, then sent
      s.write('250 2.0.0 Flushed\r\n');
      expect(s.writableLength).toBe(19);
      for (let i = 0; i < 200 && got.join('').length < 73; i++) await new Promise((r) => setTimeout(r, 5));
      expect(got.join('')).toBe('250 2.1.0 Accepted\r\n250 2.1.5 Accepted\r\n354 End data\r\n250 2.0.0 Flushed\r\n');
      // end() sends what is held
      s.write('221 Bye\r\n');
      s.end();
      await new Promise<void>((r) => c.once('end', () => r()));
      expect(got.join('').endsWith('221 Bye\r\n')).toBe(true);
    } finally {
      c.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});

describe('greetAtOnce', () => {
  it('greets a new connection without smtp-server\'s 100 ms early-talker wait, once', async () => {
    await start();
    // with setTimeout held, smtp-server's own timer never fires: only greetAtOnce can greet
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const raw = connect(sock);
    let got = '';
    raw.setEncoding('latin1');
    raw.on('data', (d: string) => (got += d));
    try {
      for (let i = 0; i < 20_000 && !got.includes('\r\n'); i++) await new Promise((r) => setImmediate(r));
      expect(got).toMatch(/^220 lmtp\.test LMTP mailbag lmtpd ready\r\n$/);
      // the library's timer comes later and finds the connection greeted
      vi.advanceTimersByTime(200);
      raw.write('LHLO mta.test\r\n');
      for (let i = 0; i < 20_000 && !got.includes('250 SIZE'); i++) await new Promise((r) => setImmediate(r));
      expect(got.match(/^220 /gm)).toHaveLength(1);
      expect(got).toMatch(/250 SIZE 10000\r\n$/);
    } finally {
      vi.useRealTimers();
      raw.destroy();
    }
  });
});
