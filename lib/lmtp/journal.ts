// lmtpd's write-ahead journal (docs/spool.md, "The LMTP journal"). A transaction's job
// is made durable before its `250` by appending it to a preallocated journal file
// together with the jobs of every transaction that ended meanwhile, and ONE fdatasync
// for them all; only then are the callers answered. The jobs are then written into
// out/PEER as ordinary job files (tmp, fsync, link, directory fsync: the commit of
// docs/spool.md), off the reply path, and the journal is reset (a new generation in its
// header, fdatasynced) once every job appended to it is durable there. A crash leaves
// the journal to be replayed at the next start: every whole record of the current
// generation whose job is not in out/PEER is written there; a record torn by the crash
// (length and CRC-32 checked) and everything after it was never answered and is dropped.
//
// Memory is bounded: a job is held in memory from its first byte until it is written
// into out/PEER, and only jobs of at most JOURNAL_MAX_JOB bytes go through the journal
// (a larger one is staged in tmp/ as it arrives and committed by GroupCommit, as before);
// the jobs held are at most one per connection being received plus JOURNAL_MAX_HELD bytes of
// answered ones (beyond that, commits wait for the writes into out/).

import { closeSync, constants, fchmodSync, fdatasync, fdatasyncSync, fstatSync, fsync, fsyncSync, linkSync, lstatSync, open as openCb, openSync, readdirSync, readSync, unlinkSync, writeSync, writevSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { crc32 } from 'node:zlib';
import { InputError, MailbagError } from '../errors.js';
import { isJobId, isName } from '../job/header.js';
import { FILE_MODE, fsyncDirSync, spoolErrorFrom, tmpName, type CommitOptions, type CommitResult, type GroupCommit, type StagedFile } from '../spool/commit.js';
import { faultPoint } from '../spool/fault.js';
import type { Lock } from '../spool/lock.js';
import type { Spool } from '../spool/spool.js';

/** the journals' directory in the spool; a journal is `lmtp-journal/N`, locked by its lmtpd as lock `lmtp-journal-N` */
export const JOURNAL_DIR = 'lmtp-journal';
/** a journal file's size, written (zeros) once when it is made: appends never change its size or extents */
export const JOURNAL_SIZE = 64 * 1024 * 1024;
/** the largest job that goes through the journal; a larger one is staged in tmp/ as before */
export const JOURNAL_MAX_JOB = 128 * 1024;
/**
 * The journal's points, in order: `journal-mid-append` (half of a batch's records
 * written, not flushed), `journal-after-flush` (flushed, no caller answered),
 * `journal-mid-materialize` (the batch's job files linked into out/PEER, their
 * directory not fsynced), `journal-before-reset` (every job durable in out/PEER, the
 * journal not yet reset).
 */
export const JOURNAL_FAULT_POINTS = ['journal-mid-append', 'journal-after-flush', 'journal-mid-materialize', 'journal-before-reset'] as const;

const HEADER_SIZE = 4096;
/**
 * The header's magic line: `2` once its generation has records (written with the first
 * batch's, in its flush), `1` after a reset or a replay (every record durable in out/:
 * nothing to replay) and in a new journal. A build before the key (3d40926) reads keyed
 * records as torn: given a `1` header it retired them without a word (answered mail
 * lost, silently); a `2` header it takes for a damaged one and says so ("… has a damaged
 * header and no whole record after it: nothing in it can be replayed (any mail answered
 * from it and not in out/ is lost)"). Nothing in the file makes such a build refuse to
 * start: it retires the journal either way (docs/spool.md, "The LMTP journal").
 */
const MAGIC_LINE = 'mailbag-lmtp-journal 1\n';
const MAGIC_OPEN = 'mailbag-lmtp-journal 2\n';
const HEAD_LEN = 32;
/** 'MBJR', little-endian */
const REC_MAGIC = 0x524a424d;
const REC_HEAD = 20;
/**
 * The journal's key: 16 random bytes made once per journal file and never changed,
 * kept twice in the header's block (a magic 'MBJK', the key, a CRC-32 of both), at
 * these offsets. Each record's CRC-32 starts from the key's CRC (its seed), so bytes a
 * sender put inside a job (which may sit behind the current generation's last record,
 * the crash tail, once a later generation is written over them) cannot pass for a
 * record: the sender does not know the key. A journal of an earlier build has no key;
 * its records' CRCs start from 0 (read at the upgrade's replay, then the key is made).
 */
const KEY_AT = [1024, 3072] as const;
const KEY_MAGIC = 0x4b4a424d;
const KEY_LEN = 16;
const KEY_BLOCK = 4 + KEY_LEN + 4;
/** a reset is due once the journal is this full, or idle this long with everything written out */
const RESET_FILL = JOURNAL_SIZE / 2;
const RESET_IDLE_MS = 200;
/** answered jobs waiting to be written into out/ are held in memory up to this many bytes; then commits wait */
export const JOURNAL_MAX_HELD = 16 * 1024 * 1024;
/** a failing write into out/PEER is tried again after this long (doubling up to the most) */
const RETRY_MS = 500;
const RETRY_MAX_MS = 30_000;
const MAX_IOV = 512;
/** a journal flush is done on the event loop while it takes at most this long (SyncGate) */
const SYNC_FLUSH_MAX_MS = 0.25;
/** the write-out's batches likewise, at most this long per job; and a batch on the event loop hands the rest of its jobs to the pool once it has taken SYNC_WRITE_BUDGET_MS */
const SYNC_WRITE_MAX_MS = 0.1;
const SYNC_WRITE_BUDGET_MS = 2;

/**
 * Whether a file call is done on the event loop or through libuv's pool. Through the pool
 * each call costs two hand-overs between threads (a wake-up each way), which on storage
 * whose fsyncs return at once (tmpfs; a disk with a power-safe cache) cost more than the
 * call itself; on a disk whose fsync waits for the medium, a call on the event loop would
 * keep it from receiving meanwhile. So calls are timed on the event loop: while the
 * fastest of the last SAMPLES is within the bound they stay there (a lone slow one is a
 * busy machine's scheduling, not the disk); otherwise the next PROBE_EVERY go through the
 * pool, then one is timed on the event loop again.
 */
export class SyncGate {
  private static readonly SAMPLES = 4;
  private static readonly PROBE_EVERY = 256;
  private readonly samples: number[] = [];
  private asyncLeft = 0;
  sync = 0;
  async = 0;

  constructor(private readonly maxMs: number) {}

  /** true: do this one on the event loop and report its time with `took` */
  onLoop(): boolean {
    if (this.asyncLeft > 0) {
      this.asyncLeft--;
      this.async++;
      return false;
    }
    this.sync++;
    return true;
  }

  took(ms: number): void {
    this.samples.push(ms);
    if (this.samples.length > SyncGate.SAMPLES) this.samples.shift();
    if (this.samples.length === SyncGate.SAMPLES && Math.min(...this.samples) > this.maxMs) this.asyncLeft = SyncGate.PROBE_EVERY;
  }
}
/** close(): how long a flush in progress may still take before the descriptor is left open */
const LET_GO_MS = 10_000;
/** test switch: the journal's jobs are never written into out/PEER (the fault tests' "after the 250, before materialization") */
const HOLD = process.env.MAILBAG_FAULT === 'journal-hold';
const MID_APPEND = process.env.MAILBAG_FAULT === 'journal-mid-append';


/** `open`: records of `gen` are (about to be) in the journal (MAGIC_OPEN); else nothing is there to replay */
function header(gen: number, open: boolean): Buffer {
  const b = Buffer.alloc(HEAD_LEN);
  b.write(open ? MAGIC_OPEN : MAGIC_LINE, 0, 'latin1');
  b.writeUInt32LE(gen >>> 0, 24);
  b.writeUInt32LE(crc32(b.subarray(0, 28)), 28);
  return b;
}

/**
 * Start a new generation, retiring the records behind the header (called only when every
 * record is durable in out/): first the magic of the record at HEADER_SIZE is cleared and
 * flushed, then the header (MAGIC_LINE: nothing to replay) is written and flushed. A header that later does not parse is
 * read by the record there (generationOf), which must then be the current generation's,
 * never a retired one (its job durable in out/ and perhaps sent and removed since). Two
 * flushes, in this order, because a header torn by a power cut during its flush is the
 * damage that path is for: with one flush the cleared magic might not have reached the
 * disk with it. Killed between the two, the old header stays, with no whole record
 * behind it: nothing to replay, and nothing is lost (every job is in out/). A generation
 * above 2^32 − 1 (a whole record of the last number, which only a sender's bytes inside
 * a job can make, found by a damaged header's scan) has no number above it: the records
 * are wiped instead and the count starts again at 1. Returns the generation written.
 */
async function retire(fd: number, gen: number, flush: () => Promise<void>): Promise<number> {
  if (gen > 0xffffffff) {
    const zeros = Buffer.alloc(1024 * 1024);
    const size = fstatSync(fd).size;
    for (let off = HEADER_SIZE; off < size; off += zeros.length) writeSync(fd, zeros, 0, Math.min(zeros.length, size - off), off);
    gen = 1;
  } else {
    writeSync(fd, Buffer.alloc(4), 0, 4, HEADER_SIZE);
  }
  await flush();
  writeSync(fd, header(gen, false), 0, HEAD_LEN, 0);
  await flush();
  return gen;
}

/** the generation a header names, or undefined when it is not a whole header (a fresh or torn one: nothing to replay) */
function parseHeader(b: Buffer): number | undefined {
  const magic = b.length < HEAD_LEN ? '' : b.toString('latin1', 0, MAGIC_LINE.length);
  if (magic !== MAGIC_LINE && magic !== MAGIC_OPEN) return undefined;
  if (b.readUInt32LE(28) !== crc32(b.subarray(0, 28))) return undefined;
  return b.readUInt32LE(24);
}

/** The seed of the records' CRC-32s in this journal file (the CRC of its key), or undefined when no copy of a key is whole (an earlier build's journal). */
function readSeed(fd: number): number | undefined {
  const b = Buffer.alloc(KEY_BLOCK);
  for (const at of KEY_AT) {
    if (readFully(fd, b, at) < KEY_BLOCK || b.readUInt32LE(0) !== KEY_MAGIC) continue;
    if ((crc32(b.subarray(0, 4 + KEY_LEN)) >>> 0) !== b.readUInt32LE(4 + KEY_LEN)) continue;
    return crc32(b.subarray(4, 4 + KEY_LEN)) >>> 0;
  }
  return undefined;
}

/**
 * The journal's key, made (both copies written; flushed by the caller's next flush,
 * before any record uses it) when the file has none: a new journal, or one of an
 * earlier build after its replay. Returns the records' CRC seed.
 */
function ensureKey(fd: number): number {
  const seed = readSeed(fd);
  if (seed !== undefined) return seed;
  const b = Buffer.alloc(KEY_BLOCK);
  b.writeUInt32LE(KEY_MAGIC, 0);
  randomBytes(KEY_LEN).copy(b, 4);
  b.writeUInt32LE(crc32(b.subarray(0, 4 + KEY_LEN)) >>> 0, 4 + KEY_LEN);
  for (const at of KEY_AT) writeSync(fd, b, 0, KEY_BLOCK, at);
  return crc32(b.subarray(4, 4 + KEY_LEN)) >>> 0;
}

function recordHead(gen: number, seed: number, dest: Buffer, pieces: readonly Uint8Array[], size: number): Buffer {
  const h = Buffer.alloc(REC_HEAD);
  h.writeUInt32LE(REC_MAGIC, 0);
  h.writeUInt32LE(gen >>> 0, 4);
  h.writeUInt32LE(dest.length, 8);
  h.writeUInt32LE(size, 12);
  let c = crc32(h.subarray(0, 16), seed);
  c = crc32(dest, c);
  for (const p of pieces) c = crc32(p, c);
  h.writeUInt32LE(c >>> 0, 16);
  return h;
}

function readFully(fd: number, buf: Buffer, pos: number): number {
  let off = 0;
  while (off < buf.length) {
    const n = readSync(fd, buf, off, buf.length - off, pos + off);
    if (n === 0) break;
    off += n;
  }
  return off;
}

function writevAll(fd: number, bufs: readonly Uint8Array[], pos: number): number {
  let written = 0;
  for (let i = 0; i < bufs.length; i += MAX_IOV) {
    const part = bufs.slice(i, i + MAX_IOV);
    const want = part.reduce((n, b) => n + b.byteLength, 0);
    let n = writevSync(fd, part, pos + written);
    if (n < want) {
      // a short write (rare on a regular file): the rest with plain writes
      const data = Buffer.concat(part, want);
      while (n < want) n += writeSync(fd, data, n, want - n, pos + written + n);
    }
    written += want;
  }
  return written;
}

function flushFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
}

