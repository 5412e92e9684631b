// BSMTP into Exim with `exim -bS` (formats.md §2.2, checklist 9–10): every ESMTP
// parameter is removed first (Exim answers 501 and abandons the batch otherwise), only
// MAIL/RCPT/DATA are written (no unknown command ever), and after an error only the
// transactions after the failing one (and its other recipients, when Exim refused one
// RCPT) are offered again. Exim exits 0 (all taken), 1 (some taken before the error) or
// 2 (none), and reports how many it took and the command at fault. An exim killed
// before its report may have taken messages that are offered again: the documented
// window (docs/runner.md, "Exim -bS on a partial failure").

import { Readable } from 'node:stream';
import { openRaw, type Transaction } from './message.js';
import { resultOfReply, type RecipientResult } from './result.js';
import { runChild } from './sendmail.js';

export interface EximBatchOptions {
  program: string;
  env: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

interface Planned {
  tx: Transaction;
  recipients: string[];
  /** 1-based line of its MAIL command in the stream we write */
  line: number;
}

/** Lines in a body as we write it (a last line without LF gets one). */
async function countLines(tx: Transaction): Promise<number> {
  let n = 0;
  let last = 10;
  for await (const chunk of openRaw(tx.body) as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) n++;
    if (chunk.length > 0) last = chunk[chunk.length - 1]!;
  }
  return last === 10 ? n : n + 1;
}

/**
 * The stream we write and where each transaction starts in it. Line numbers are
 * counted before writing: Exim stops reading at an error, so a count made while
 * writing would never reach the transactions after it.
 */
async function plan(txs: Transaction[], skip: (i: number) => ReadonlySet<string>): Promise<{ planned: Planned[]; stream: () => Readable }> {
  const planned: Planned[] = [];
  let lineNo = 0;
  for (const tx of txs) {
    const recipients = tx.recipients.map((r) => r.address).filter((a) => !skip(tx.index).has(a));
    if (recipients.length === 0) continue;
    planned.push({ tx, recipients, line: lineNo + 1 });
    // MAIL, RCPT…, DATA, the body, the final "."
    lineNo += 2 + recipients.length + (await countLines(tx)) + 1;
  }
  async function* gen(): AsyncGenerator<Buffer> {
    for (const p of planned) {
      yield Buffer.from([`MAIL FROM:<${p.tx.sender}>`, ...p.recipients.map((r) => `RCPT TO:<${r}>`), 'DATA'].join('\n') + '\n');
      let last = 10;
      for await (const chunk of openRaw(p.tx.body) as AsyncIterable<Buffer>) {
        if (chunk.length > 0) last = chunk[chunk.length - 1]!;
        yield chunk;
      }
      if (last !== 10) yield Buffer.from('\n');
      yield Buffer.from('.\n');
    }
  }
  return { planned, stream: () => Readable.from(gen()) };
}

/** Read Exim's -bS error report: the reply and the line the failing transaction started in. */
export function parseEximBatchError(output: string): { code: number; text: string; startLine: number | undefined; errorLine: number | undefined; previous: number | undefined; command: string | undefined } | undefined {
  const reply = /^([45]\d\d)[ -](.*)$/m.exec(output);
  if (!reply) return undefined;
  const started = /Transaction started in line (\d+)/.exec(output);
  const detected = /Error detected in line (\d+)/.exec(output);
  const previous = /(\d+) previous messages? (?:was|were) successfully processed/.exec(output);
  // the command at fault, on stdout after the error line (none for a stream cut short)
  const command = /The SMTP command at fault was:\r?\n {3}(.*)$/m.exec(output) ?? /Error detected in line \d+\r?\n((?:MAIL|RCPT|DATA)\b.*)$/im.exec(output);
  return {
    code: Number(reply[1]),
    text: reply[2]!.trim(),
    startLine: started ? Number(started[1]) : undefined,
    errorLine: detected ? Number(detected[1]) : undefined,
    previous: previous ? Number(previous[1]) : undefined,
    command: command ? command[1]!.trim() : undefined,
  };
}

/**
 * Offer the transactions to `exim -bS`, re-offering after a partial acceptance. Calls
 * `record` with each transaction's results as soon as they are known.
 */
