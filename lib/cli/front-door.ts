// What `mailbag enqueue` and `mailbag-uux` share: turn an envelope and stdin into one
// job in out/PEER, durably, or refuse with the error lib/exit.ts maps to the right
// status. A message with a sender rmail can carry becomes an rmail job (From_ line +
// message, byte for byte); a null sender becomes a BSMTP job (`MAIL FROM:<>`); a BSMTP
// stream is checked to its last byte before it is accepted. Only the spool is written.

import { createReadStream, readSync } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { InputError, MailbagError } from '../errors.js';
import { LIMITS } from '../limits.js';
import { checkRecipient, checkSender, type AddressJob } from '../envelope/address.js';
import { formatFromLine, UucpEnvelopeReader } from '../envelope/from-line.js';
import { BsmtpBodyEncoder, formatBsmtpEnvelope } from '../bsmtp/writer.js';
import type { BsmtpEvent } from '../bsmtp/reader.js';
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
const GT_FROM_PREFIX = Buffer.from('>From ');
/** the first bytes of an envelope line: `From ` or `>From ` */
const F = 0x46;
const GT = 0x3e;
const NOTHING = new Uint8Array(0);

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

/** chunks() for a synchronous input. */
function chunksSync(input: Iterable<Uint8Array>): Iterator<Uint8Array> {
  const it = input[Symbol.iterator]();
  return {
    next() {
      try {
        return it.next();
      } catch (err) {
        throw new MailbagError('input', `reading the message from stdin: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    },
    return() {
      return it.return?.() ?? { done: true, value: undefined };
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
 * Reads a From_ envelope (`From ` and `>From ` lines, as an MTA's pipe flag F or an mbox
 * writes them) off the start of stdin, fed one chunk at a time (null at the end). Its
 * result: the bytes that follow the envelope and its sender; stdin that does not begin
 * with `From ` is all message. It must go: a receiving rmail would read it as envelope,
 * never as message text. A `From ` line rmail would refuse is a bad envelope.
 */
class FromLineTaker {
  private reader: UucpEnvelopeReader | undefined;
  private readonly seen: Buffer[] = [];

  /** null while more input is needed */
  step(chunk: Uint8Array | null): { lead: Uint8Array; sender: string | undefined } | null {
    // the usual case, decided by one byte: stdin that starts with neither `From ` nor
    // `>From ` holds no envelope, and its first chunk is all message (no copy made)
    if (this.seen.length === 0 && chunk !== null && chunk.length > 0 && chunk[0] !== F && chunk[0] !== GT) {
      return { lead: chunk, sender: undefined };
    }
    const reader = (this.reader ??= new UucpEnvelopeReader());
    const outcome = chunk === null ? reader.end() : (this.seen.push(Buffer.from(chunk)), reader.push(chunk));
    if (outcome === null) return null;
    if (outcome.ok) return { lead: Buffer.from(outcome.value.rest), sender: outcome.value.envelope.sender };
    const all = Buffer.concat(this.seen);
    // a `>From ` line is envelope to rmail as much as a `From ` line: left at the start
    // of the message it would follow our From_ line and break the job's envelope there
    if (all.subarray(0, FROM_PREFIX.length).equals(FROM_PREFIX) || all.subarray(0, GT_FROM_PREFIX.length).equals(GT_FROM_PREFIX)) {
      throw new InputError('bad-envelope', `the From_ line on stdin is refused: ${outcome.issue.message}`);
    }
    return { lead: all, sender: undefined };
  }
}

async function takeFromLine(it: AsyncIterator<Uint8Array>): Promise<{ lead: Uint8Array; sender: string | undefined }> {
  const taker = new FromLineTaker();
  for (;;) {
    const next = await it.next();
    const taken = taker.step(next.done ? null : next.value);
    if (taken) return taken;
  }
}

function takeFromLineSync(it: Iterator<Uint8Array>): { lead: Uint8Array; sender: string | undefined } {
  const taker = new FromLineTaker();
  for (;;) {
    const next = it.next();
    const taken = taker.step(next.done ? null : next.value);
    if (taken) return taken;
  }
}

/** What a message becomes, decided before its body is read: the job header and the payload's first bytes. */
interface MessagePlan {
  header: JobHeader;
  /** the From_ line of an rmail job, or the BSMTP envelope lines */
  head: Buffer;
  /** BSMTP job: the body is dot-stuffed and ended */
  bsmtp: boolean;
}

const NOT_UTF8 = 'is not UTF-8 (U+FFFD stands where its bytes were: the MTA passed an 8-bit address mailbag cannot carry)';

/**
 * Node hands bytes of argv that are not UTF-8 over as U+FFFD: the address the MTA gave
 * is lost, and carrying the one left on would deliver elsewhere. Refused here, where
 * addresses come from the command line, not in lib/envelope's checks, which a peer's
 * reader of jobs already queued shares (one such recipient would fail a whole job there).
 */
function checkArgvBytes(sender: string, recipients: readonly string[]): void {
  const shown = (a: string): string => JSON.stringify(a.length > 80 ? `${a.slice(0, 80)}…` : a);
  if (sender.includes('\uFFFD')) throw new InputError('bad-sender', `sender ${shown(sender)} ${NOT_UTF8}`);
  for (const r of recipients) {
    if (r.includes('\uFFFD')) throw new InputError('bad-recipient', `recipient ${shown(r)} ${NOT_UTF8}`);
  }
}

/** The envelope's checks (all before the spool is written), and the job it makes. */
function planMessage(config: Config, peer: string, recipients: readonly string[], sender: string | undefined, now: Date): MessagePlan {
  if (sender === undefined) {
    throw new MailbagError('usage', 'no sender: give -a SENDER, or a From_ line on stdin');
  }
  checkArgvBytes(sender, recipients);
  const nullSender = isNullSender(sender);
  // rmail cannot carry the null sender (formats checklist 3), nor a sender with a space
  // (`"john smith"@x`) or a `!` at either end, nor a recipient with a space (checklist
  // 6): BSMTP (`MAIL FROM:<>`, `RCPT TO:<"jane doe"@x>`) carries them
  // (what neither can carry is refused below with BSMTP's reason, the wider of the two)
  const rmail = !nullSender && checkSender(sender, 'rmail').ok && recipients.every((r) => checkRecipient(r, 'rmail').ok);
  if (rmail) {
    checkRecipients(config, recipients, 'rmail');
    const header = newHeader(config, peer, now, { command: 'rmail', args: [...recipients], sender, recipients: [...recipients] });
    return { header, head: Buffer.from(formatFromLine({ sender, date: now })), bsmtp: false };
  }
  const bsmtpSender = nullSender ? '' : sender;
  const checked = checkSender(bsmtpSender, 'bsmtp');
  if (!checked.ok) throw new InputError('bad-sender', checked.issue.message);
  checkRecipients(config, recipients, 'bsmtp');
  const head = Buffer.from(formatBsmtpEnvelope({ sender: bsmtpSender, recipients: [...recipients] }));
  const header = newHeader(config, peer, now, { command: 'rsmtp', args: [], sender: bsmtpSender, recipients: [...recipients] });
  return { header, head, bsmtp: true };
}

/** Counts the message's bytes against limits.max_message_size; an empty message is refused at the end. */
class BodyMeter {
  private size = 0;

  constructor(private readonly config: Config) {}

  /** false: over the cap (the caller stops its input, then throws tooBig) */
  add(chunk: Uint8Array): boolean {
    this.size += chunk.length;
    return this.size <= this.config.limits.maxMessageSize;
  }

  end(): void {
    if (this.size === 0) throw new InputError('bad-message', 'the message on stdin is empty');
  }
}

async function* messageBody(config: Config, lead: Uint8Array, it: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  const meter = new BodyMeter(config);
  if (lead.length > 0) {
    if (!meter.add(lead)) throw tooBig(config);
    yield lead;
  }
  for (;;) {
    const next = await it.next();
    if (next.done) break;
    if (!meter.add(next.value)) {
      await it.return?.();
      throw tooBig(config);
    }
    yield next.value;
  }
  meter.end();
}

function* messageBodySync(config: Config, lead: Uint8Array, it: Iterator<Uint8Array>): Generator<Uint8Array> {
  const meter = new BodyMeter(config);
  if (lead.length > 0) {
    if (!meter.add(lead)) throw tooBig(config);
    yield lead;
  }
  for (;;) {
    const next = it.next();
    if (next.done) break;
    if (!meter.add(next.value)) {
      it.return?.();
      throw tooBig(config);
    }
    yield next.value;
  }
  meter.end();
}

async function* messagePayload(plan: MessagePlan, body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield plan.head;
  if (!plan.bsmtp) {
    yield* body;
    return;
  }
  const enc = new BsmtpBodyEncoder();
  for await (const chunk of body) {
    const out = enc.push(chunk);
    if (out.length > 0) yield out;
  }
  yield enc.end();
}

function* messagePayloadSync(plan: MessagePlan, body: Iterable<Uint8Array>): Generator<Uint8Array> {
  yield plan.head;
  if (!plan.bsmtp) {
    yield* body;
    return;
  }
  const enc = new BsmtpBodyEncoder();
  for (const chunk of body) {
    const out = enc.push(chunk);
    if (out.length > 0) yield out;
  }
  yield enc.end();
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
  let lead: Uint8Array = NOTHING;
  let sender = envelope.sender;
  if (envelope.stripFromLine) {
    const taken = await takeFromLine(it);
    lead = taken.lead;
    sender ??= taken.sender;
  }
  const plan = planMessage(config, peer, envelope.recipients, sender, now);
  return writeOut(spool, config, peer, plan.header, messagePayload(plan, messageBody(config, lead, it)));
}

/**
 * enqueueMessage for input pulled synchronously (this process's stdin, read with
 * readSync): the same steps and checks, committed with synchronous calls
 * (Spool.writeJobSync), which for one message per process costs less than the thread
 * pool.
 */
export async function enqueueMessageSync(
  spool: Spool, config: Config, peer: string, envelope: MessageEnvelope,
  input: Iterable<Uint8Array>, now: Date = new Date(),
): Promise<Enqueued> {
  const it = chunksSync(input);
  let lead: Uint8Array = NOTHING;
  let sender = envelope.sender;
  if (envelope.stripFromLine) {
    const taken = takeFromLineSync(it);
    lead = taken.lead;
    sender ??= taken.sender;
  }
  const plan = planMessage(config, peer, envelope.recipients, sender, now);
  const payload = messagePayloadSync(plan, messageBodySync(config, lead, it));
  try {
    const ref = await spool.writeJobSync('out', peer, plan.header, payload, { maxSize: spoolCap(config) });
    return { ref, header: plan.header };
  } catch (err) {
    if (err instanceof MailbagError && err.cause instanceof InputError) throw err.cause;
    throw err;
  }
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
  // loaded here: only this path reads BSMTP, and the module makes a TextDecoder as it loads
  const { BsmtpReader, bsmtpIssueError } = await import('../bsmtp/reader.js');
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

/** Sleep without spinning (a non-blocking stdin with nothing to read yet). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * This process's stdin, read straight from file descriptor 0 with readSync, in chunks of
 * at most 64 KiB (memory stays bounded: each is written out before the next is read).
 * An MTA runs us once per message; a stream or the thread pool would cost it more than
 * the reads. A non-blocking descriptor (EAGAIN) is waited on and read again.
 */
export function* readStdinSync(): Generator<Uint8Array> {
  for (;;) {
    const buf = Buffer.allocUnsafe(64 * 1024);
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      pause(2);
      continue;
    }
    if (n === 0) return;
    yield buf.subarray(0, n);
  }
}

async function* asAsync(input: Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* input;
}

/** Load the configuration, check the peer, open the spool and queue stdin as the request says. */
export async function runFrontDoor(request: Exclude<EnqueueRequest, { kind: 'help' }>, io: CliIo): Promise<Enqueued> {
  const config = loadConfig({ path: request.configPath, env: io.env, cwd: io.cwd });
  requirePeer(config, request.peer);
  // checks what the job passes through (tmp/, out/PEER); Spool.open when the spool is new
  const spool = await Spool.openForQueue(config.spool, 'out', request.peer, { create: true });
  // processIo() hands out process.env itself; tests running in-process pass their own stdin
  const own = io.env === process.env;
  if (request.kind === 'bsmtp') return enqueueBsmtp(spool, config, request.peer, own ? asAsync(readStdinSync()) : io.stdin);
  if (own) return enqueueMessageSync(spool, config, request.peer, request, readStdinSync());
  return enqueueMessage(spool, config, request.peer, request, io.stdin);
}