function ignore(f: () => void): void {
  try {
    f();
  } catch {
    // best effort
  }
}

/** The spool path a record names (`out/PEER/ID`), checked, or undefined. */
function destOf(spool: Spool, rel: string): { peer: string; path: string } | undefined {
  const m = /^out\/([^/]+)\/([^/]+)$/.exec(rel);
  if (!m || !isName(m[1]) || !isJobId(m[2])) return undefined;
  return { peer: m[1], path: spool.ref('out', m[1], m[2]).path };
}

/**
 * The whole records of a journal's current generation, in order: each job's spool path
 * (`out/PEER/ID`) and bytes. Reading stops at the first record that is not whole (wrong
 * magic or generation, a length past the file, a CRC that does not match: a write torn
 * by a crash), since nothing after it was ever answered. One record in memory at a time.
 */
function* records(fd: number, gen: number, seed: number): Generator<{ rel: string; data: Buffer }> {
  const size = fstatSync(fd).size;
  let pos = HEADER_SIZE;
  for (;;) {
    const r = recordAt(fd, pos, size, seed);
    if (!r || r.gen !== gen) break;
    pos = r.end;
    yield { rel: r.rel, data: r.data };
  }
}

/** The whole record at `pos` (magic, lengths within bounds, CRC-32 from `seed`), or undefined. */
function recordAt(fd: number, pos: number, size: number, seed: number): { gen: number; rel: string; data: Buffer; end: number } | undefined {
  if (pos + REC_HEAD > size) return undefined;
  const rh = Buffer.alloc(REC_HEAD);
  if (readFully(fd, rh, pos) < REC_HEAD || rh.readUInt32LE(0) !== REC_MAGIC) return undefined;
  const destLen = rh.readUInt32LE(8);
  const dataLen = rh.readUInt32LE(12);
  if (destLen === 0 || destLen > 1024 || dataLen > JOURNAL_MAX_JOB || pos + REC_HEAD + destLen + dataLen > size) return undefined;
  const body = Buffer.alloc(destLen + dataLen);
  if (readFully(fd, body, pos + REC_HEAD) < body.length) return undefined;
  if ((crc32(body, crc32(rh.subarray(0, 16), seed)) >>> 0) !== rh.readUInt32LE(16)) return undefined;
  return { gen: rh.readUInt32LE(4), rel: body.toString('utf8', 0, destLen), data: body.subarray(destLen), end: pos + REC_HEAD + destLen + dataLen };
}

