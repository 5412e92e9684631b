// A server that stops reading in the middle of the message (a hung MTA, a full disk it
// waits on, a wedged content filter) while keeping the connection open: the client's
// write waits for 'drain', and before it waited for ever — with the peer's runner lock
// held, so every later `mailbag run` said "another runner is at work" and exited 0 while
// nothing was delivered. Now a write that makes no progress for the write timeout ends
// the attempt with a link error (temporary: the job is retried), as RFC 5321 §4.5.3.2.5
// bounds a data block.

import { createServer, type Socket } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { SmtpLinkError, SmtpSession } from '../../../lib/deliver/smtp-client.js';
import type { Transaction } from '../../../lib/deliver/message.js';

const sockets: Socket[] = [];
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  while (closers.length) await closers.pop()!();
});

/** Answers the greeting and the envelope, says 354 to DATA, then reads nothing more. */
async function stallingServer(): Promise<number> {
  const srv = createServer((sock) => {
    sockets.push(sock);
    let buf = '';
    sock.write('220 stall.example ESMTP\r\n');
    sock.on('data', (b: Buffer) => {
      buf += b.toString('latin1');
      let i;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (/^EHLO /i.test(line)) sock.write('250 stall.example\r\n');
        else if (/^(MAIL|RCPT)/i.test(line)) sock.write('250 ok\r\n');
        else if (/^DATA/i.test(line)) {
          sock.write('354 go on\r\n');
          // the server wedges: no more reading, the connection stays open
          sock.pause();
          sock.removeAllListeners('data');
          return;
        }
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => srv.close(() => r())));
  return (srv.address() as { port: number }).port;
}

it('a server that stops reading during DATA: the send fails with a link error after the write timeout, not never', async () => {
  const port = await stallingServer();
  const s = await SmtpSession.connect({ host: '127.0.0.1', port }, { lmtp: false, heloName: 'home', writeTimeoutMs: 500 });
  // more than the socket buffers on both ends can hold (tcp_wmem 4 MiB + tcp_rmem 32 MiB at most)
  const message = Buffer.alloc(40 * 1024 * 1024, 'x\r\n'.repeat(40) + 'y'.repeat(78) + '\r\n');
  const tx: Transaction = { index: 0, sender: 's@x.example', mailParams: [], recipients: [{ address: 'r@y.example', params: [] }], body: { path: '', start: 0, end: undefined, stuffed: false, buffer: message }, line: 0 };
  const err = await s.send(tx, new Set()).then(() => undefined, (e: unknown) => e);
  s.close();
  expect(err).toBeInstanceOf(SmtpLinkError);
  expect((err as SmtpLinkError).message).toBe('the server took no data for 0.5 s (it stopped reading)');
  // the message end was never sent: nothing can have been accepted
  expect((err as SmtpLinkError).afterData).toBe(false);
}, 30_000);
