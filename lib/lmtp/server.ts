// The LMTP listener: smtp-server in LMTP mode on a unix socket and/or 127.0.0.1:PORT.
// Each recipient is routed to a peer at RCPT (no peer: 550). After DATA the message
// becomes one BSMTP job per peer, streamed into the spool as it arrives (bounded
// memory); the per-recipient replies are sent only once that peer's job is durable
// (promise 1). A spool error answers 451 for that peer's recipients only, so the MTA
// keeps exactly the mail that is not safe here. A transaction the MTA sends again after
// losing our reply is recognised by its payload digest (DedupLedger) and not stored twice.

import cluster from 'node:cluster';
import { createHash, type Hash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, realpathSync, statSync, unlinkSync } from 'node:fs';
import { connect, type Server, type Socket } from 'node:net';
import { dirname, resolve } from 'node:path';
import { finished } from 'node:stream';
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { checkBsmtpEnvelope } from '../bsmtp/envelope.js';
import { asMailbagError, ConfigError, MailbagError } from '../errors.js';
import { LIMITS } from '../limits.js';
import { LmtpBodyEncoder } from './body.js';
import { envelopeLines, type ParsedAddress } from './envelope.js';
import type { Router } from './route.js';
import type { DedupLedger, JobDraft, JobStore } from './store.js';

export interface LmtpServerOptions {
  router: Router;
  store: JobStore;
  /** dedup of retried transactions; without it a lost reply means a second job */
  ledger?: DedupLedger | undefined;
  /** the name in the greeting and LHLO reply */
  hostname: string;
  /** largest message (DATA bytes as received), advertised with SIZE */
  maxMessageSize: number;
  /** recipients per transaction (more: 452 4.5.3) */
  maxRecipients: number;
  /** connections at once over all listeners (more: 421) */
  maxConnections: number;
  /** how the 421 names the limit (default `lmtp.max_connections = N`; a worker names its share) */
  maxConnectionsText?: string;
  /** idle time before a connection is closed (default 5 minutes, RFC 5321 §4.5.3.2) */
  idleTimeoutMs?: number;
  /** called at named points of a transaction; the fault tests kill the process there */
  faultPoint?: (name: string) => void;
  /** one line per event worth a log entry (accepted jobs, spool errors) */
  log?: (line: string) => void;
}

/**
 * smtp-server decodes each command line as UTF-8, so bytes that are not UTF-8 (an
 * address in Latin-1, say) reach us as U+FFFD and would be queued so, for a mailbox
 * that does not exist. An address is refused with U+FFFD in it: invalid UTF-8 is a
 * syntax error of the address (RFC 6531 3.3 takes UTF-8 as RFC 3629 defines it), 553
 * 5.1.3 (RFC 3463 X.1.3; smtp-server gives a handler's 553 that code at MAIL too, where
 * X.1.7 would name the sender). 5.6.7 is for well-formed non-ASCII addresses a server
 * does not permit, which is not this. (U+FFFD written as UTF-8 is refused the same: no
 * mailbox is named with the replacement character.)
 */
function notUtf8(address: string): boolean {
  return address.includes('\ufffd');
}

const NOT_UTF8 = (who: 'sender' | 'recipient'): string => `${who} address is not UTF-8 (bytes of another charset, Latin-1 say): send it as UTF-8 with SMTPUTF8`;

/** descriptors kept free for the spool's files (a batch's job files, the journal, the ledger) when connections are fitted to the open-file limit */
export const FD_HEADROOM = 32;
/** connections closed for want of descriptors are logged at most this often */
const DROP_LOG_MS = 10_000;

/** RLIMIT_NOFILE's soft value and the descriptors open now (Linux /proc), or undefined where they cannot be read. */
export function openFiles(): { soft: number; inUse: number } | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(readFileSync('/proc/self/limits', 'latin1'));
    if (!m || m[1] === 'unlimited') return undefined;
    return { soft: Number(m[1]), inUse: readdirSync('/proc/self/fd').length };
  } catch {
    return undefined;
  }
}