/**
 * The record at the start of the records (HEADER_SIZE) if whole, and the CRC seed it was
 * written with: the journal's key's (this build) or 0 (an earlier build's journal, read
 * once at the upgrade). Either is safe there: a record at HEADER_SIZE is always one
 * lmtpd wrote (never a sender's bytes, which are inside a record's data) or one whose
 * magic a reset cleared. The records after it must have the same seed.
 */
function firstRecord(fd: number, size: number, keySeed: number | undefined): { gen: number; seed: number } | undefined {
  for (const seed of keySeed === undefined ? [0] : [keySeed, 0]) {
    const r = recordAt(fd, HEADER_SIZE, size, seed);
    if (r) return { gen: r.gen, seed };
  }
  return undefined;
}

/**
 * Which generation of a journal to read, with which CRC seed. A whole header names it,
 * unless the record at the start of the records is whole and of a later generation:
 * every generation is written by a header above every whole record in the file, so that
 * header is stale (its write lost: a drive that acknowledged a flush it had not done)
 * and the records are the current generation's, answered (`stale`). A header that does
 * not parse can only be damage (a new journal gets its header before its name appears,
 * and a header is rewritten within one sector), and the records behind it may be
 * answered mail: they are read under the generation of the record at the start of the
 * records (the current generation's if whole: every header write that retires records
 * clears its magic first, `retire`; each generation writes from there on, so every
 * record after it is of that generation or older ones, retired); `cleared` says that
 * magic is zero (retired, nothing appended since: nothing can be lost). In both repairs
 * `next` is a generation above every whole record in the file, so that none of them is
 * ever read as a newer one (above 2^32 − 1: `retire` wipes the records).
 */
function generationOf(fd: number): { gen: number | undefined; seed: number; next: number; damaged: boolean; stale: boolean; cleared: boolean } {
  const keySeed = readSeed(fd);
  const size = fstatSync(fd).size;
  const head = Buffer.alloc(HEAD_LEN);
  const h = readFully(fd, head, 0) === HEAD_LEN ? parseHeader(head) : undefined;
  const first = firstRecord(fd, size, keySeed);
  const seed = first?.seed ?? keySeed ?? 0;
  if (h !== undefined && (first === undefined || first.gen <= h)) return { gen: h, seed, next: h + 1, damaged: false, stale: false, cleared: false };
  const magic = Buffer.alloc(4);
  const cleared = readFully(fd, magic, HEADER_SIZE) === 4 && magic.readUInt32LE(0) === 0;
  const next = Math.max(h ?? 0, maxRecordGen(fd, size, keySeed)) + 1;
  return { gen: first?.gen, seed, next, damaged: h === undefined, stale: h !== undefined, cleared };
}

/** The highest generation of any whole record in the file, with the key's seed or 0 (0 if none): a scan of the whole file, for a damaged or stale header only. */
function maxRecordGen(fd: number, size: number, keySeed: number | undefined): number {
  const magic = Buffer.alloc(4);
  magic.writeUInt32LE(REC_MAGIC, 0);
  const chunk = Buffer.alloc(1024 * 1024);
  const seeds = keySeed === undefined ? [0] : [keySeed, 0];
  let max = 0;
  for (let base = HEADER_SIZE; base < size; base += chunk.length - 3) {
    const n = readFully(fd, chunk, base);
    const view = chunk.subarray(0, n);
    for (let i = view.indexOf(magic); i >= 0; i = view.indexOf(magic, i + 1)) {
      for (const seed of seeds) {
        const r = recordAt(fd, base + i, size, seed);
        if (r && r.gen > max) max = r.gen;
      }
    }
    if (n < chunk.length) break;
  }
  return max;
}

/** jobs written into out/ together by a replay (one fsync each issued at once, one fsync per directory): at most this many, and this many bytes */
const REPLAY_BATCH = 256;
const REPLAY_BATCH_BYTES = 16 * 1024 * 1024;

/**
 * Replay one journal whose writer is gone (its lock is held by the caller): each whole
 * record of the header's generation whose job is missing from out/PEER is written there
 * durably, in batches (the commit of docs/spool.md with the batch's fsyncs issued
 * together and one directory fsync per batch, as lmtpd's write-out does); then the
 * journal is reset. Returns how many jobs were written.
 */