export async function deliverWithEximBatch(
  txs: Transaction[],
  skip: (i: number) => ReadonlySet<string>,
  record: (tx: Transaction, results: RecipientResult[]) => Promise<void>,
  o: EximBatchOptions,
): Promise<void> {
  let remaining = txs;
  // recipients refused at RCPT in this call, a 4xx too (review9a E1): offered again in this
  // call, Exim would stop the batch at that same RCPT round after round and never reach the
  // others; a deferred one waits for the next attempt
  const answered = new Map<number, Set<string>>();
  const skipNow = (i: number): ReadonlySet<string> => {
    const a = answered.get(i);
    return a ? new Set([...skip(i), ...a]) : skip(i);
  };
  // each round settles a transaction or one recipient of one
  const rounds = txs.reduce((n, tx) => n + tx.recipients.length, 0) + txs.length;
  for (let round = 0; remaining.length > 0 && round <= rounds; round++) {
    const { planned, stream } = await plan(remaining, skipNow);
    if (planned.length === 0) return;
    const out = await runChild(o.program, ['-bS'], stream(), o.env, o.timeoutMs);
    if (out.code === 0) {
      for (const p of planned) await record(p.tx, p.recipients.map((address) => ({ address, kind: 'accepted', status: '2.0.0', diagnostic: 'x-unix; exim -bS accepted' })));
      return;
    }
    const err = out.code === 1 || out.code === 2 ? parseEximBatchError(out.output) : undefined;
    // Exim's own count of the messages it took is the surest guide; the line numbers
    // are the fallback (Exim counts some body lines differently from us): the line of the
    // command at fault, or the one after "Transaction started in line N", which names the
    // line before the transaction's MAIL (4.96: the previous transaction's ".")
    const where = err?.errorLine ?? (err?.startLine !== undefined ? err.startLine + 1 : undefined);
    const failing = err?.previous !== undefined
      ? (err.previous < planned.length ? err.previous : -1)
      : where === undefined ? -1 : planned.findIndex((p, i) => p.line <= where && (i + 1 >= planned.length || planned[i + 1]!.line > where));
    if (!err || failing < 0 || (out.code === 2 && failing !== 0)) {
      // an outcome we cannot place: nothing is known to be taken beyond exit 1's "some";
      // with exit 2 nothing was taken. Keep everything for a later attempt.
      const why = out.spawnError ? `cannot run exim: ${out.spawnError.message}` : `exim -bS exited ${out.signal ?? out.code}: ${out.output.replace(/\s+/g, ' ').slice(0, 300)}`;
      for (const p of planned) await record(p.tx, p.recipients.map((address) => ({ address, kind: 'temporary', status: '4.3.0', diagnostic: `x-unix; ${why}` })));
      return;
    }
    for (let i = 0; i < failing; i++) {
      const p = planned[i]!;
      await record(p.tx, p.recipients.map((address) => ({ address, kind: 'accepted', status: '2.0.0', diagnostic: 'x-unix; exim -bS accepted' })));
    }
    const bad = planned[failing]!;
    const rest = planned.slice(failing + 1).map((p) => p.tx);
    // refused at one RCPT, Exim abandons the whole transaction: that recipient has its
    // answer, the others none yet (offered again, without it, with the ones after)
    const refused = /^RCPT TO:<(.*)>$/i.exec(err.command ?? '')?.[1];
    if (refused !== undefined && bad.recipients.length > 1 && bad.recipients.includes(refused)) {
      // 452 "too many recipients" (Exim's recipients_max): the ones after it in this
      // transaction would meet the same limit, one round each; RFC 5321 4.5.3.1.10 has
      // them sent in a later transaction, so they wait with it for the next attempt
      const held = err.code === 452 ? bad.recipients.slice(bad.recipients.indexOf(refused)) : [refused];
      await record(bad.tx, held.map((address) => resultOfReply(address, err.code, err.text)));
      const a = answered.get(bad.tx.index) ?? new Set<string>();
      for (const address of held) a.add(address);
      answered.set(bad.tx.index, a);
      remaining = [bad.tx, ...rest];
      continue;
    }
    await record(bad.tx, bad.recipients.map((address) => resultOfReply(address, err.code, err.text)));
    remaining = rest;
  }
}