/** An error with the reply code smtp-server sends for it. */
class ReplyError extends Error {
  constructor(readonly responseCode: number, message: string) {
    super(message);
  }
}

interface PeerShare {
  peer: string;
  /** positions in envelope.rcptTo, in order */
  indexes: number[];
  prefix: Buffer;
  sender: string;
  recipients: string[];
  draft?: JobDraft;
  hash: Hash;
  failure?: MailbagError;
  jobId?: string;
  duplicate?: boolean;
}

/** One listener set (unix socket, TCP) sharing the routing, the store and the limits. */
/**
 * What lmtpd's smtp-server speaks (LMTP, the extensions it advertises, its limits), apart
 * from its handlers and timeouts; the bench's library sink (bench/lmtp-sink.ts) uses the
 * same, so the two differ only in what they do with a message.
 */
export function lmtpProtocolOptions(o: { hostname: string; maxMessageSize: number; maxRecipients: number }): SMTPServerOptions {
  return {
    lmtp: true,
    name: o.hostname,
    banner: 'mailbag lmtpd ready',
    // the client's name would read "[undefined]" on a unix socket: leave it out
    heloResponse: '%s mailbag lmtpd',
    size: o.maxMessageSize,
    maxRecipients: o.maxRecipients,
    disabledCommands: ['AUTH', 'STARTTLS'],
    hideSTARTTLS: true,
    // both are off by default in smtp-server; we carry DSN parameters to the peer
    hideENHANCEDSTATUSCODES: false,
    hideDSN: false,
    authOptional: true,
    disableReverseLookup: true,
    // MTAs deliver what they accepted; refusing an odd but harmless local part here
    // would bounce it. Control characters are still refused by smtp-server.
    lenientAddressParsing: true,
  };
}

export class LmtpServer {
  private readonly servers: { server: SMTPServer; path?: string }[] = [];
  private readonly sessions = new Set<string>();
  private transactions = 0;
  private closing = false;
  /** a worker's connections at once, fitted to the open-file limit (fitOpenFiles), and what it does with one past it */
  private room = Number.POSITIVE_INFINITY;
  private roomDrop: (() => void) | undefined;
  private readonly log: (line: string) => void;

  constructor(private readonly opts: LmtpServerOptions) {
    this.log = opts.log ?? (() => undefined);
  }

  /** transactions between the end of DATA and the replies */
  get busy(): number {
    return this.transactions;
  }

  private makeServer(): SMTPServer {
    const o = this.opts;
    const server = new SMTPServer({
      ...lmtpProtocolOptions(o),
      socketTimeout: o.idleTimeoutMs ?? 5 * 60_000,
      closeTimeout: 30_000,
      logger: false,
      onConnect: (session, cb) => this.onConnect(session, cb),
      onClose: (session) => {
        this.sessions.delete(session.id);
      },
      onMailFrom: (address, _session, cb) => this.onMailFrom(address, cb),
      onRcptTo: (address, session, cb) => this.onRcptTo(address, session, cb),
      onData: (stream, session, cb) => {
        this.onData(stream, session).then(
          (replies) => cb(null, replies as unknown as string),
          (err: unknown) => cb(err instanceof ReplyError ? err : new ReplyError(451, asMailbagError(err).message)),
        );
      },
    });
    server.on('error', (err) => this.log(`lmtpd: listener error: ${err.message}`));
    (server as unknown as { server: Server }).server.on('connection', coalesceReplies);
    greetAtOnce(server);
    return server;
  }