async function replayFile(spool: Spool, path: string, log: (line: string) => void): Promise<number> {
  const fd = openSync(path, constants.O_RDWR);
  try {
    let written = 0;
    const { gen, seed, next, damaged, stale, cleared } = generationOf(fd);
    if (damaged) {
      log(gen !== undefined
        ? `lmtpd: the LMTP journal ${path} has a damaged header: replaying the records of generation ${gen} that follow it`
        : cleared
          ? `lmtpd: the LMTP journal ${path} has a damaged header; its records had all been written into out/ (retired) and none was added since: nothing to replay, nothing lost`
          : `lmtpd: the LMTP journal ${path} has a damaged header and a damaged first record: nothing in it can be replayed (mail answered from it and not in out/ may be lost)`);
    }
    if (stale) log(`lmtpd: the LMTP journal ${path} has a header older than its records (a lost write): replaying the records of generation ${gen} that follow it`);
    let batch: { dest: string; pieces: Uint8Array[]; tmpDir: string }[] = [];
    let bytes = 0;
    const present = new Set<string>();
    const flush = async (): Promise<void> => {
      const failed = await writeJobFiles(batch);
      // (a job already in out/ is not a failure there: its link finds the name.) Anything
      // else, its directory's fsync included, ends the replay: the journal is not reset
      for (const err of failed.values()) throw err;
      written += batch.length;
      batch = [];
      bytes = 0;
    };
    if (gen !== undefined) {
      for (const r of records(fd, gen, seed)) {
        const dest = destOf(spool, r.rel);
        if (!dest) break;
        // already written into out/ (and perhaps sent since: see docs/spool.md, L8); its
        // name may not be durable yet (killed before its directory's fsync, or that fsync
        // failed): the directory is fsynced before the reset
        if (exists(dest.path)) {
          present.add(dest.path.slice(0, dest.path.lastIndexOf('/')));
          continue;
        }
        if (batch.some((b) => b.dest === dest.path)) continue;
        await spool.ensureDir('out', dest.peer);
        batch.push({ dest: dest.path, pieces: [r.data], tmpDir: spool.tmpDir });
        bytes += r.data.length;
        if (batch.length >= REPLAY_BATCH || bytes >= REPLAY_BATCH_BYTES) await flush();
      }
      if (batch.length > 0) await flush();
      for (const dir of present) fsyncDirSync(dir);
    } else if (!damaged) {
      return written;
    }
    // every job of the journal is durable in out/: a new generation retires its records
    await retire(fd, next, () => flushFd(fd));
    return written;
  } finally {
    closeSync(fd);
  }
}

/**
 * The jobs answered `250` that are in a journal of the spool at `root` and not (yet) in
 * out/PEER: what lmtpd holds that a listing of out/ does not show. Read-only, without
 * locks (a journal being written may gain records meanwhile; a job written into out/
 * meanwhile may appear in both: dedup by id).
 */
export function journalJobs(root: string, skip: ReadonlySet<string> = new Set()): { peer: string; id: string; data: Buffer }[] {
  const out: { peer: string; id: string; data: Buffer }[] = [];
  for (const name of journalNamesAt(root)) {
    if (skip.has(name)) continue;
    let fd: number;
    try {
      fd = openSync(join(root, JOURNAL_DIR, name), constants.O_RDONLY);
    } catch {
      continue;
    }
    try {
      const { gen, seed } = generationOf(fd);
      if (gen === undefined) continue;
      for (const { rel, data } of records(fd, gen, seed)) {
        const m = /^out\/([^/]+)\/([^/]+)$/.exec(rel);
        if (!m || !isName(m[1]) || !isJobId(m[2])) break;
        if (!exists(join(root, rel))) out.push({ peer: m[1], id: m[2], data });
      }
    } finally {
      closeSync(fd);
    }
  }
  return out;
}

