// An SMTP/LMTP client for handing mail to the local MTA: over TCP, a unix socket, or
// the stdio of `sendmail -bs` (Postfix's smtpd run stand-alone). It reads every reply
// (never a blind stream), pipelines MAIL/RCPT/DATA when the server offers PIPELINING,
// keeps one connection for many messages, passes on the ESMTP parameters the server
// advertises (DSN, SIZE, 8BITMIME, SMTPUTF8) and answers per recipient. LMTP gives one
// reply per accepted recipient after the data; SMTP gives one for all.

import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import type { Endpoint } from '../config/types.js';
import { openSmtpData, type Transaction } from './message.js';
import { resultOfReply, type RecipientResult } from './result.js';

export interface Reply {
  code: number;
  /** the text of all lines, joined by a space */
  text: string;
}

/** How long a write may wait for the server to read (RFC 5321 §4.5.3.2.5: a data block, 3 minutes). */
export const WRITE_TIMEOUT_MS = 180_000;

/** Thrown when the connection fails or a reply is unreadable: the whole attempt is temporary. */
export class SmtpLinkError extends Error {
  /**
   * `afterData`: the message end was sent: the server may have taken it (the SMTP window).
   * `settled`: the recipients whose answer came before the link was lost (refused at RCPT;
   * with LMTP, each one answered after the data): theirs stands, they are not offered the
   * message again.
   */
  constructor(message: string, readonly afterData = false, readonly settled: readonly RecipientResult[] = []) {
    super(message);
  }
}

/** Collects reply lines from a byte stream; `next()` resolves with the next whole reply. */
class ReplyReader {
  private buf = '';
  private lines: string[] = [];
  private waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | undefined;
  private ended: Error | undefined;