  private onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    if (this.closing) return cb(new ReplyError(421, 'mailbag lmtpd is shutting down, try again later'));
    if (this.sessions.size >= this.room) {
      this.roomDrop?.();
      return cb(new ReplyError(421, 'too many connections for lmtpd\'s open-file limit, try again later'));
    }
    if (this.sessions.size >= this.opts.maxConnections) {
      return cb(new ReplyError(421, `too many connections (${this.opts.maxConnectionsText ?? `lmtp.max_connections = ${this.opts.maxConnections}`}), try again later`));
    }
    this.sessions.add(session.id);
    cb();
  }

  private onMailFrom(address: SMTPServerAddress, cb: (err?: Error | null) => void): void {
    if ((address.address ?? '').length > LIMITS.maxAddressLength) {
      return cb(new ReplyError(501, `sender address longer than ${LIMITS.maxAddressLength} bytes`));
    }
    if (notUtf8(address.address ?? '')) return cb(new ReplyError(553, NOT_UTF8('sender')));
    // the sender as the peer's BSMTP reader checks it (with a recipient it takes, to check the sender alone)
    const bsmtp = checkBsmtpEnvelope({ sender: address.address ?? '', mailParams: [], recipients: [{ address: 'postmaster@example.org', params: [] }] });
    if (!bsmtp.ok) return cb(new ReplyError(553, `${bsmtp.issue.message}: a BSMTP job cannot carry it`));
    cb();
  }

  private onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const rcpt = address.address;
    if (rcpt.length > LIMITS.maxAddressLength) {
      return cb(new ReplyError(501, `recipient address longer than ${LIMITS.maxAddressLength} bytes`));
    }
    // smtp-server keeps one entry per address: a second RCPT for it would get a 250 now
    // but no reply of its own after DATA, and the LMTP client would lose count
    const key = rcpt.toLowerCase();
    if (session.envelope.rcptTo.some((r) => r.address.toLowerCase() === key)) {
      return cb(new ReplyError(452, `${rcpt} is already a recipient of this transaction`));
    }
    if (notUtf8(rcpt)) return cb(new ReplyError(553, NOT_UTF8('recipient')));
    const route = this.opts.router.route(rcpt);
    if (!route.ok) return cb(new ReplyError(550, `${rcpt}: ${route.reason}`));
    // what the peer's BSMTP reader would refuse (an address beginning with "-", one that
    // cannot be written so that it reads back as itself, …) is refused here, not queued
    // in a job the peer fails (hunt8's request; the front doors refuse the same)
    const bsmtp = checkBsmtpEnvelope({ sender: '', mailParams: [], recipients: [{ address: rcpt, params: [] }] });
    if (!bsmtp.ok) return cb(new ReplyError(553, `${bsmtp.issue.message}: a BSMTP job cannot carry it`));
    cb();
  }

  /** Stream the message into one job per peer; the replies, in RCPT order, once durable. */
  private async onData(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<(string | Error)[]> {
    this.transactions++;
    try {
      return await this.receive(stream, session);
    } finally {
      this.transactions--;
    }
  }

  private async receive(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<(string | Error)[]> {
    const env = session.envelope;
    const mailFrom = env.mailFrom as unknown as ParsedAddress;
    const rcptTo = env.rcptTo as unknown as ParsedAddress[];
    const smtpUtf8 = Boolean((env as { smtpUtf8?: boolean }).smtpUtf8);

    // group the recipients by peer, keeping their order
    const shares = new Map<string, PeerShare>();
    rcptTo.forEach((r, i) => {
      const route = this.opts.router.route(r.address);
      // routed at RCPT already; the configuration cannot change under a running listener
      const peer = route.ok ? route.peer : '';
      let share = shares.get(peer);
      if (!share) {
        share = { peer, indexes: [], prefix: Buffer.alloc(0), sender: '', recipients: [], hash: createHash('sha256') };
        shares.set(peer, share);
      }
      share.indexes.push(i);
    });
    const maxPayload = (prefixLength: number): number => prefixLength + 2 * this.opts.maxMessageSize + 3;
    for (const share of shares.values()) {
      const lines = envelopeLines(mailFrom, share.indexes.map((i) => rcptTo[i]!), smtpUtf8);
      share.prefix = Buffer.from(lines.prefix, 'utf8');
      share.sender = lines.sender;
      share.recipients = lines.recipients;
      share.hash.update(share.prefix);
    }

    const all = [...shares.values()];
    const fail = (share: PeerShare, err: unknown): void => {
      if (!share.failure) {
        share.failure = asMailbagError(err);
        this.log(`lmtpd: job for ${share.peer} failed: ${share.failure.message}`);
      }
    };
    // Feed one piece of payload to every live share. The spool's store writes
    // synchronously: then nothing is allocated per chunk beyond the encoder's output and
    // the chunk is done when this returns; a store that writes asynchronously gets a
    // promise to wait for (the data stream is paused meanwhile: bounded memory).
    const writeAll = (chunk: Buffer): Promise<void> | undefined => {
      if (chunk.length === 0) return undefined;
      let pending: Promise<void>[] | undefined;
      for (const s of all) {
        if (s.failure || !s.draft) continue;
        s.hash.update(chunk);
        let r: void | Promise<void>;
        try {
          r = s.draft.write(chunk);
        } catch (err) {
          fail(s, err);
          continue;
        }
        if (r) (pending ??= []).push(r.catch((err: unknown) => fail(s, err)));
      }
      if (!pending) return undefined;
      return pending.length === 1 ? pending[0] : Promise.all(pending).then(() => undefined);
    };

    await Promise.all(all.map(async (s) => {
      try {
        s.draft = await this.opts.store.begin(
          { to: s.peer, command: 'rsmtp', args: [], sender: s.sender, recipients: s.recipients },
          { maxSize: maxPayload(s.prefix.length) },
        );
      } catch (err) {
        fail(s, err);
      }
    }));
    for (const s of all) {
      if (s.failure || !s.draft) continue;
      try {
        await s.draft.write(s.prefix);
      } catch (err) {
        fail(s, err);
      }
    }

    const encoder = new LmtpBodyEncoder();
    let oversize = false;
    let longLine = false;
    let first = true;
    // the data stream read with 'data' events (an async iterator costs a promise and a
    // read() per chunk); finished() reports the end, or the client going away mid-message
    const broken = await new Promise<unknown>((resolve) => {
      const onData = (chunk: Buffer): void => {
        if (oversize || longLine) return; // drain: smtp-server answers only once the stream has ended
        if (stream.sizeExceeded) {
          oversize = true;
          return;
        }
        const encoded = encoder.push(chunk);
        if (encoder.lineTooLong) {
          longLine = true;
          return;
        }
        const wait = writeAll(encoded);
        if (first) {
          first = false;
          this.opts.faultPoint?.('lmtp-mid-data');
        }
        if (wait) {
          stream.pause();
          void wait.then(() => stream.resume());
        }
      };
      stream.on('data', onData);
      finished(stream, (err) => {
        stream.off('data', onData);
        resolve(err ?? undefined);
      });
    });
    if (stream.sizeExceeded) oversize = true;

    if (oversize || longLine || broken !== undefined) {
      await Promise.all([...shares.values()].map((s) => s.draft?.abort().catch(() => undefined)));
      if (broken !== undefined) throw new ReplyError(451, 'connection lost in the middle of the message');
      if (longLine && !oversize) {
        // the peer's BSMTP reader would refuse the job (and a bounce to <> would tell nobody)
        const r = new ReplyError(554, `a line of the message is longer than ${LIMITS.maxBsmtpTextLine} bytes, more than a BSMTP job carries`);
        return rcptTo.map(() => r);
      }
      const r = new ReplyError(552, `message larger than the limit of ${this.opts.maxMessageSize} bytes (limits.max_message_size)`);
      return rcptTo.map(() => r);
    }

    await writeAll(encoder.end());
    await Promise.all([...shares.values()].map((s) => this.finish(s)));
    this.opts.faultPoint?.('lmtp-before-reply');

    const replies: (string | Error)[] = new Array<string | Error>(rcptTo.length);
    for (const s of shares.values()) {
      const reply: string | Error = s.failure
        ? new ReplyError(451, `not queued for ${s.peer}: ${s.failure.message}`)
        : s.duplicate
          ? `already queued for ${s.peer} as job ${s.jobId} (retried transaction)`
          : `queued for ${s.peer} as job ${s.jobId}`;
      for (const i of s.indexes) replies[i] = reply;
    }
    return replies;
  }

  /** Commit one peer's job (or drop it as a retry of one already committed). */
  private async finish(s: PeerShare): Promise<void> {
    if (!s.draft) return;
    if (s.failure) {
      await s.draft.abort().catch(() => undefined);
      return;
    }
    const digest = s.hash.digest('hex');
    const ledger = this.opts.ledger;
    try {
      const earlier = ledger ? await ledger.find(s.peer, digest) : undefined;
      if (earlier !== undefined) {
        await s.draft.abort();
        s.jobId = earlier;
        s.duplicate = true;
        this.log(`lmtpd: retried transaction for ${s.peer} is job ${earlier} already; not stored again`);
        return;
      }
      s.jobId = await s.draft.commit();
    } catch (err) {
      s.failure = asMailbagError(err);
      this.log(`lmtpd: job for ${s.peer} failed: ${s.failure.message}`);
      await s.draft.abort().catch(() => undefined);
      return;
    }
    this.opts.faultPoint?.('lmtp-after-commit');
    this.log(`lmtpd: job ${s.jobId} for ${s.peer}: <${s.sender}> -> ${s.recipients.length} recipient(s)`);
    if (ledger) {
      // the job is durable: a ledger failure only reopens the duplicate window, it must
      // not turn into a 451 (the MTA would send the message again)
      try {
        await ledger.record(s.peer, digest, s.jobId);
      } catch (err) {
        this.log(`lmtpd: could not record job ${s.jobId} in the LMTP ledger: ${asMailbagError(err).message}`);
      }
    }
  }

  /**
   * Listen on a unix socket: a stale socket of a dead listener is replaced, a live one
   * refused, a directory other users may write refused (checkSocketDir). The socket is
   * made with its mode (the umask of the bind), never chmod'ed by path: a chmod follows a
   * symbolic link put in the socket's place, and would give the mode to its target.
   * `shared`: a worker of `lmtpd --workers N`, whose primary process checks the directory,
   * removes the stale socket and binds it (node:cluster, under socketUmask(mode)), and
   * removes the file at the end.
   */
  async listenUnix(path: string, mode: number, opts: { shared?: boolean } = {}): Promise<void> {
    if (!opts.shared) {
      checkSocketDir(path);
      await removeStaleSocket(path);
    }
    const server = this.makeServer();
    // bind(2) is made within the call (its 'listening' comes after): the umask is ours
    // for no longer than that, no other code of this process runs meanwhile
    await listen(server, (s) => {
      const old = process.umask(socketUmask(mode));
      try {
        s.listen(path);
      } finally {
        process.umask(old);
      }
    });
    this.servers.push({ server, path: opts.shared ? undefined : path });
    try {
      checkBoundSocket(path, mode);
    } catch (err) {
      // not ours at that path: not served. (Closing it, libuv unlinks the path: a link
      // there goes, never what it points to.)
      this.servers.pop();
      await new Promise<void>((done) => server.close(() => done()));
      throw err;
    }
  }

  /**
   * Fit the connections to the open-file limit (after listening, once the process's own
   * descriptors are open). Past RLIMIT_NOFILE an accept fails with EMFILE, and libuv then
   * accepts and closes the waiting connections itself, unseen by Node: no greeting, no
   * line in the log (disk9: 161 of 200 at `ulimit -n 60`). So when the limit leaves room
   * for fewer connections than maxConnections (the descriptors open now and FD_HEADROOM
   * for the spool's files aside), each listener takes at most that many (Node's
   * `maxConnections`: a connection past it is closed at once, while descriptors are
   * still left to accept it, and the listener's 'drop' event says so), a line at the
   * start says why, and the drops are counted in a line at most every DROP_LOG_MS.
   * Returns the connections taken at once (the room, or maxConnections when the limit
   * leaves room enough), or undefined when the limit cannot be read.
   */
  fitOpenFiles(limits: { soft: number; inUse: number } | undefined = openFiles()): number | undefined {
    if (!limits) return undefined;
    // two descriptors a connection: its socket and, while a message over 128 KiB arrives, its file in tmp/
    const room = Math.max(1, Math.floor((limits.soft - limits.inUse - FD_HEADROOM) / 2));
    if (room >= this.opts.maxConnections) return this.opts.maxConnections;
    this.log(`lmtpd: the open-file limit (ulimit -n) is ${limits.soft}, with ${limits.inUse} open: room for ${room} connection(s) at once, fewer than ${this.opts.maxConnectionsText ?? `lmtp.max_connections = ${this.opts.maxConnections}`}; more are ${cluster.isWorker ? 'answered 421' : 'closed without a greeting'} (the MTA tries again later). Raise the limit (LimitNOFILE= in lmtpd's systemd unit) to at least ${limits.inUse + FD_HEADROOM + 2 * this.opts.maxConnections}`);
    let dropped = 0;
    let timer: NodeJS.Timeout | undefined;
    const report = (): void => {
      timer = undefined;
      if (dropped === 0) return;
      this.log(`lmtpd: ${dropped} connection(s) ${cluster.isWorker ? 'refused (421)' : 'closed without a greeting'}: ${room} were open, all that the open-file limit (ulimit -n ${limits.soft}) leaves room for`);
      dropped = 0;
      timer = setTimeout(report, DROP_LOG_MS).unref();
    };
    const drop = (): void => {
      dropped++;
      if (timer === undefined) report();
    };
    if (cluster.isWorker) {
      // node:cluster's round robin: a worker whose listener is at `maxConnections` answers
      // the primary's hand-over "not accepted" (no 'drop' event), and the primary hands the
      // connection to the next worker, round and round while every worker is full: never
      // greeted, the processes busy (review10c R3). A worker takes it and answers 421.
      this.room = room;
      this.roomDrop = drop;
      return room;
    }
    for (const { server } of this.servers) {
      const net = (server as unknown as { server: Server }).server;
      net.maxConnections = room;
      net.on('drop', drop);
    }
    return room;
  }

  /** Listen on host:port (port 0: any); resolves with the port. */
  async listenTcp(host: string, port: number): Promise<number> {
    const server = this.makeServer();
    await listen(server, (s) => s.listen(port, host));
    this.servers.push({ server });
    const addr = (server as unknown as { server: Server }).server.address();
    return typeof addr === 'object' && addr ? addr.port : port;
  }

  /**
   * Stop: refuse new connections, let transactions in progress finish (bounded by
   * graceMs, after which clients get 421), remove the socket file.
   */
  async close(graceMs = 30_000): Promise<void> {
    this.closing = true;
    // connections not inside DATA (an MTA's cached connection, or one still sending
    // MAIL/RCPT: nothing of it is accepted yet) go now with 421; those receiving or
    // committing a message as soon as their replies are out
    const deadline = Date.now() + graceMs;
    const sweep = (): void => {
      for (const { server } of this.servers) {
        for (const conn of (server as unknown as { connections: Set<IdleCheck> }).connections) {
          const inData = Boolean(conn._dataStream);
          if (!inData && !conn._closing && !conn._closed) {
            conn.send(421, 'mailbag lmtpd shutting down, try again later');
            conn.close();
          }
        }
      }
    };
    sweep();
    const sweeper = setInterval(() => {
      if (Date.now() < deadline) sweep();
    }, 50);
    sweeper.unref();
    await Promise.all(this.servers.map(({ server, path }) => new Promise<void>((resolve) => {
      (server as unknown as { options: { closeTimeout: number } }).options.closeTimeout = graceMs;
      server.close(() => {
        if (path) {
          try {
            unlinkSync(path);
          } catch {
            // already gone
          }
        }
        resolve();
      });
    })));
    clearInterval(sweeper);
    this.servers.length = 0;
  }
}

/** the parts of smtp-server's SMTPConnection the shutdown sweep looks at */
interface IdleCheck {
  _dataStream?: unknown;
  _closing?: boolean;
  _closed?: boolean;
  send(code: number, text: string): void;
  close(): void;
}

/**
 * The replies smtp-server writes in one turn of the event loop leave in one write(2): a
 * pipelining client (Postfix sends MAIL, RCPT… and DATA together) gets its 250s and the
 * 354 in one segment, not one wake-up per line. The socket is corked at the first write
 * of a turn and uncorked right after it (process.nextTick), so nothing waits longer.
 */
export function coalesceReplies(socket: Socket): void {
  const write = socket.write;
  let corked = false;
  socket.write = function (this: Socket, ...args: unknown[]): boolean {
    if (!corked && !socket.destroyed) {
      corked = true;
      socket.cork();
      process.nextTick(() => {
        corked = false;
        socket.uncork();
      });
    }
    return (write as (...a: unknown[]) => boolean).apply(this, args);
  } as Socket['write'];
}

/** the parts of smtp-server's connection set-up greetAtOnce uses */
interface ConnectionSetUp {
  connections: Set<{ connectionReady: (next?: () => void) => void; _closing?: boolean; _closed?: boolean }>;
  connect: (socket: Socket, options: unknown) => void;
}

/**
 * smtp-server greets a new connection only after 100 ms, to catch clients that talk
 * before the greeting (spam tools on the open internet). An LMTP client is the local
 * MTA, and each of its new connections (Postfix opens up to 50 at once) would hold a
 * delivery agent idle for those 100 ms: greet it once the connection is set up instead.
 * The library's own timer then finds the connection greeted and does nothing. Should a
 * later smtp-server lay its connections out differently, this does nothing either.
 */
export function greetAtOnce(server: SMTPServer): void {
  const s = server as unknown as ConnectionSetUp;
  const connect = s.connect;
  if (typeof connect !== 'function' || !(s.connections instanceof Set)) return;
  s.connect = function (this: ConnectionSetUp, socket: Socket, options: unknown): void {
    connect.call(this, socket, options);
    type Conn = ConnectionSetUp['connections'] extends Set<infer C> ? C : never;
    let newest: Conn | undefined;
    for (const c of this.connections) newest = c; // a Set keeps insertion order
    const conn = newest;
    if (!conn || typeof conn.connectionReady !== 'function') return;
    const ready = conn.connectionReady;
    let greeted = false;
    conn.connectionReady = function (this: Conn, next?: () => void): void {
      if (greeted) return;
      greeted = true;
      ready.call(this, next);
    };
    setImmediate(() => {
      if (!conn._closing && !conn._closed) conn.connectionReady();
    });
  };
}

function listen(server: SMTPServer, start: (s: SMTPServer) => void): Promise<void> {
  const net = (server as unknown as { server: Server }).server;
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      net.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      net.off('error', onError);
      resolve();
    };
    net.once('error', onError);
    net.once('listening', onListening);
    start(server);
  });
}