/** The journals' names (`1`, `2`, …) in the spool at `root`; none when there is no journal directory. */
export function journalNamesAt(root: string): string[] {
  try {
    return readdirSync(join(root, JOURNAL_DIR)).filter((n) => /^[1-9][0-9]{0,5}$/.test(n));
  } catch {
    return [];
  }
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

function journalNames(spool: Spool): string[] {
  let names: string[];
  try {
    names = readdirSync(spool.path(JOURNAL_DIR));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names.filter((n) => /^[1-9][0-9]{0,5}$/.test(n)).sort((a, b) => Number(a) - Number(b));
}

async function tryLock(spool: Spool, name: string): Promise<Lock | undefined> {
  try {
    return await spool.lock(`lmtp-journal-${name}`);
  } catch (err) {
    if (err instanceof MailbagError && err.code === 'locked') return undefined;
    throw err;
  }
}

/**
 * Replay every journal no running lmtpd holds (lmtpd's start; also safe from any other
 * process: a journal being written is locked and skipped). Returns the jobs written.
 */
export async function replayJournals(spool: Spool, log: (line: string) => void = () => undefined): Promise<number> {
  let written = 0;
  for (const name of journalNames(spool)) {
    const lock = await tryLock(spool, name);
    if (!lock) continue;
    try {
      written += await replayFile(spool, spool.path(JOURNAL_DIR, name), log);
    } finally {
      await lock.release();
    }
  }
  return written;
}

/** Make a new journal file, whole (zeros, then its header) before its name appears. */
async function makeJournal(spool: Spool, path: string): Promise<void> {
  const tmp = join(spool.tmpDir, tmpName('journal'));
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, FILE_MODE);
  try {
    fchmodSync(fd, FILE_MODE);
    const zeros = Buffer.alloc(1024 * 1024);
    for (let off = 0; off < JOURNAL_SIZE; off += zeros.length) writeSync(fd, zeros, 0, zeros.length, off);
    writeSync(fd, header(1, false), 0, HEAD_LEN, 0);
    await fsyncFd(fd);
    closeSync(fd);
    linkSync(tmp, path);
  } catch (err) {
    ignore(() => closeSync(fd));
    throw spoolErrorFrom(err, `making the LMTP journal ${path}`);
  } finally {
    ignore(() => unlinkSync(tmp));
  }
  fsyncDirSync(spool.path(JOURNAL_DIR));
}

/**
 * The most job files a write into out/ holds open at once (a batch's files are opened,
 * written and fsynced together). lmtpd lowers it to what its open-file limit leaves
 * beside its connections (setJobFilesAtOnce): a batch of 256 open at once took the
 * descriptors its connections and ledger needed (EMFILE: 451s, a start-up replay that
 * could not finish; review10c R1, R2).
 */
let jobFilesAtOnce = 256;
export function setJobFilesAtOnce(n: number): void {
  jobFilesAtOnce = Math.max(1, Math.min(256, Math.floor(n)));
}

/** The commit of docs/spool.md for each job, at most jobFilesAtOnce together: returns the jobs that failed and why. */
async function writeJobFiles<P extends { dest: string; pieces: readonly Uint8Array[]; tmpDir: string }>(batch: readonly P[]): Promise<Map<P, unknown>> {
  if (batch.length <= jobFilesAtOnce) return writeJobFilesTogether(batch);
  const failed = new Map<P, unknown>();
  for (let i = 0; i < batch.length; i += jobFilesAtOnce) {
    for (const [p, err] of await writeJobFilesTogether(batch.slice(i, i + jobFilesAtOnce))) failed.set(p, err);
  }
  return failed;
}

/** The commit of docs/spool.md for each job, together (their fsyncs issued at once, one fsync per directory): returns the jobs that failed and why. */
async function writeJobFilesTogether<P extends { dest: string; pieces: readonly Uint8Array[]; tmpDir: string }>(batch: readonly P[]): Promise<Map<P, unknown>> {
  const failed = new Map<P, unknown>();
  const open: { p: P; fd: number; tmp: string }[] = [];
  // opened through libuv's pool, not synchronously: a synchronous create was ~10 % less of
  // lmtpd's CPU (fewer futex wakes) but blocked the event loop ~1 ms per job while the
  // batch's fsyncs held the inode table's buffers, and lmtpd alone was slower (bench/README.md, lmtp, session 9)
  await Promise.all(batch.map(async (p) => {
    const tmp = `${p.tmpDir}/${tmpName('job')}`;
    let fd: number | undefined;
    try {
      fd = await new Promise<number>((resolve, reject) =>
        openCb(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, FILE_MODE, (err, f) => (err ? reject(err) : resolve(f))),
      );
      fchmodSync(fd, FILE_MODE);
      writevAll(fd, p.pieces, 0);
      open.push({ p, fd, tmp });
    } catch (err) {
      if (fd !== undefined) ignore(() => closeSync(fd!));
      ignore(() => unlinkSync(tmp));
      failed.set(p, err);
    }
  }));
  const synced = await Promise.allSettled(open.map((o) => fsyncFd(o.fd)));
  const placed: { p: P; tmp: string }[] = [];
  open.forEach((o, i) => {
    ignore(() => closeSync(o.fd));
    const r = synced[i]!;
    if (r.status === 'rejected') {
      failed.set(o.p, r.reason);
      ignore(() => unlinkSync(o.tmp));
      return;
    }
    try {
      linkSync(o.tmp, o.p.dest);
    } catch (err) {
      // EEXIST: an earlier try linked it (its directory fsync failed): it is the same job
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        failed.set(o.p, err);
        ignore(() => unlinkSync(o.tmp));
        return;
      }
    }
    ignore(() => unlinkSync(o.tmp));
    placed.push(o);
  });
  faultPoint('journal-mid-materialize');
  const dirs = [...new Set(placed.map((o) => o.p.dest.slice(0, o.p.dest.lastIndexOf('/'))))];
  const dirSynced = await Promise.allSettled(dirs.map(async (d) => {
    const fd = openSync(d, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      await fsyncFd(fd);
    } finally {
      closeSync(fd);
    }
  }));
  dirs.forEach((d, i) => {
    const r = dirSynced[i]!;
    if (r.status === 'fulfilled') return;
    // the names may not survive a power cut: tried again (the link then finds the name)
    for (const o of placed) if (o.p.dest.startsWith(d + '/')) failed.set(o.p, r.reason);
  });
  return failed;
}

/**
 * writeJobFiles on the event loop, each call synchronous: for storage whose fsyncs
 * return at once (the write-out's hand-overs to the pool and back then cost more than
 * the calls: LmtpJournal.writeFiles times it).
 */
function writeJobFilesSync<P extends { dest: string; pieces: readonly Uint8Array[]; tmpDir: string }>(batch: readonly P[], budgetMs: number): { failed: Map<P, unknown>; done: number } {
  const failed = new Map<P, unknown>();
  const placed: P[] = [];
  const t0 = performance.now();
  let done = 0;
  for (const p of batch) {
    // (storage slower than it was: the rest of the batch goes through the pool)
    if (done > 0 && performance.now() - t0 > budgetMs) break;
    done++;
    const tmp = `${p.tmpDir}/${tmpName('job')}`;
    let fd: number | undefined;
    try {
      fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, FILE_MODE);
      fchmodSync(fd, FILE_MODE);
      writevAll(fd, p.pieces, 0);
      fsyncSync(fd);
      closeSync(fd);
      fd = undefined;
      try {
        linkSync(tmp, p.dest);
      } catch (err) {
        // EEXIST: an earlier try linked it (its directory fsync failed): it is the same job
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      placed.push(p);
    } catch (err) {
      failed.set(p, err);
    } finally {
      if (fd !== undefined) ignore(() => closeSync(fd!));
      ignore(() => unlinkSync(tmp));
    }
  }
  faultPoint('journal-mid-materialize');
  const dirs = [...new Set(placed.map((p) => p.dest.slice(0, p.dest.lastIndexOf('/'))))];
  for (const d of dirs) {
    try {
      const fd = openSync(d, constants.O_RDONLY | constants.O_DIRECTORY);
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      // the names may not survive a power cut: tried again (the link then finds the name)
      for (const p of placed) if (p.dest.startsWith(d + '/')) failed.set(p, err);
    }
  }
  return { failed, done };
}

interface Pending {
  pieces: Uint8Array[];
  size: number;
  dest: string;
  rel: Buffer;
  tmpDir: string;
  resolve: (r: CommitResult) => void;
  reject: (err: unknown) => void;
  queuedAt: number;
  /** when its journal flush returned */
  answeredAt?: number;
}

export interface JournalStats {
  /** jobs through the journal, flushes, largest batch */
  batches: number;
  files: number;
  largest: number;
  /** summed over jobs, ms: commit() to answer; of it, queued until the batch's append; the flush */
  waitMs: number;
  queueMs: number;
  fsyncMs: number;
  /** jobs written into out/PEER from the journal, and the summed ms from answer to durable there */
  materialized: number;
  lagMs: number;
  /** resets of the journal; jobs committed without it (journal full, or its writes into out/ failing) */
  resets: number;
  direct: number;
}

