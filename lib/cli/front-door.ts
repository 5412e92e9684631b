// What `mailbag enqueue` and `mailbag-uux` share: turn an envelope and stdin into one
// job in out/PEER, durably, or refuse with the error lib/exit.ts maps to the right
// status. A message with a sender rmail can carry becomes an rmail job (From_ line +
// message, byte for byte); a null sender becomes a BSMTP job (`MAIL FROM:<>`); a BSMTP
// stream is checked to its last byte before it is accepted. Only the spool is written.

import { createReadStream, read } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { InputError, MailbagError } from '../errors.js';
import { LIMITS } from '../limits.js';
import { checkRecipient, checkSender, type AddressJob } from '../envelope/address.js';
import { formatFromLine, UucpEnvelopeReader } from '../envelope/from-line.js';
import { BsmtpBodyEncoder, formatBsmtpEnvelope } from '../bsmtp/writer.js';
import { BsmtpReader, bsmtpIssueError, type BsmtpEvent } from '../bsmtp/reader.js';
import type { JobHeader } from '../job/header.js';
import { newJobId } from '../job/id.js';
import { Spool, type JobRef } from '../spool/spool.js';
import { spoolErrorFrom, tmpName } from '../spool/commit.js';
import { loadConfig, requirePeer } from '../config/index.js';
import type { Config } from '../config/types.js';
import { formatSize } from '../config/units.js';
import type { CliIo } from './io.js';
import type { EnqueueRequest } from './enqueue-args.js';

export interface MessageEnvelope {
  /** '' / '<>' / MAILER-DAEMON = the null sender; undefined = from stdin's From_ line (needs stripFromLine) */
  sender: string | undefined;
  recipients: string[];
  /** stdin may begin with a From_ envelope (MTA pipe flag F, mbox): take it off, and its sender when none is given */
  stripFromLine: boolean;
}

export interface Enqueued {
  ref: JobRef & { size: number };
  header: JobHeader;
}

/** The senders that mean "no sender": rmail cannot carry them, BSMTP `MAIL FROM:<>` can. */
export function isNullSender(sender: string): boolean {
  return sender === '' || sender === '<>' || sender.toUpperCase() === 'MAILER-DAEMON';
}

const FROM_PREFIX = Buffer.from('From ');