/** The umask under which bind(2) makes a unix socket of `mode` (0777 less the mode). */
export function socketUmask(mode: number): number {
  return 0o777 & ~mode;
}

/**
 * After the bind: the path is the socket just made, ours, of its mode. Anything else
 * there means someone replaced it between the bind and this look (only possible where
 * another user may write the directory, which checkSocketDir refuses): refused, not
 * served, and nothing done to what is there.
 */
export function checkBoundSocket(path: string, mode: number): void {
  const st = lstatSync(path);
  const uid = process.geteuid?.() ?? 0;
  if (!st.isSocket() || st.uid !== uid || (st.mode & 0o777) !== (mode & 0o777)) {
    const what = st.isSymbolicLink() ? 'a symbolic link' : st.isSocket() ? `a socket of uid ${st.uid}, mode 0${(st.mode & 0o777).toString(8)}` : 'not a socket';
    throw new ConfigError(`${path} is ${what} right after lmtpd made its socket there: someone else may write its directory; not listening`, { key: 'lmtp.socket' });
  }
}

/**
 * The socket's directory, and each one above it (as named and as it really is, through
 * symbolic links), is safe from other users: whoever may write the socket's directory
 * can take the socket's name while lmtpd is down, and the MTA then hands them its mail
 * (a sticky bit, as on /tmp, does not stop that: the name is free then), or replace the
 * socket while it runs. So the socket's own directory is owned by root or lmtpd's user
 * and neither its group nor every user may write it; a directory above it may be
 * written by others only with the sticky bit (no one else can rename what is ours in it),
 * as OpenSSH's safe_path. A directory that does not exist is left to the bind to report.
 */