/**
 * The journal committer of one lmtpd process: stage() like GroupCommit's (the same
 * StagedFile), for jobs written into `out/PEER/ID`.
 */
export class LmtpJournal {
  readonly stats: JournalStats = { batches: 0, files: 0, largest: 0, waitMs: 0, queueMs: 0, fsyncMs: 0, materialized: 0, lagMs: 0, resets: 0, direct: 0 };
  private readonly queue: Pending[] = [];
  private running = false;
  private pos = HEADER_SIZE;
  /** jobs appended since the last reset and not yet durable in out/, and their bytes (held in memory) */
  private unwritten = 0;
  private held = 0;
  private readonly mq: Pending[] = [];
  private materializing = false;
  private failing = false;
  /**
   * A flush of this generation failed (an append's or a reset's): the bytes it was to
   * make durable may not be on disk, or the header may already name the next generation.
   * Nothing more is appended until a reset (header written again) has been flushed: a
   * record answered behind such a gap would never be replayed. Meanwhile jobs go straight
   * into out/ (review8c).
   */
  private broken = false;
  private retryMs = RETRY_MS;
  private lastAppend = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private caughtUp: (() => void)[] = [];
  private closed = false;
  /**
   * close() has let go of the journal (its grace is over): nothing more is written or
   * flushed through `fd`, whatever is still running (a batch waiting for the write-out,
   * a commit queued meanwhile: it gets an error, so a 451). Once the descriptor is closed
   * its number may belong to another file of this process.
   */
  private stopped = false;
  /** the journal's flushes and the write-out's batches: on the event loop or through the pool */
  readonly flushGate = new SyncGate(SYNC_FLUSH_MAX_MS);
  readonly writeGate = new SyncGate(SYNC_WRITE_MAX_MS);
  /** the flush (fdatasync) of `fd` in progress, if any: close() lets it end before closing the descriptor */
  private flushing: Promise<void> | undefined;

  private constructor(
    private readonly spool: Spool,
    private readonly fd: number,
    private gen: number,
    /** the CRC seed of this journal's records (its key's CRC) */
    private readonly seed: number,
    private readonly lock: Lock,
    private readonly fallback: GroupCommit,
    private readonly log: (line: string) => void,
    private readonly maxBatch: number,
    /** tests: the jobs are never written into out/ (a crash "after the 250, before materialization") */
    private hold: boolean,
  ) {}

  /**
   * Take a journal for this process: the first no running lmtpd holds (replayed first:
   * lmtpd's start has replayed them all already, replayJournals, so this finds nothing
   * unless a sibling died meanwhile), or a new one. Returns it with the number of jobs
   * its replay wrote.
   */
  static async open(spool: Spool, opts: { fallback: GroupCommit; log?: (line: string) => void; maxBatch?: number; hold?: boolean }): Promise<{ journal?: LmtpJournal; replayed: number; unavailable?: string }> {
    await spool.ensureDir(JOURNAL_DIR);
    let replayed = 0;
    let mine: { name: string; lock: Lock } | undefined;
    for (const name of journalNames(spool)) {
      const lock = await tryLock(spool, name);
      if (!lock) continue;
      const path = spool.path(JOURNAL_DIR, name);
      let short: boolean;
      try {
        replayed += await replayFile(spool, path, opts.log ?? (() => undefined));
        short = lstatSync(path).size < JOURNAL_SIZE;
        // replayed: a journal of another size (an earlier mailbag's) is made again
        if (short) {
          unlinkSync(path);
          fsyncDirSync(spool.path(JOURNAL_DIR));
        }
      } catch (err) {
        await lock.release();
        throw spoolErrorFrom(err, `replaying the LMTP journal ${path}`);
      }
      if (short) await lock.release();
      else {
        mine = { name, lock };
        break;
      }
    }
    for (let n = 1; !mine; n++) {
      const name = String(n);
      const path = spool.path(JOURNAL_DIR, name);
      if (exists(path)) continue;
      const lock = await tryLock(spool, name);
      if (!lock) continue;
      try {
        if (!exists(path)) await makeJournal(spool, path);
        else replayed += await replayFile(spool, path, opts.log ?? (() => undefined));
      } catch (err) {
        await lock.release();
        // no room for a new journal (or no way to make one): lmtpd commits every job
        // with its own fsyncs, as without a journal; nothing was in it to lose
        if (!exists(path)) return { replayed, unavailable: spoolErrorFrom(err, `making the LMTP journal ${path}`).message };
        throw err;
      }
      mine = { name, lock };
    }
    const path = spool.path(JOURNAL_DIR, mine.name);
    let fd: number | undefined;
    try {
      fd = openSync(path, constants.O_RDWR);
      const head = Buffer.alloc(HEAD_LEN);
      readFully(fd, head, 0);
      if (fstatSync(fd).size < JOURNAL_SIZE) throw new MailbagError('spool', `the LMTP journal ${path} is shorter than ${JOURNAL_SIZE} bytes`);
      // replayed (or new): its records are retired; this process starts a new generation,
      // its records keyed (the key, made now if the file has none, is flushed by retire's
      // first flush, before any record uses it)
      const seed = ensureKey(fd);
      const gen = await retire(fd, (parseHeader(head) ?? 0) + 1, () => flushFd(fd!));
      const journal = new LmtpJournal(spool, fd, gen, seed, mine.lock, opts.fallback, opts.log ?? (() => undefined), Math.max(1, opts.maxBatch ?? 256), HOLD || Boolean(opts.hold));
      return { journal, replayed };
    } catch (err) {
      if (fd !== undefined) ignore(() => closeSync(fd!));
      await mine.lock.release();
      throw spoolErrorFrom(err, `opening the LMTP journal ${path}`);
    }
  }