  constructor(input: Readable) {
    input.on('data', (b: Buffer) => {
      this.buf += b.toString('latin1');
      if (this.buf.length > 1_000_000) this.fail(new SmtpLinkError('reply too long'));
      let i;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        this.lines.push(this.buf.slice(0, i).replace(/\r$/, ''));
        this.buf = this.buf.slice(i + 1);
      }
      this.pump();
    });
    input.on('end', () => this.fail(new SmtpLinkError('the server closed the connection')));
    input.on('close', () => this.fail(new SmtpLinkError('the server closed the connection')));
    input.on('error', (e) => this.fail(new SmtpLinkError(`connection error: ${e.message}`)));
  }

  private fail(e: Error): void {
    this.ended ??= e;
    this.pump();
  }

  /** A whole reply from the front of `lines`, or undefined if not complete yet. */
  private take(): Reply | undefined {
    for (let i = 0; i < this.lines.length; i++) {
      const l = this.lines[i]!;
      if (!/^\d{3}[ -]?/.test(l)) {
        throw new SmtpLinkError(`unreadable reply line: ${l.slice(0, 100)}`);
      }
      if (l[3] !== '-') {
        const parts = this.lines.splice(0, i + 1);
        return { code: Number(l.slice(0, 3)), text: parts.map((p) => p.slice(4)).join(' ').trim() };
      }
    }
    return undefined;
  }

  private pump(): void {
    if (!this.waiting) return;
    const w = this.waiting;
    let r: Reply | undefined;
    try {
      r = this.take();
    } catch (e) {
      this.waiting = undefined;
      clearTimeout(w.timer);
      w.reject(e as Error);
      return;
    }
    if (r) {
      this.waiting = undefined;
      clearTimeout(w.timer);
      w.resolve(r);
    } else if (this.ended) {
      this.waiting = undefined;
      clearTimeout(w.timer);
      w.reject(this.ended);
    }
  }

  next(timeoutMs: number): Promise<Reply> {
    if (this.waiting) throw new Error('ReplyReader: one reply at a time');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(new SmtpLinkError(`no reply within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.waiting = { resolve, reject, timer };
      this.pump();
    });
  }
}

export interface SmtpSessionOptions {
  lmtp: boolean;
  /** the name we greet with */
  heloName: string;
  /** reply timeout for commands (default 120 s) and after the data (default 600 s) */
  commandTimeoutMs?: number;
  dataTimeoutMs?: number;
  /** how long a write may wait for the server to take data (default 180 s, RFC 5321 §4.5.3.2.5) */
  writeTimeoutMs?: number;
  /** what to call on close (kill a child, end a socket) */
  close?: () => void;
}

/** ESMTP parameters and the extension each needs. */
const PARAM_EXTENSION: Record<string, string> = {
  RET: 'DSN', ENVID: 'DSN', NOTIFY: 'DSN', ORCPT: 'DSN',
  SIZE: 'SIZE', BODY: '8BITMIME', SMTPUTF8: 'SMTPUTF8',
};

/** Keep only the parameters the server advertised an extension for. */
export function filterParams(params: string[], extensions: ReadonlySet<string>): string[] {
  return params.filter((p) => {
    const key = p.split('=')[0]!.toUpperCase();
    const ext = PARAM_EXTENSION[key];
    if (!ext || !extensions.has(ext)) return false;
    // BODY=BINARYMIME needs CHUNKING/BDAT, which we do not speak
    if (key === 'BODY' && !/^BODY=(7BIT|8BITMIME)$/i.test(p)) return false;
    return true;
  });
}

function pathOf(address: string): string {
  return `<${address}>`;
}

export class SmtpSession {
  readonly extensions = new Set<string>();
  private readonly reader: ReplyReader;
  private broken: Error | undefined;

  private constructor(private readonly input: Readable, private readonly output: Writable, private readonly o: SmtpSessionOptions) {
    this.reader = new ReplyReader(input);
    output.on('error', (e) => {
      this.broken ??= new SmtpLinkError(`write failed: ${e.message}`);
    });
  }

  /** Greet a server on these streams: read the banner, EHLO/LHLO (HELO as a fallback for SMTP). */
  static async start(input: Readable, output: Writable, o: SmtpSessionOptions): Promise<SmtpSession> {
    const s = new SmtpSession(input, output, o);
    try {
      const banner = await s.reader.next(o.commandTimeoutMs ?? 120_000);
      if (banner.code !== 220) throw new SmtpLinkError(`server greeting: ${banner.code} ${banner.text}`);
      let r = await s.command(`${o.lmtp ? 'LHLO' : 'EHLO'} ${o.heloName}`);
      if (r.code !== 250 && !o.lmtp) r = await s.command(`HELO ${o.heloName}`);
      if (r.code !== 250) throw new SmtpLinkError(`server refused our greeting: ${r.code} ${r.text}`);
    } catch (e) {
      s.close();
      throw e;
    }
    return s;
  }

  /** Connect to a TCP endpoint or unix socket. */
  static async connect(endpoint: Endpoint, o: SmtpSessionOptions): Promise<SmtpSession> {
    const sock: Socket = 'path' in endpoint ? connect(endpoint.path) : connect(endpoint.port, endpoint.host);
    sock.setNoDelay(true);
    const timer = setTimeout(() => sock.destroy(new Error('connect timed out')), o.commandTimeoutMs ?? 120_000);
    try {
      await once(sock, 'connect');
    } catch (e) {
      throw new SmtpLinkError(`cannot connect to ${'path' in endpoint ? endpoint.path : `${endpoint.host}:${endpoint.port}`}: ${(e as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
    // the hello reply lists the extensions: record them as we read it
    return SmtpSession.start(sock, sock, { ...o, close: () => sock.destroy() });
  }

  private async write(text: string | Buffer): Promise<void> {
    if (this.broken) throw this.broken;
    if (!this.output.write(text)) {
      // a server that stops reading but keeps the connection would hold the runner (and
      // its peer's runner lock) for ever: no progress for the write timeout ends the attempt
      const ms = this.o.writeTimeoutMs ?? WRITE_TIMEOUT_MS;
      const ac = new AbortController();
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          once(this.output, 'drain', { signal: ac.signal }),
          once(this.output, 'close', { signal: ac.signal }).then(() => {
            throw new SmtpLinkError('connection closed while writing');
          }),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new SmtpLinkError(`the server took no data for ${ms / 1000} s (it stopped reading)`)), ms);
          }),
        ]);
      } catch (e) {
        if (e instanceof SmtpLinkError) this.broken ??= e;
        throw e;
      } finally {
        clearTimeout(timer);
        ac.abort();
      }
    }
    if (this.broken) throw this.broken;
  }

  private async command(line: string): Promise<Reply> {
    await this.write(`${line}\r\n`);
    const r = await this.reader.next(this.o.commandTimeoutMs ?? 120_000);
    if (/^(EHLO|LHLO) /.test(line) && r.code === 250) {
      this.extensions.clear();
      for (const l of r.text.split(' ')) this.extensions.add(l.toUpperCase());
    }
    return r;
  }

  private get pipelining(): boolean {
    return this.extensions.has('PIPELINING');
  }

  /**
   * Send one transaction to the recipients not in `skip`. Returns one result per
   * recipient tried. Throws SmtpLinkError when the connection breaks before the final
   * reply: then nothing is known to be accepted and the caller retries later.
   */
  async send(tx: Transaction, skip: ReadonlySet<string>): Promise<RecipientResult[]> {
    const todo = tx.recipients.filter((r) => !skip.has(r.address));
    if (todo.length === 0) return [];
    const mail = `MAIL FROM:${pathOf(tx.sender)}${filterParams(tx.mailParams, this.extensions).map((p) => ` ${p}`).join('')}`;
    const rcpts = todo.map((r) => `RCPT TO:${pathOf(r.address)}${filterParams(r.params, this.extensions).map((p) => ` ${p}`).join('')}`);
    const cmdTimeout = this.o.commandTimeoutMs ?? 120_000;
    let mailReply: Reply;
    const rcptReplies: Reply[] = [];
    let dataReply: Reply;
    if (this.pipelining) {
      await this.write([mail, ...rcpts, 'DATA'].join('\r\n') + '\r\n');
      mailReply = await this.reader.next(cmdTimeout);
      for (let i = 0; i < rcpts.length; i++) rcptReplies.push(await this.reader.next(cmdTimeout));
      dataReply = await this.reader.next(cmdTimeout);
    } else {
      mailReply = await this.command(mail);
      if (mailReply.code === 250) {
        for (const c of rcpts) rcptReplies.push(await this.command(c));
      }
      dataReply = rcptReplies.some((r) => r.code >= 200 && r.code < 300)
        ? await this.command('DATA')
        : { code: 503, text: 'no valid recipients (DATA not sent)' };
    }
    if (mailReply.code !== 250) {
      if (dataReply.code === 354) await this.abortData();
      await this.rset();
      return todo.map((r) => resultOfReply(r.address, mailReply.code, mailReply.text));
    }
    const results = new Map<string, RecipientResult>();
    const accepted: string[] = [];
    todo.forEach((r, i) => {
      const rr = rcptReplies[i]!;
      if (rr.code >= 200 && rr.code < 300) accepted.push(r.address);
      else results.set(r.address, resultOfReply(r.address, rr.code, rr.text));
    });
    if (accepted.length === 0) {
      if (dataReply.code === 354) await this.abortData();
      await this.rset();
      return todo.map((r) => results.get(r.address)!);
    }
    if (dataReply.code !== 354) {
      for (const a of accepted) results.set(a, resultOfReply(a, dataReply.code, dataReply.text));
      await this.rset();
      return todo.map((r) => results.get(r.address)!);
    }
    const body = openSmtpData(tx.body);
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) await this.write(chunk);
    } catch (e) {
      body.destroy();
      if (e instanceof SmtpLinkError) throw e;
      // reading our own job failed: never end the data with "." — break the link instead
      this.close();
      throw new SmtpLinkError(`reading the message failed: ${(e as Error).message}`);
    }
    await this.write('.\r\n');
    const dataTimeout = this.o.dataTimeoutMs ?? 600_000;
    try {
      if (this.o.lmtp) {
        for (const a of accepted) {
          const r = await this.reader.next(dataTimeout);
          results.set(a, resultOfReply(a, r.code, r.text));
        }
      } else {
        const r = await this.reader.next(dataTimeout);
        for (const a of accepted) results.set(a, resultOfReply(a, r.code, r.text));
      }
    } catch (e) {
      // an LMTP server that answered some recipients before the link broke delivered to
      // them: their answers stand (offered again, they would get the message twice)
      throw new SmtpLinkError((e as Error).message, true, [...results.values()]);
    }
    return todo.map((r) => results.get(r.address)!);
  }

  /** The server said 354 though we meant to stop: send an empty message end and reset. */
  private async abortData(): Promise<void> {
    // Only reached when MAIL or every RCPT failed, so the server has no recipient and
    // must refuse the empty message; read and ignore its reply.
    await this.write('.\r\n');
    await this.reader.next(this.o.commandTimeoutMs ?? 120_000);
  }

  private async rset(): Promise<void> {
    const r = await this.command('RSET');
    if (r.code !== 250) throw new SmtpLinkError(`RSET refused: ${r.code} ${r.text}`);
  }

  async quit(): Promise<void> {
    try {
      if (!this.broken) {
        await this.write('QUIT\r\n');
        await this.reader.next(10_000).catch(() => undefined);
      }
    } finally {
      this.close();
    }
  }

  close(): void {
    this.o.close?.();
  }
}