export function checkSocketDir(path: string, uid: number = process.geteuid?.() ?? 0): void {
  const trusted = (u: number): boolean => u === 0 || u === uid;
  const named = dirname(resolve(path));
  let real: string;
  try {
    real = realpathSync.native(named);
  } catch {
    return;
  }
  const fix = 'put the socket in a directory only root and lmtpd\'s user may write, such as /run/mailbag (systemd\'s RuntimeDirectory=mailbag; docs/lmtp.md)';
  for (const dir of new Set([named, real])) {
    const st = statSync(dir);
    if (!trusted(st.uid)) {
      throw new ConfigError(`the socket's directory ${dir} is owned by uid ${st.uid}, who could take the socket's name and so the MTA's mail: ${fix}`, { key: 'lmtp.socket' });
    }
    if (st.mode & 0o022) {
      const who = st.mode & 0o002 ? 'every user' : `its group (gid ${st.gid})`;
      throw new ConfigError(`${who} may write the socket's directory ${dir} (mode 0${(st.mode & 0o7777).toString(8)}): another user could take the socket's name while lmtpd is down (the sticky bit does not stop that) and so the MTA's mail, or replace it: ${fix}`, { key: 'lmtp.socket' });
    }
  }
  const above = new Set<string>();
  for (let d of [named, real]) {
    for (;;) {
      const up = dirname(d);
      if (up === d) break;
      above.add(up);
      d = up;
    }
  }
  for (const dir of above) {
    const st = statSync(dir);
    if (!trusted(st.uid)) {
      throw new ConfigError(`${dir}, above the socket's directory, is owned by uid ${st.uid}, who could replace what is below it and so take the MTA's mail: ${fix}`, { key: 'lmtp.socket' });
    }
    if (st.mode & 0o022 && !(st.mode & 0o1000)) {
      throw new ConfigError(`its group or every user may write ${dir}, above the socket's directory (mode 0${(st.mode & 0o7777).toString(8)}), and so replace what is below it and take the MTA's mail: chmod go-w ${dir}, or ${fix}`, { key: 'lmtp.socket' });
    }
  }
}

/**
 * A socket file left by a listener that died (SIGKILL, power loss) is removed; a socket
 * someone still answers on, or a path that is not a socket, is an error.
 */
export async function removeStaleSocket(path: string): Promise<void> {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) {
    throw new ConfigError(`${path} exists and is not a socket; refusing to replace it`, { key: 'lmtp.socket' });
  }
  const alive = await new Promise<boolean>((resolve) => {
    const sock = connect(path);
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(true); // it accepted but is slow: treat as alive rather than steal it
    }, 2000);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (alive) {
    throw new MailbagError('locked', `another listener is answering on ${path}; stop it first`);
  }
  unlinkSync(path);
}