  /** The job for `dest` (`out/PEER/ID` in this spool): in memory up to JOURNAL_MAX_JOB, then staged in tmp/ by the fallback. */
  stage(dest: string, opts: CommitOptions): StagedFile {
    const max = opts.maxSize ?? Number.POSITIVE_INFINITY;
    let pieces: Uint8Array[] = [];
    let size = 0;
    let spilled: StagedFile | undefined;
    let state: 'open' | 'queued' | 'gone' = 'open';
    const rel = Buffer.from(this.relative(dest));
    return {
      get size() {
        return spilled ? spilled.size : size;
      },
      write: (chunk) => {
        if (spilled) return spilled.write(chunk);
        if (state !== 'open') throw new MailbagError('internal', `write after ${state === 'queued' ? 'commit' : 'abort'} of ${dest}`);
        if (chunk.byteLength === 0) return;
        if (size + chunk.byteLength > max) {
          state = 'gone';
          pieces = [];
          throw new InputError('too-big', `more than ${max} bytes`);
        }
        if (size + chunk.byteLength > JOURNAL_MAX_JOB) {
          // too big for the journal: staged in tmp/ from here on, committed as before
          const held = pieces;
          pieces = [];
          spilled = this.fallback.stageSync(dest, opts);
          for (const p of held) spilled.write(p);
          spilled.write(chunk);
          return;
        }
        size += chunk.byteLength;
        pieces.push(chunk);
      },
      commit: () => {
        if (spilled) return spilled.commit();
        if (state !== 'open') return Promise.reject(new MailbagError('internal', `commit after ${state === 'queued' ? 'commit' : 'abort'} of ${dest}`));
        if (this.closed) return Promise.reject(new MailbagError('internal', `commit after the journal was closed: ${dest}`));
        state = 'queued';
        const held = pieces;
        pieces = [];
        return new Promise<CommitResult>((resolve, reject) => {
          this.queue.push({ pieces: held, size, dest, rel, tmpDir: opts.tmpDir, resolve, reject, queuedAt: performance.now() });
          // a running committer takes it with its next batch
          if (!this.running) void this.run();
        });
      },
      abort: () => {
        if (spilled) return spilled.abort();
        if (state === 'open') {
          state = 'gone';
          pieces = [];
        }
      },
    };
  }

  private relative(dest: string): string {
    const root = this.spool.path('out') + '/';
    if (!dest.startsWith(root)) throw new MailbagError('internal', `the LMTP journal takes jobs for out/ only, not ${dest}`);
    return `out/${dest.slice(root.length)}`;
  }

