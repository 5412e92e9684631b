// The transactions of a BSMTP job, found without holding any message in memory: the
// job's payload is streamed once through lib/bsmtp's reader (the one BSMTP parser; its
// 'body' events off), and each transaction is kept as its sender, ESMTP parameters and
// recipients and the byte range of its still dot-stuffed DATA in the spool file. What
// this adds to the reader: bodies are not carried along but re-read from the file by
// that range at each delivery attempt (lib/deliver/message.ts), and a batch that goes
// wrong after complete transactions keeps them (`problem`), as Exim -bS keeps the
// messages it accepted before an error. The grammar is the reader's (checklist 8:
// optional HELO/EHLO as RSET, QUIT, any case, `MAIL FROM: a` without brackets, CRLF or
// LF); a transaction whose DATA has no final `.` is incomplete and reported, never
// delivered.

import { createReadStream } from 'node:fs';
import type { EsmtpParam } from '../bsmtp/envelope.js';
import { BsmtpReader, type BsmtpEvent } from '../bsmtp/reader.js';
import { InputError } from '../errors.js';
import type { Recipient, Transaction } from './message.js';

export interface BsmtpIndex {
  transactions: Transaction[];
  /** the text of a problem that ended the batch early (transactions before it are complete) */
  problem: string | undefined;
  /** the input ended with QUIT (a stream cut between two messages reads as whole without it) */
  quit: boolean;
}

/** `NAME=value` / `NAME`, as lib/deliver's transactions carry parameters */
function paramText(p: EsmtpParam): string {
  return p.value === null ? p.name : `${p.name}=${p.value}`;
}

/** Index the BSMTP payload at `path` from byte `offset`. */
export async function indexBsmtp(path: string, offset: number): Promise<BsmtpIndex> {
  const transactions: Transaction[] = [];
  const reader = new BsmtpReader({ bodies: false });
  let open: Extract<BsmtpEvent, { type: 'message' }> | undefined;
  let problem: string | undefined;
  let quit = false;

  /** false once the reader has stopped (QUIT or an error) */
  const take = (events: BsmtpEvent[]): boolean => {
    for (const e of events) {
      if (e.type === 'message') open = e;
      else if (e.type === 'quit') quit = true;
      else if (e.type === 'end-of-message' && open) {
        const { envelope: env, line, dataStart } = open;
        transactions.push({
          index: transactions.length,
          sender: env.sender,
          mailParams: env.mailParams.map(paramText),
          recipients: env.recipients.map((r): Recipient => ({ address: r.address, params: r.params.map(paramText) })),
          body: { path, start: offset + dataStart, end: offset + e.dataEnd, stuffed: true },
          line,
        });
        open = undefined;
      } else if (e.type === 'error') {
        const message = `line ${e.issue.line}: ${e.issue.message}`;
        // nothing complete before it: the whole job is bad
        if (transactions.length === 0) throw new InputError(e.issue.code === 'bsmtp-too-big' ? 'too-big' : 'bad-bsmtp', message);
        problem = message;
      }
    }
    return !reader.done;
  };

  const stream = createReadStream(path, { start: offset });
  try {
    // what follows QUIT (or an error) is not read
    for await (const chunk of stream as AsyncIterable<Buffer>) if (!take(reader.push(chunk))) break;
    take(reader.end());
  } finally {
    stream.destroy();
  }
  if (transactions.length === 0 && !problem) throw new InputError('bad-bsmtp', 'no transaction in the BSMTP job');
  return { transactions, problem, quit };
}