/** Pulls chunks from stdin; a failing stdin is temporary (the MTA retries). */
function chunks(input: AsyncIterable<Uint8Array>): AsyncIterator<Uint8Array> {
  const it = input[Symbol.asyncIterator]();
  return {
    async next() {
      try {
        return await it.next();
      } catch (err) {
        throw new MailbagError('input', `reading the message from stdin: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    },
    async return() {
      return (await it.return?.()) ?? { done: true, value: undefined };
    },
  };
}

function checkRecipients(config: Config, recipients: readonly string[], job: AddressJob): void {
  if (recipients.length === 0) throw new InputError('no-recipients', 'no recipients given');
  if (recipients.length > config.limits.maxRecipients) {
    throw new InputError('bad-envelope', `${recipients.length} recipients, over the limit of ${config.limits.maxRecipients} (limits.max_recipients)`);
  }
  for (const r of recipients) {
    const checked = checkRecipient(r, job);
    if (!checked.ok) throw new InputError('bad-recipient', checked.issue.message);
  }
}

function newHeader(config: Config, peer: string, now: Date, fields: Pick<JobHeader, 'command' | 'args' | 'sender' | 'recipients'>): JobHeader {
  return { id: newJobId(now.getTime()), from: config.site, to: peer, created: now.toISOString(), ...fields };
}

/** The job size the spool enforces: the message cap plus room for envelope lines and dot-stuffing. */
function spoolCap(config: Config): number {
  return Math.min(config.limits.maxMessageSize * 2 + LIMITS.maxJobHeader, LIMITS.maxJobSizeCeiling);
}

function tooBig(config: Config): InputError {
  return new InputError('too-big', `message is larger than the limit of ${formatSize(config.limits.maxMessageSize)} (limits.max_message_size)`);
}

/** spool.writeJob, with our own refusals (thrown while the payload streams) passed through unwrapped. */
async function writeOut(spool: Spool, config: Config, peer: string, header: JobHeader, payload: AsyncIterable<Uint8Array>): Promise<Enqueued> {
  try {
    const ref = await spool.writeJob('out', peer, header, payload, { maxSize: spoolCap(config) });
    return { ref, header };
  } catch (err) {
    // the spool re-words a too-big error with its own byte cap; the message cap is ours
    if (err instanceof MailbagError && err.cause instanceof InputError) throw err.cause;
    throw err;
  }
}

/**
 * Read a From_ envelope (`From ` and `>From ` lines, as an MTA's pipe flag F or an mbox
 * writes them) off the start of stdin. Returns the bytes that follow it and its sender;
 * stdin that does not begin with `From ` is all message. It must go: a receiving rmail
 * would read it as envelope, never as message text. A `From ` line rmail would refuse is
 * a bad envelope.
 */
async function takeFromLine(it: AsyncIterator<Uint8Array>): Promise<{ lead: Buffer; sender: string | undefined }> {
  const reader = new UucpEnvelopeReader();
  const seen: Buffer[] = [];
  for (;;) {
    const next = await it.next();
    const outcome = next.done ? reader.end() : (seen.push(Buffer.from(next.value)), reader.push(next.value));
    if (outcome === null) continue;
    if (outcome.ok) return { lead: Buffer.from(outcome.value.rest), sender: outcome.value.envelope.sender };
    const all = Buffer.concat(seen);
    if (all.subarray(0, FROM_PREFIX.length).equals(FROM_PREFIX)) {
      throw new InputError('bad-envelope', `the From_ line on stdin is refused: ${outcome.issue.message}`);
    }
    return { lead: all, sender: undefined };
  }
}

/**
 * Queue a message for `peer`: an rmail job, or a BSMTP job for the null sender.
 * Envelope problems throw InputError before stdin is read (except the From_ line of the
 * uux path, which is on stdin); the job exists only once it is durable.
 */
export async function enqueueMessage(
  spool: Spool, config: Config, peer: string, envelope: MessageEnvelope,
  input: AsyncIterable<Uint8Array>, now: Date = new Date(),
): Promise<Enqueued> {
  const it = chunks(input);
  let lead: Buffer = Buffer.alloc(0);
  let sender = envelope.sender;
  if (envelope.stripFromLine) {
    const taken = await takeFromLine(it);
    lead = taken.lead;
    sender ??= taken.sender;
  }
  if (sender === undefined) {
    throw new MailbagError('usage', 'no sender: give -a SENDER, or a From_ line on stdin');
  }
  const nullSender = isNullSender(sender);
  if (!nullSender) {
    const checked = checkSender(sender, 'rmail');
    if (!checked.ok) throw new InputError('bad-sender', checked.issue.message);
  }
  const { recipients } = envelope;
  checkRecipients(config, recipients, nullSender ? 'bsmtp' : 'rmail');

  const max = config.limits.maxMessageSize;
  let size = 0;
  async function* body(): AsyncGenerator<Uint8Array> {
    if (lead.length > 0) {
      size += lead.length;
      if (size > max) throw tooBig(config);
      yield lead;
    }
    for (;;) {
      const next = await it.next();
      if (next.done) break;
      size += next.value.length;
      if (size > max) {
        await it.return?.();
        throw tooBig(config);
      }
      yield next.value;
    }
    if (size === 0) throw new InputError('bad-message', 'the message on stdin is empty');
  }

  if (!nullSender) {
    const header = newHeader(config, peer, now, { command: 'rmail', args: [...recipients], sender, recipients: [...recipients] });
    const fromLine = Buffer.from(formatFromLine({ sender, date: now }));
    const payload = (async function* () {
      yield fromLine;
      yield* body();
    })();
    return writeOut(spool, config, peer, header, payload);
  }

  // rmail cannot carry the null sender (formats checklist 3): BSMTP `MAIL FROM:<>`
  const head = Buffer.from(formatBsmtpEnvelope({ sender: '', recipients }));
  const header = newHeader(config, peer, now, { command: 'rsmtp', args: [], sender: '', recipients: [...recipients] });
  const payload = (async function* () {
    yield head;
    const enc = new BsmtpBodyEncoder();
    for await (const chunk of body()) {
      const out = enc.push(chunk);
      if (out.length > 0) yield out;
    }
    yield enc.end();
  })();
  return writeOut(spool, config, peer, header, payload);
}

/**
 * Queue a BSMTP stream (as Exim's pipe transport with use_bsmtp writes it) for `peer`.
 * The stream is read to its end and checked by lib/bsmtp's reader while its canonical
 * form (LF, dot-stuffed, ESMTP parameters kept, no HELO/QUIT) is staged in the spool's
 * tmp/; only a stream without any issue becomes a job, whose header holds the envelope
 * (the first transaction's sender; every transaction's recipients). Memory stays bounded.
 */
export async function enqueueBsmtp(
  spool: Spool, config: Config, peer: string,
  input: AsyncIterable<Uint8Array>, now: Date = new Date(),
): Promise<Enqueued> {
  const it = chunks(input);
  const reader = new BsmtpReader({ maxMessageSize: config.limits.maxMessageSize, maxRecipients: config.limits.maxRecipients });
  const staged = `${spool.tmpDir}/${tmpName('bsmtp-stage')}`;
  let fh;
  try {
    fh = await open(staged, 'wx', 0o600);
  } catch (err) {
    throw spoolErrorFrom(err, `staging BSMTP input in ${spool.tmpDir}`);
  }
  try {
    let sender: string | undefined;
    const recipients: string[] = [];
    const seen = new Set<string>();
    let transactions = 0;
    let enc: BsmtpBodyEncoder | null = null;
    const handle = async (events: BsmtpEvent[]): Promise<void> => {
      const out: Uint8Array[] = [];
      for (const e of events) {
        if (e.type === 'error') throw bsmtpIssueError({ ...e.issue, message: `BSMTP line ${e.issue.line}: ${e.issue.message}` });
        if (e.type === 'message') {
          transactions++;
          sender ??= e.envelope.sender;
          for (const r of e.envelope.recipients) {
            if (!seen.has(r.address)) {
              seen.add(r.address);
              recipients.push(r.address);
            }
          }
          out.push(Buffer.from(formatBsmtpEnvelope(e.envelope)));
          enc = new BsmtpBodyEncoder();
        } else if (e.type === 'body') {
          out.push(enc!.push(e.chunk));
        } else if (e.type === 'end-of-message') {
          out.push(enc!.end());
          enc = null;
        }
      }
      if (out.length > 0) {
        try {
          await fh!.write(Buffer.concat(out));
        } catch (err) {
          throw spoolErrorFrom(err, `staging BSMTP input in ${staged}`);
        }
      }
    };
    for (;;) {
      const next = await it.next();
      if (next.done) break;
      await handle(reader.push(next.value));
      if (reader.done) break;
    }
    await handle(reader.end());
    if (transactions === 0 || sender === undefined) throw new InputError('bad-bsmtp', 'the BSMTP input holds no transaction');
    if (recipients.length > config.limits.maxRecipients) {
      throw new InputError('bad-envelope', `${recipients.length} recipients in the BSMTP input, over the limit of ${config.limits.maxRecipients} (limits.max_recipients)`);
    }
    await fh.close();
    fh = undefined;
    const header = newHeader(config, peer, now, { command: 'rsmtp', args: [], sender, recipients });
    const ref = await spool.writeJob('out', peer, header, createReadStream(staged), { maxSize: spoolCap(config) });
    return { ref, header };
  } finally {
    await fh?.close().catch(() => undefined);
    await unlink(staged).catch(() => undefined);
  }
}

/**
 * This process's stdin read straight from file descriptor 0. Iterating process.stdin
 * costs a few milliseconds of stream machinery per message; an MTA runs us once per
 * message. If the descriptor turns out non-blocking (EAGAIN), the rest comes through the
 * stream, which nothing has read from yet.
 */
async function* readStdinFd(io: CliIo): AsyncGenerator<Uint8Array> {
  for (;;) {
    const buf = Buffer.allocUnsafe(64 * 1024);
    let n: number;
    try {
      n = await new Promise<number>((resolvePromise, reject) => {
        read(0, buf, 0, buf.length, null, (err, bytes) => (err ? reject(err) : resolvePromise(bytes)));
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      yield* io.stdin;
      return;
    }
    if (n === 0) return;
    yield buf.subarray(0, n);
  }
}

/** stdin as given in `io`; this process's own through its descriptor (see readStdinFd). */
function stdinOf(io: CliIo): AsyncIterable<Uint8Array> {
  // processIo() hands out process.env itself; tests running in-process pass their own
  return io.env === process.env ? readStdinFd(io) : io.stdin;
}

/** Load the configuration, check the peer, open the spool and queue stdin as the request says. */
export async function runFrontDoor(request: Exclude<EnqueueRequest, { kind: 'help' }>, io: CliIo): Promise<Enqueued> {
  const config = loadConfig({ path: request.configPath, env: io.env, cwd: io.cwd });
  requirePeer(config, request.peer);
  const spool = await Spool.open(config.spool, { create: true });
  const input = stdinOf(io);
  if (request.kind === 'bsmtp') return enqueueBsmtp(spool, config, request.peer, input);
  return enqueueMessage(spool, config, request.peer, request, input);
}