  /** The committer: batches appended with one flush each, answered, handed to the materializer. */
  private async run(): Promise<void> {
    this.running = true;
    try {
      // transactions whose data ended in this turn of the event loop join the first batch
      await new Promise<void>((r) => setImmediate(r));
      for (;;) {
        if (this.resetDue()) await this.reset();
        if (this.queue.length === 0) break;
        if (this.broken) {
          if (this.unwritten === 0) await this.reset();
          if (this.broken) await this.direct(this.queue.splice(0, this.maxBatch));
          continue;
        }
        if (this.failing || this.pos + this.need(this.queue[0]!) > JOURNAL_SIZE) {
          if (!this.failing && this.unwritten > 0) {
            // full: wait for the jobs in it to be written out (then reset), or for the writes to fail
            await new Promise<void>((r) => this.caughtUp.push(r));
            continue;
          }
          if (this.failing) {
            // out/ cannot be written (a full disk?): no 250 for anything that is not durable there
            await this.direct(this.queue.splice(0, this.maxBatch));
            continue;
          }
          await this.reset();
          continue;
        }
        if (this.held > JOURNAL_MAX_HELD && !this.failing) {
          // answered jobs not yet in out/ are held in memory: at most JOURNAL_MAX_HELD bytes of them
          await new Promise<void>((r) => this.caughtUp.push(r));
          continue;
        }
        // one batch on its way to disk at a time (two flushes of one file at once were no
        // faster: docs/lmtp.md); the next gathers meanwhile
        let bytes = 0;
        let n = 0;
        // (and no more answered jobs held in memory than JOURNAL_MAX_HELD, but always one)
        while (n < this.queue.length && n < this.maxBatch && this.pos + bytes + this.need(this.queue[n]!) <= JOURNAL_SIZE && (n === 0 || this.held + bytes + this.need(this.queue[n]!) <= JOURNAL_MAX_HELD)) bytes += this.need(this.queue[n++]!);
        await this.append(this.queue.splice(0, n), bytes);
        if (this.queue.length === 0) {
          // the transactions that end while the answers go out come along in the next batch
          await new Promise<void>((r) => setImmediate(r));
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** fdatasync the journal, known to close() while it runs */
  private async flush(): Promise<void> {
    if (this.stopped) throw new MailbagError('spool', 'the LMTP journal was closed (lmtpd stopping)');
    if (this.flushGate.onLoop()) {
      const t0 = performance.now();
      fdatasyncSync(this.fd);
      this.flushGate.took(performance.now() - t0);
      return;
    }
    const f = flushFd(this.fd);
    this.flushing = f;
    try {
      await f;
    } finally {
      if (this.flushing === f) this.flushing = undefined;
    }
  }

  private need(p: Pending): number {
    return REC_HEAD + p.rel.length + p.size;
  }

  /** Write a batch's records, flush, answer; never rejects. */
  private async append(batch: Pending[], bytes: number): Promise<void> {
    this.stats.batches++;
    this.stats.files += batch.length;
    this.stats.largest = Math.max(this.stats.largest, batch.length);
    const issued = performance.now();
    for (const p of batch) this.stats.queueMs += issued - p.queuedAt;
    let failed: unknown;
    try {
      const bufs: Uint8Array[] = [];
      for (const p of batch) bufs.push(recordHead(this.gen, this.seed, p.rel, p.pieces, p.size), p.rel, ...p.pieces);
      // the generation's first records: the header says records may be in it (MAGIC_OPEN),
      // made durable by the same flush as they are (none answered before it)
      if (this.pos === HEADER_SIZE && !this.stopped) writeSync(this.fd, header(this.gen, true), 0, HEAD_LEN, 0);
      if (MID_APPEND) {
        // the crash this point stands for: part of the batch's records reached the file
        writevAll(this.fd, bufs.slice(0, Math.max(1, bufs.length >> 1)), this.pos);
        faultPoint('journal-mid-append');
      }
      if (this.stopped) throw new MailbagError('spool', 'the LMTP journal was closed (lmtpd stopping)');
      writevAll(this.fd, bufs, this.pos);
      this.pos += bytes;
      await this.flush();
    } catch (err) {
      failed = err;
      // no record goes behind this batch's until a reset: see `broken`
      this.broken = true;
    }
    const done = performance.now();
    this.stats.fsyncMs += (done - issued) * batch.length;
    if (failed !== undefined) {
      // not flushed: nothing was promised. Its records may be on disk all the same: a
      // crash before the next reset writes them into out/, and the LMTP ledger (L2)
      // then knows them when the MTA retries (docs/spool.md, L7)
      this.log(`lmtpd: the LMTP journal could not be written: ${spoolErrorFrom(failed, 'appending').message}`);
      for (const p of batch) {
        this.stats.waitMs += done - p.queuedAt;
        p.reject(spoolErrorFrom(failed, `writing ${p.dest} to the LMTP journal`));
      }
      return;
    }
    faultPoint('journal-after-flush');
    this.lastAppend = done;
    this.unwritten += batch.length;
    for (const p of batch) {
      this.held += p.size;
      this.stats.waitMs += done - p.queuedAt;
      p.answeredAt = done;
      p.resolve({ path: p.dest, size: p.size });
    }
    this.mq.push(...batch);
    // after the answers have gone out
    if (!this.materializing && !this.hold) setImmediate(() => void this.materialize());
  }

  /** Jobs committed without the journal (it is full and its jobs cannot be written out): straight into out/. */
  private async direct(batch: Pending[]): Promise<void> {
    this.stats.direct += batch.length;
    const failed = await this.writeFiles(batch);
    for (const p of batch) {
      const err = failed.get(p);
      if (err === undefined) p.resolve({ path: p.dest, size: p.size });
      else p.reject(spoolErrorFrom(err, `writing ${p.dest}`));
    }
  }

  private resetDue(): boolean {
    if (this.unwritten > 0 || this.pos === HEADER_SIZE) return false;
    return this.pos >= RESET_FILL || this.closed || performance.now() - this.lastAppend >= RESET_IDLE_MS;
  }

  /** Every job appended is durable in out/: retire the records with a new generation. */
  private async reset(): Promise<void> {
    faultPoint('journal-before-reset');
    // closed: the journal stays as it is, for the next start's replay
    if (this.stopped) return;
    let gen = this.gen + 1;
    try {
      gen = await retire(this.fd, gen, () => this.flush());
    } catch (err) {
      // the old generation stays: a crash now replays jobs already in out/ (skipped) or
      // sent (the peer's ledger knows their ids); the next reset tries again
      this.log(`lmtpd: the LMTP journal could not be reset: ${spoolErrorFrom(err, 'resetting').message}`);
      // the file's header may name the new generation already: no record of the old one
      // is appended behind it (see `broken`); the next reset writes the header again
      this.broken = true;
      return;
    }
    this.broken = false;
    this.gen = gen;
    this.pos = HEADER_SIZE;
    this.stats.resets++;
  }

  /** Write the journal's jobs into out/PEER (tmp, fsync, link, directory fsync), in batches. */
  private async materialize(): Promise<void> {
    if (this.materializing) return;
    this.materializing = true;
    try {
      while (this.mq.length > 0) {
        const batch = this.mq.splice(0, this.maxBatch);
        const failed = await this.writeFiles(batch);
        const now = performance.now();
        let ok = 0;
        for (const p of batch) {
          if (failed.has(p)) continue;
          ok++;
          this.stats.lagMs += now - (p.answeredAt ?? now);
          this.held -= p.size;
          p.pieces = [];
        }
        this.stats.materialized += ok;
        this.unwritten -= ok;
        if (failed.size > 0) {
          const first = failed.values().next().value as unknown;
          if (!this.failing) this.log(`lmtpd: jobs in the LMTP journal could not be written into out/ (tried again in ${this.retryMs} ms; new mail is answered only once in out/ meanwhile): ${spoolErrorFrom(first, 'writing').message}`);
          this.failing = true;
          this.mq.unshift(...batch.filter((p) => failed.has(p)));
          this.wakeCaughtUp();
          await new Promise<void>((r) => setTimeout(r, this.retryMs).unref());
          this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
          continue;
        }
        if (this.failing) this.log('lmtpd: the LMTP journal\'s jobs are written into out/ again');
        this.failing = false;
        this.retryMs = RETRY_MS;
        this.wakeCaughtUp();
      }
    } finally {
      this.materializing = false;
    }
    this.wakeCaughtUp();
    // a reset once idle, so that a crash later replays nothing already sent
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (!this.running && this.resetDue()) void this.run();
    }, RESET_IDLE_MS + 5);
    this.idleTimer.unref();
    if (this.queue.length > 0 && !this.running) void this.run();
  }

  private wakeCaughtUp(): void {
    const w = this.caughtUp;
    this.caughtUp = [];
    for (const r of w) r();
  }

  /**
   * The write-out of a batch: on the event loop while that takes at most
   * SYNC_WRITE_MAX_MS per job (the pool's hand-overs, two per job and one per batch,
   * then cost more than the calls), otherwise through the pool (SyncGate).
   */
  private async writeFiles(batch: Pending[]): Promise<Map<Pending, unknown>> {
    if (!this.writeGate.onLoop()) return writeJobFiles(batch);
    const t0 = performance.now();
    const { failed, done } = writeJobFilesSync(batch, SYNC_WRITE_BUDGET_MS);
    this.writeGate.took((performance.now() - t0) / done);
    if (done < batch.length) for (const [p, err] of await writeJobFiles(batch.slice(done))) failed.set(p, err);
    return failed;
  }

  /** tests: let go of the journal as a crash would (no reset, no waiting): what it holds is left for a replay */
  async abandon(): Promise<void> {
    this.closed = true;
    this.hold = true;
    clearTimeout(this.idleTimer);
    await this.letGo();
  }

  /**
   * Stop: wait (bounded) until every job committed is durable in out/ and reset the
   * journal, then let go of it. Jobs still only in the journal after `graceMs` stay
   * there for the next start's replay.
   */
  async close(graceMs = 30_000): Promise<void> {
    this.closed = true;
    const deadline = Date.now() + graceMs;
    while ((this.running || this.materializing || this.mq.length > 0 || this.queue.length > 0) && Date.now() < deadline) {
      await new Promise<void>((r) => setTimeout(r, 10));
    }
    if (!this.running && this.resetDue()) await this.reset();
    clearTimeout(this.idleTimer);
    await this.letGo();
  }

  /**
   * No write or flush through the descriptor from here on; one in progress ends first
   * (bounded: a flush that does not return leaves the descriptor open until the process
   * exits, so its number is never another file's while the journal could use it).
   */
  private async letGo(): Promise<void> {
    this.stopped = true;
    const f = this.flushing;
    const ended = f === undefined || await Promise.race([
      f.then(() => true, () => true),
      new Promise<false>((r) => setTimeout(() => r(false), LET_GO_MS).unref()),
    ]);
    if (ended) ignore(() => closeSync(this.fd));
    else this.log('lmtpd: the LMTP journal\'s flush has not returned: its descriptor stays open until the process ends');
    await this.lock.release();
  }
}
