// Bench-only LMTP listeners that store nothing, for `npm run bench -- lmtp --methods …,sink`:
// how fast can this Postfix deliver over LMTP at all? Each runs as a child process of
// the bench (its CPU measured apart, like lmtpd's) on a unix socket, and answers every
// transaction as soon as its data has ended. Three kinds:
//
//   sink         a minimal hand-written LMTP server: reads commands (pipelined ones
//                too), answers all the commands of one read(2) in one write(2), scans
//                DATA for the terminating <CRLF>.<CRLF> and answers 250 per recipient.
//                No library, no parsing beyond the verb: the floor for any listener.
//   smtp-server  the library lmtpd uses, configured as lmtpd configures it (the same
//                options, one write per turn, the greeting at once), its onData draining
//                the stream and answering 250 per recipient: the library's own cost.
//   lmtp-server  lmtpd's listener code (lib/lmtp/server.ts: routing, envelope, BSMTP
//                encoding, digest) with a store that discards the job and no ledger:
//                everything of lmtpd but the spool and the fsyncs.
//
// Not a server for anything else: no limits, no checks of the envelope, nothing kept.
// Usage (the bench forks it): node dist/bench/lmtp-sink.js KIND SOCKET
// It talks to the bench over the fork's IPC channel: it sends {ready: true} once
// listening, then {n} (transactions answered so far) at most every 10 ms, and at once
// for the first one after the bench sent {target} and when n reaches that target.

import { chmodSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { buildRouter } from '../lib/lmtp/route.js';
import { coalesceReplies, greetAtOnce, LmtpServer, lmtpProtocolOptions } from '../lib/lmtp/server.js';
import type { JobStore } from '../lib/lmtp/store.js';

export const SINK_KINDS = ['sink', 'smtp-server', 'lmtp-server'] as const;
export type SinkKind = (typeof SINK_KINDS)[number];

/** what the sinks advertise: smtp-server's list as lmtpd configures it */
const MAX_SIZE = 52_428_800;
const LHLO_REPLY = ['sink.bench', 'PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'DSN', `SIZE ${MAX_SIZE}`]
  .map((l, i, a) => `250${i === a.length - 1 ? ' ' : '-'}${l}\r\n`).join('');
const END_OF_DATA = Buffer.from('\r\n.\r\n', 'latin1');

/** The minimal LMTP server. `answered` is called once per transaction answered. */
export function minimalSink(answered: () => void): Server {
  return createServer((sock: Socket) => {
    let inData = false;
    let rcpts = 0;
    // command mode: the bytes of an unfinished line; data mode: the last bytes seen
    // (at most 4), so a terminator split over two reads is found
    let pending = Buffer.alloc(0);
    sock.on('error', () => sock.destroy());
    sock.write('220 sink.bench LMTP sink ready\r\n');
    sock.on('data', (chunk: Buffer) => {
      let buf = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      let out = '';
      let quit = false;
      while (buf.length && !quit) {
        if (inData) {
          const end = buf.indexOf(END_OF_DATA);
          if (end < 0) {
            buf = Buffer.from(buf.subarray(Math.max(0, buf.length - 4)));
            break;
          }
          for (let i = 0; i < rcpts; i++) out += '250 2.0.0 Ok: discarded\r\n';
          answered();
          inData = false;
          rcpts = 0;
          buf = buf.subarray(end + END_OF_DATA.length);
          continue;
        }
        const nl = buf.indexOf(10);
        if (nl < 0) break;
        const verb = buf.toString('latin1', 0, Math.min(4, nl)).toUpperCase();
        buf = buf.subarray(nl + 1);
        switch (verb) {
          case 'LHLO':
          case 'EHLO':
            out += LHLO_REPLY;
            break;
          case 'MAIL':
            rcpts = 0;
            out += '250 2.1.0 Ok\r\n';
            break;
          case 'RCPT':
            rcpts++;
            out += '250 2.1.5 Ok\r\n';
            break;
          case 'DATA':
            if (rcpts === 0) {
              out += '503 5.5.1 No valid recipients\r\n';
              break;
            }
            out += '354 End data with <CR><LF>.<CR><LF>\r\n';
            inData = true;
            // the data begins at the start of a line: a lone "." right away ends it
            buf = Buffer.concat([Buffer.from('\r\n', 'latin1'), buf]);
            break;
          case 'RSET':
            rcpts = 0;
            out += '250 2.0.0 Ok\r\n';
            break;
          case 'NOOP':
            out += '250 2.0.0 Ok\r\n';
            break;
          case 'QUIT':
            out += '221 2.0.0 Bye\r\n';
            quit = true;
            break;
          default:
            out += '500 5.5.2 Command not recognized\r\n';
        }
      }
      pending = quit ? Buffer.alloc(0) : Buffer.from(buf);
      if (quit) sock.end(out);
      else if (out) sock.write(out);
    });
  });
}

/** smtp-server as lmtpd configures it (lib/lmtp/server.ts lmtpProtocolOptions), draining each message. */
export function librarySink(answered: () => void): SMTPServer {
  const server = new SMTPServer({
    ...lmtpProtocolOptions({ hostname: 'sink.bench', maxMessageSize: MAX_SIZE, maxRecipients: 1000 }),
    logger: false,
    onData: (stream, session, cb) => {
      stream.on('data', () => undefined);
      stream.once('end', () => {
        answered();
        cb(null, session.envelope.rcptTo.map(() => 'Ok: discarded') as unknown as string);
      });
    },
  });
  (server as unknown as { server: Server }).server.on('connection', coalesceReplies);
  greetAtOnce(server);
  return server;
}

/** lmtpd's listener with a store that keeps nothing (no spool, no fsync, no ledger). */
export function listenerSink(answered: () => void): LmtpServer {
  let next = 0;
  const store: JobStore = {
    begin: () => Promise.resolve({
      write: () => undefined,
      commit: () => {
        answered();
        return Promise.resolve(`discarded-${++next}`);
      },
      abort: () => Promise.resolve(),
    }),
  };
  return new LmtpServer({
    router: buildRouter({ peers: { hub: { name: 'hub', domains: ['lmtp-server.test', 'lmtp.test'], addresses: [] } } }),
    store,
    hostname: 'sink.bench',
    maxMessageSize: MAX_SIZE,
    maxRecipients: 1000,
    maxConnections: 1000,
  });
}

async function main(kind: string | undefined, socket: string | undefined): Promise<void> {
  if (!(SINK_KINDS as readonly string[]).includes(kind ?? '') || !socket || !process.send) {
    process.stderr.write(`usage (forked by the lmtp bench): lmtp-sink.js ${SINK_KINDS.join('|')} SOCKET\n`);
    process.exit(64);
  }
  const send = (m: object): void => void process.send!(m);
  let n = 0;
  let target = Infinity;
  let firstDue = false;
  let timer: NodeJS.Timeout | undefined;
  const answered = (): void => {
    n++;
    if (n >= target || firstDue) {
      firstDue = false;
      if (n >= target) target = Infinity;
      send({ n });
    } else {
      timer ??= setTimeout(() => {
        timer = undefined;
        send({ n });
      }, 10);
    }
  };
  process.on('message', (m: { target?: number; stop?: boolean }) => {
    if (typeof m.target === 'number') {
      target = m.target;
      firstDue = true;
    }
    if (m.stop) process.exit(0);
  });
  try {
    unlinkSync(socket);
  } catch {
    // none left over
  }
  const listen = (start: (done: () => void) => void): Promise<void> => new Promise((resolve) => start(resolve));
  if (kind === 'sink') {
    const s = minimalSink(answered);
    await listen((done) => s.listen(socket, done));
  } else if (kind === 'smtp-server') {
    const s = librarySink(answered);
    await listen((done) => s.listen(socket, done));
  } else {
    await listenerSink(answered).listenUnix(socket, 0o666);
  }
  chmodSync(socket, 0o666);
  send({ ready: true });
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!) && process.send) {
  void main(process.argv[2], process.argv[3]);
}
