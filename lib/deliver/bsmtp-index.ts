// Finds the transactions of a BSMTP job without holding any message in memory: one
// streaming pass over the payload records, per transaction, the sender, the ESMTP
// parameters, the recipients and the byte range of its (still dot-stuffed) DATA.
// Accepts what checklist 8 asks: optional HELO/EHLO (as RSET) and QUIT, any case,
// `MAIL FROM: a` without brackets, CRLF or LF; a transaction whose DATA has no final
// `.` is incomplete and is reported, never delivered.

import { createReadStream } from 'node:fs';
import { InputError } from '../errors.js';
import { LIMITS } from '../limits.js';
import type { Recipient, Transaction } from './message.js';

export interface BsmtpIndex {
  transactions: Transaction[];
  /** the text of a problem that ended the batch early (transactions before it are complete) */
  problem: string | undefined;
}

/**
 * Split `MAIL FROM:<a@b> P=1 Q` or `RCPT TO: a@b` after the colon into the path (without
 * brackets; `''` for `<>`) and its parameters. Quoted local parts may hold spaces and `>`.
 */
export function parsePathAndParams(rest: string): { path: string; params: string[] } | undefined {
  const s = rest.replace(/^[ \t]+/, '');
  let path: string;
  let after: string;
  if (s.startsWith('<')) {
    let i = 1;
    let quoted = false;
    for (; i < s.length; i++) {
      const c = s[i];
      if (c === '\\' && quoted) { i++; continue; }
      if (c === '"') quoted = !quoted;
      else if (c === '>' && !quoted) break;
    }
    if (i >= s.length) return undefined;
    path = s.slice(1, i);
    after = s.slice(i + 1);
  } else {
    const m = /^(\S*)(.*)$/.exec(s)!;
    path = m[1]!;
    after = m[2]!;
  }
  // a source route (`<@a,@b:user@c>`) is obsolete: keep the mailbox only (RFC 5321 §4.1.1.3)
  const route = /^@[^:]*:(.*)$/.exec(path);
  if (route) path = route[1]!;
  const params = after.trim() === '' ? [] : after.trim().split(/[ \t]+/);
  return { path, params };
}

/** Index the BSMTP payload at `path` from byte `offset`. */
export async function indexBsmtp(path: string, offset: number): Promise<BsmtpIndex> {
  const transactions: Transaction[] = [];
  let lineNo = 0;
  let pos = offset; // byte offset of the start of the current partial line
  let carry: Buffer = Buffer.alloc(0);
  let inData = false;
  let cur: { sender: string; mailParams: string[]; recipients: Recipient[]; line: number; dataStart: number } | undefined;
  let problem: string | undefined;
  let done = false;

  const command = (raw: string, lineStart: number, lineEnd: number): void => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.includes('\0')) throw new InputError('bad-bsmtp', `line ${lineNo}: NUL in a command`);
    const verb = line.slice(0, 4).toUpperCase();
    if (/^MAIL FROM:/i.test(line)) {
      if (cur) throw new InputError('bad-bsmtp', `line ${lineNo}: MAIL inside a transaction`);
      const p = parsePathAndParams(line.slice(10));
      if (!p) throw new InputError('bad-bsmtp', `line ${lineNo}: malformed MAIL: ${line.slice(0, 200)}`);
      cur = { sender: p.path, mailParams: p.params, recipients: [], line: lineNo, dataStart: 0 };
    } else if (/^RCPT TO:/i.test(line)) {
      if (!cur) throw new InputError('bad-bsmtp', `line ${lineNo}: RCPT before MAIL`);
      const p = parsePathAndParams(line.slice(8));
      if (!p || p.path === '') throw new InputError('bad-bsmtp', `line ${lineNo}: malformed RCPT: ${line.slice(0, 200)}`);
      if (cur.recipients.length >= LIMITS.maxRecipients) throw new InputError('bad-bsmtp', `line ${lineNo}: more than ${LIMITS.maxRecipients} recipients`);
      cur.recipients.push({ address: p.path, params: p.params });
    } else if (verb === 'DATA' && line.trim().length === 4) {
      if (!cur || cur.recipients.length === 0) throw new InputError('bad-bsmtp', `line ${lineNo}: DATA without MAIL and RCPT`);
      cur.dataStart = lineEnd;
      inData = true;
    } else if (verb === 'HELO' || verb === 'EHLO' || verb === 'LHLO' || verb === 'RSET') {
      cur = undefined;
    } else if (verb === 'QUIT') {
      done = true;
    } else if (verb === 'NOOP' || line.trim() === '') {
      // nothing
    } else {
      void lineStart;
      throw new InputError('bad-bsmtp', `line ${lineNo}: unknown command: ${line.slice(0, 100)}`);
    }
  };

  const stream = createReadStream(path, { start: offset });
  try {
    outer: for await (const chunk of stream as AsyncIterable<Buffer>) {
      let data = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
      let base = pos; // file offset of data[0]
      let s = 0;
      for (let i = data.indexOf(10); i >= 0; i = data.indexOf(10, s)) {
        lineNo++;
        const lineStart = base + s;
        const lineEnd = base + i + 1;
        const line = data.subarray(s, i);
        s = i + 1;
        if (inData) {
          const isDot = (line.length === 1 && line[0] === 0x2e) || (line.length === 2 && line[0] === 0x2e && line[1] === 13);
          if (isDot) {
            inData = false;
            transactions.push({
              index: transactions.length,
              sender: cur!.sender,
              mailParams: cur!.mailParams,
              recipients: cur!.recipients,
              body: { path, start: cur!.dataStart, end: lineStart, stuffed: true },
              line: cur!.line,
            });
            cur = undefined;
            if (transactions.length > LIMITS.maxBsmtpTransactions) {
              throw new InputError('bad-bsmtp', `more than ${LIMITS.maxBsmtpTransactions} transactions`);
            }
          }
          continue;
        }
        if (line.length > LIMITS.maxBsmtpCommandLine) throw new InputError('bad-bsmtp', `line ${lineNo}: command line too long`);
        try {
          command(line.toString('utf8'), lineStart, lineEnd);
        } catch (err) {
          if (transactions.length === 0) throw err;
          problem = (err as Error).message;
          break outer;
        }
        if (done) break outer;
      }
      pos = base + s;
      carry = Buffer.from(data.subarray(s));
      data = Buffer.alloc(0);
      base = pos;
      const cap = inData ? LIMITS.maxBsmtpTextLine : LIMITS.maxBsmtpCommandLine;
      if (carry.length > cap) {
        const msg = `line ${lineNo + 1}: line too long`;
        if (transactions.length === 0) throw new InputError('bad-bsmtp', msg);
        problem = msg;
        break;
      }
    }
  } finally {
    stream.destroy();
  }
  if (!done && !problem) {
    if (carry.length > 0 && !inData) {
      // a last command without LF
      lineNo++;
      try {
        command(carry.toString('utf8'), pos, pos + carry.length);
      } catch (err) {
        if (transactions.length === 0) throw err;
        problem = (err as Error).message;
      }
    }
    if (inData || cur) {
      const msg = `transaction starting in line ${cur?.line ?? '?'} is incomplete (no final "." line)`;
      if (transactions.length === 0) throw new InputError('bad-bsmtp', msg);
      problem = msg;
    }
  }
  if (transactions.length === 0 && !problem) throw new InputError('bad-bsmtp', 'no transaction in the BSMTP job');
  return { transactions, problem };
}
