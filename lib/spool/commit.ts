// THE commit function, used for every file that enters the spool: create a tmp file
// (name carries our pid) with O_EXCL, write, fsync, rename (or link, when an existing
// file must never be replaced) into place, fsync the directory. A reader therefore
// sees either no file or the whole file, and once commitFile returns the file survives
// a crash or power cut. On any failure the tmp file is removed before the error leaves.

import { closeSync, constants, fchmodSync, fsync, fsyncSync, linkSync, open as openCb, openSync, renameSync, unlinkSync, writeSync, writevSync, type Stats } from 'node:fs';
import { chmod, link, lstat, mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { InputError, MailbagError, SpoolError } from '../errors.js';
import { faultPoint } from './fault.js';

export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

export type Content = Uint8Array | AsyncIterable<Uint8Array>;

export interface CommitOptions {
  /** the directory for the tmp file: the spool's tmp/, on the same file system as dest */
  tmpDir: string;
  /** refuse (SpoolError with cause EEXIST) instead of replacing an existing dest */
  noReplace?: boolean;
  /** more bytes than this: nothing is left behind and InputError 'too-big' is thrown */
  maxSize?: number;
  /** a word in the tmp name that says what is being written (`job`, `bag`, …) */
  label?: string;
}

export interface CommitResult {
  path: string;
  size: number;
}

let tmpSeq = 0;

/** A fresh tmp file name for this process: `<pid>.<seq>.<random>.<label>`. */
export function tmpName(label = 'tmp'): string {
  tmpSeq++;
  const rnd = Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0');
  return `${process.pid}.${tmpSeq.toString(36)}.${rnd}.${label.replace(/[^a-z0-9-]/g, '') || 'tmp'}`;
}

/** Marks an error that came from the content source (stdin, a socket), not from the disk. */
class SourceError extends Error {
  constructor(readonly original: unknown) {
    super('source failed');
  }
}

const TEMPORARY_FS = new Set(['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'EIO', 'EMFILE', 'ENFILE', 'ENOENT', 'ENOTDIR', 'EEXIST', 'EXDEV', 'EBUSY']);

/**
 * A SpoolError for a failed file-system call: full disk (ENOSPC, EDQUOT) is 'spool-full'
 * (4.3.1), anything else 'spool' (4.3.0); both are temporary (exit 75).
 */
export function spoolErrorFrom(err: unknown, doing: string): MailbagError {
  if (err instanceof MailbagError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = e?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new SpoolError(`spool full: ${doing}: ${e.message}`, { cause: err });
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new SpoolError(`spool not writable: ${doing}: ${e.message}`, { cause: err });
  }
  if (code && TEMPORARY_FS.has(code)) return new SpoolError(`spool: ${doing}: ${e.message}`, { cause: err });
  return new SpoolError(`spool: ${doing}: ${e instanceof Error ? e.message : String(err)}`, { cause: err });
}

/** fsync a directory, so the names created, renamed or removed in it survive a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Make a directory (mode 0700 whatever the umask) if it is missing, and fsync its
 * parent when it was made, so a file committed into it later cannot vanish with it.
 * Returns true when it made the directory.
 */
export async function ensureDir(dir: string): Promise<boolean> {
  try {
    await mkdir(dir, { mode: DIR_MODE });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      const st = await lstat(dir);
      if (!st.isDirectory()) throw new SpoolError(`spool: ${dir} exists and is not a directory`);
      return false;
    }
    throw err;
  }
  await chmod(dir, DIR_MODE);
  await fsyncDir(dirname(dir));
  return true;
}

async function writeAll(fh: FileHandle, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.byteLength) {
    const { bytesWritten } = await fh.write(data, off, data.byteLength - off);
    off += bytesWritten;
  }
}

/**
 * Write `content` to `dest` crash-safely (see the module comment). Throws SpoolError
 * (temporary) for file-system failures, InputError 'too-big' past maxSize, and the
 * source's own error (wrapped as MailbagError 'input' unless it is one) when reading
 * the content fails. Never leaves the tmp file behind; never leaves a partial dest.
 */
export async function commitFile(dest: string, content: Content, opts: CommitOptions): Promise<CommitResult> {
  const tmp = join(opts.tmpDir, tmpName(opts.label));
  const max = opts.maxSize ?? Number.POSITIVE_INFINITY;
  let fh: FileHandle | undefined;
  let size = 0;
  let placed = false;
  try {
    fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, FILE_MODE);
    // the umask may have taken bits away; 0600 exactly, whatever it was
    await fh.chmod(FILE_MODE);
    if (content instanceof Uint8Array) {
      if (content.byteLength > max) throw new InputError('too-big', `more than ${max} bytes`);
      await writeAll(fh, content);
      size = content.byteLength;
    } else {
      const it = content[Symbol.asyncIterator]();
      for (;;) {
        let next: IteratorResult<Uint8Array>;
        try {
          next = await it.next();
        } catch (err) {
          throw new SourceError(err);
        }
        if (next.done) break;
        const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
        size += chunk.byteLength;
        if (size > max) {
          await it.return?.();
          throw new InputError('too-big', `more than ${max} bytes`);
        }
        await writeAll(fh, chunk);
        if (size === chunk.byteLength) faultPoint('mid-write');
      }
    }
    faultPoint('after-write');
    // the data must be on disk before the name is: otherwise a crash after the rename
    // could leave a whole-looking name over missing data
    await fh.sync();
    faultPoint('after-fsync');
    await fh.close();
    fh = undefined;
    if (opts.noReplace) {
      // link fails with EEXIST instead of replacing; the tmp name goes right after
      await link(tmp, dest);
      placed = true;
      faultPoint('after-rename');
      await unlink(tmp).catch(() => undefined);
    } else {
      await rename(tmp, dest);
      placed = true;
      faultPoint('after-rename');
    }
    // the rename is durable only once the directory holding the new name is
    await fsyncDir(dirname(dest));
    faultPoint('after-dir-fsync');
    return { path: dest, size };
  } catch (err) {
    if (fh) await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    // placed but not made durable (the directory fsync failed): take the name back, so
    // a failure reported to the caller never leaves a job that might survive anyway
    if (placed) await unlink(dest).catch(() => undefined);
    throw commitError(err, dest, opts, placed);
  }
}

/** The error a failed commit reports (the tmp file, and dest if placed, are gone by then). */
function commitError(err: unknown, dest: string, opts: CommitOptions, placed: boolean): unknown {
  if (err instanceof SourceError) {
    const o = err.original;
    if (o instanceof MailbagError) return o;
    return new MailbagError('input', `reading the input failed: ${o instanceof Error ? o.message : String(o)}`, { cause: o });
  }
  if (err instanceof MailbagError) return err;
  if ((err as NodeJS.ErrnoException).code === 'EEXIST' && opts.noReplace && !placed) {
    return new SpoolError(`spool: ${basename(dest)} already exists in ${dirname(dest)}`, { cause: err });
  }
  return spoolErrorFrom(err, `writing ${dest}`);
}

/** fsyncDir with synchronous calls. */
export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function ignoreErrors(f: () => void): void {
  try {
    f();
  } catch {
    // best effort: the error being reported is the one that matters
  }
}

/**
 * commitFile with synchronous calls, for content pulled synchronously (a front door's
 * stdin read with readSync): the same steps in the same order, the same fault points,
 * the same errors. For one small message per process it is cheaper than commitFile,
 * whose every step is a round trip through libuv's thread pool. Memory stays bounded:
 * each chunk is written before the next is pulled.
 */
export function commitFileSync(dest: string, content: Uint8Array | Iterable<Uint8Array>, opts: CommitOptions): CommitResult {
  const tmp = join(opts.tmpDir, tmpName(opts.label));
  const max = opts.maxSize ?? Number.POSITIVE_INFINITY;
  let fd: number | undefined;
  let size = 0;
  let placed = false;
  const writeAllSync = (out: number, data: Uint8Array): void => {
    let off = 0;
    while (off < data.byteLength) off += writeSync(out, data, off, data.byteLength - off);
  };
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, FILE_MODE);
    // the umask may have taken bits away; 0600 exactly, whatever it was
    fchmodSync(fd, FILE_MODE);
    if (content instanceof Uint8Array) {
      if (content.byteLength > max) throw new InputError('too-big', `more than ${max} bytes`);
      writeAllSync(fd, content);
      size = content.byteLength;
    } else {
      const it = content[Symbol.iterator]();
      for (;;) {
        let next: IteratorResult<Uint8Array>;
        try {
          next = it.next();
        } catch (err) {
          throw new SourceError(err);
        }
        if (next.done) break;
        const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
        size += chunk.byteLength;
        if (size > max) {
          it.return?.();
          throw new InputError('too-big', `more than ${max} bytes`);
        }
        writeAllSync(fd, chunk);
        if (size === chunk.byteLength) faultPoint('mid-write');
      }
    }
    faultPoint('after-write');
    fsyncSync(fd);
    faultPoint('after-fsync');
    closeSync(fd);
    fd = undefined;
    if (opts.noReplace) {
      linkSync(tmp, dest);
      placed = true;
      faultPoint('after-rename');
      ignoreErrors(() => unlinkSync(tmp));
    } else {
      renameSync(tmp, dest);
      placed = true;
      faultPoint('after-rename');
    }
    fsyncDirSync(dirname(dest));
    faultPoint('after-dir-fsync');
    return { path: dest, size };
  } catch (err) {
    const open = fd;
    if (open !== undefined) ignoreErrors(() => closeSync(open));
    ignoreErrors(() => unlinkSync(tmp));
    if (placed) ignoreErrors(() => unlinkSync(dest));
    throw commitError(err, dest, opts, placed);
  }
}

/** lstat that answers undefined for a missing path. */
export async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

// ---------------------------------------------------------------------------------
// Group commit, for a long-running writer with many files in flight at once (the LMTP
// listener): the same crash story as commitFile (tmp, fsync, link or rename into place,
// directory fsync, and only then "durable"), but the files that finished writing while
// the previous batch was on its way to disk are committed together: their fsyncs are
// issued at once (ext4 folds concurrent fsyncs into one journal commit), each directory
// that got a new name is fsynced once for the whole batch, and then every caller learns
// its file is durable. A file waits at most for the batch in progress and its own.
// Writing and linking are synchronous calls (page cache and metadata, no disk wait:
// cheaper than a thread-pool round trip each); the fsyncs, and the creation of the tmp
// file (which can wait for a journal commit in progress), go to the thread pool.

/** the size a staged file's writes are gathered to before one write(2) */
const STAGE_BUFFER = 64 * 1024;

/** One file being written for a GroupCommit: write, then commit (durable) or abort. */
export interface StagedFile {
  /** bytes written so far */
  readonly size: number;
  /** append bytes (gathered, then written synchronously); throws SpoolError or InputError 'too-big' */
  write(chunk: Uint8Array): void;
  /** resolves once the file is durable under its name, like commitFile */
  commit(): Promise<CommitResult>;
  /** drop the file (the tmp name goes); safe to call at any time, also after a failure */
  abort(): void;
}

export interface GroupCommitOptions {
  /** most files in one batch (default 256); more wait for the next batch */
  maxBatch?: number;
}

interface Pending {
  fd: number;
  tmp: string;
  dest: string;
  noReplace: boolean;
  size: number;
  resolve: (r: CommitResult) => void;
  reject: (err: unknown) => void;
  /** when commit() was called (performance.now()), for stats.waitMs */
  queuedAt: number;
  placed?: boolean;
  failed?: unknown;
}

function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
}

/** fsync a directory: open and close are synchronous, the fsync waits in the pool */
async function fsyncDirFd(dir: string): Promise<void> {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}

export class GroupCommit {
  private readonly queue: Pending[] = [];
  private running = false;
  /** set while the committer waits for work with a batch still being answered */
  private wake: (() => void) | undefined;
  private readonly maxBatch: number;
  /**
   * batches committed, files in them, and the time files waited from commit() to their
   * answer (waitMs, summed over files), split into: queued until their batch's fsyncs were
   * issued (queueMs), those fsyncs (fsyncMs); the rest is placing, the directory fsync and
   * waiting for the batch before to be answered
   */
  readonly stats = { batches: 0, files: 0, largest: 0, waitMs: 0, queueMs: 0, fsyncMs: 0 };

  constructor(opts: GroupCommitOptions = {}) {
    this.maxBatch = Math.max(1, opts.maxBatch ?? 256);
  }

  /**
   * Create the tmp file for `dest` (O_EXCL, 0600 whatever the umask). The caller writes
   * into it and commits; until the commit resolves nothing is promised.
   */
  async stage(dest: string, opts: CommitOptions): Promise<StagedFile> {
    const tmp = join(opts.tmpDir, tmpName(opts.label));
    let fd: number | undefined;
    try {
      // in the thread pool: creating a file can wait for the journal commit of a batch,
      // which must not stop the event loop (the other connections)
      fd = await new Promise<number>((resolve, reject) =>
        openCb(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, FILE_MODE, (err, f) => (err ? reject(err) : resolve(f))),
      );
      // the umask may have taken bits away; 0600 exactly, whatever it was
      fchmodSync(fd, FILE_MODE);
    } catch (err) {
      if (fd !== undefined) ignoreErrors(() => closeSync(fd!));
      ignoreErrors(() => unlinkSync(tmp));
      throw spoolErrorFrom(err, `writing ${dest}`);
    }
    return this.staged(dest, opts, tmp, fd);
  }

  /**
   * stage() with the tmp file created by a synchronous call on the caller's thread (for
   * a caller that cannot wait: lmtpd's journal, when a message outgrows it mid-stream).
   */
  stageSync(dest: string, opts: CommitOptions): StagedFile {
    const tmp = join(opts.tmpDir, tmpName(opts.label));
    let fd: number | undefined;
    try {
      fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, FILE_MODE);
      fchmodSync(fd, FILE_MODE);
    } catch (err) {
      if (fd !== undefined) ignoreErrors(() => closeSync(fd!));
      ignoreErrors(() => unlinkSync(tmp));
      throw spoolErrorFrom(err, `writing ${dest}`);
    }
    return this.staged(dest, opts, tmp, fd);
  }

  private staged(dest: string, opts: CommitOptions, tmp: string, out: number): StagedFile {
    const max = opts.maxSize ?? Number.POSITIVE_INFINITY;
    let size = 0;
    let gathered: Uint8Array[] = [];
    let gatheredBytes = 0;
    // open: being written; queued: handed to the committer; gone: aborted or failed
    let state: 'open' | 'queued' | 'gone' = 'open';
    const drop = (): void => {
      state = 'gone';
      gathered = [];
      ignoreErrors(() => closeSync(out));
      ignoreErrors(() => unlinkSync(tmp));
    };
    const flush = (): void => {
      if (gatheredBytes === 0) return;
      const pieces = gathered;
      const total = gatheredBytes;
      gathered = [];
      gatheredBytes = 0;
      // one writev(2) of the pieces as they are (no copy into one buffer); a short
      // write (rare on a regular file) finishes with plain writes
      let off = pieces.length === 1 ? 0 : writevSync(out, pieces);
      if (off >= total) return;
      const data = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, total);
      while (off < data.byteLength) off += writeSync(out, data, off, data.byteLength - off);
    };
    const fail = (err: unknown): never => {
      drop();
      throw err instanceof MailbagError ? err : spoolErrorFrom(err, `writing ${dest}`);
    };
    return {
      get size() {
        return size;
      },
      write: (chunk) => {
        if (state !== 'open') throw new MailbagError('internal', `write after ${state === 'queued' ? 'commit' : 'abort'} of ${dest}`);
        if (chunk.byteLength === 0) return;
        size += chunk.byteLength;
        if (size > max) fail(new InputError('too-big', `more than ${max} bytes`));
        gathered.push(chunk);
        gatheredBytes += chunk.byteLength;
        if (gatheredBytes >= STAGE_BUFFER) {
          try {
            flush();
          } catch (err) {
            fail(err);
          }
        }
      },
      commit: () => {
        if (state !== 'open') return Promise.reject(new MailbagError('internal', `commit after ${state === 'queued' ? 'commit' : 'abort'} of ${dest}`));
        try {
          flush();
        } catch (err) {
          try {
            fail(err);
          } catch (e) {
            return Promise.reject(e);
          }
        }
        faultPoint('after-write');
        state = 'queued';
        return new Promise<CommitResult>((resolve, reject) => {
          this.queue.push({ fd: out, tmp, dest, noReplace: Boolean(opts.noReplace), size, resolve, reject, queuedAt: performance.now() });
          if (!this.running) void this.run();
          else this.wake?.();
        });
      },
      abort: () => {
        // once queued, the committer owns the file and reports its fate
        if (state === 'open') drop();
      },
    };
  }

  private async run(): Promise<void> {
    this.running = true;
    // the batch whose names are being placed and made durable, while the next batch's
    // files are fsynced: the next batch's fsyncs and this one's directory fsync then
    // share a journal commit, so a batch costs one commit, not two, once the queue is busy
    let answering: Promise<void> | undefined;
    try {
      // transactions whose data ended in this turn of the event loop join the first batch
      await new Promise<void>((r) => setImmediate(r));
      for (;;) {
        if (this.queue.length === 0) {
          if (!answering) break;
          // wait for the batch being answered to finish, or for new files to arrive
          const current = answering;
          const finished = current.then(() => {
            if (answering === current) answering = undefined;
          });
          const arrived = new Promise<void>((r) => (this.wake = r));
          await Promise.race([finished, arrived]);
          this.wake = undefined;
          // the others that end in this turn of the event loop come along
          if (this.queue.length > 0) await new Promise<void>((r) => setImmediate(r));
          continue;
        }
        const batch = this.queue.splice(0, this.maxBatch);
        await this.syncFiles(batch);
        // batches are answered in order, and at most one waits for its directories
        if (answering) await answering;
        answering = this.placeAndAnswer(batch);
      }
    } finally {
      this.running = false;
    }
  }

  /** First half of a batch: fsync every file (issued together), then close them. */
  private async syncFiles(batch: Pending[]): Promise<void> {
    this.stats.batches++;
    this.stats.files += batch.length;
    this.stats.largest = Math.max(this.stats.largest, batch.length);
    faultPoint('batch-before-fsync');
    // the data must be on disk before the name is (see commitFile); issued together,
    // the fsyncs of a batch share the file system's journal commits
    const issued = performance.now();
    const synced = await Promise.allSettled(batch.map((p) => fsyncFd(p.fd)));
    const done = performance.now();
    for (const p of batch) this.stats.queueMs += issued - p.queuedAt;
    this.stats.fsyncMs += (done - issued) * batch.length;
    batch.forEach((p, i) => {
      const r = synced[i]!;
      if (r.status === 'rejected') p.failed = r.reason;
      ignoreErrors(() => closeSync(p.fd));
    });
  }

  /** Second half: place every fsynced file, fsync each directory once, answer every caller. */
  private async placeAndAnswer(batch: Pending[]): Promise<void> {
    faultPoint('batch-after-fsync');
    for (const p of batch) {
      if (p.failed !== undefined) continue;
      try {
        if (p.noReplace) {
          // link fails with EEXIST instead of replacing; the tmp name goes right after
          linkSync(p.tmp, p.dest);
          p.placed = true;
          ignoreErrors(() => unlinkSync(p.tmp));
        } else {
          renameSync(p.tmp, p.dest);
          p.placed = true;
        }
      } catch (err) {
        p.failed = err;
      }
    }
    faultPoint('batch-after-rename');
    // the new names are durable once their directories are: one fsync per directory
    const dirs = [...new Set(batch.filter((p) => p.placed).map((p) => dirname(p.dest)))];
    const dirSynced = await Promise.allSettled(dirs.map((d) => fsyncDirFd(d)));
    const dirFailed = new Map<string, unknown>();
    dirs.forEach((d, i) => {
      const r = dirSynced[i]!;
      if (r.status === 'rejected') dirFailed.set(d, r.reason);
    });
    faultPoint('batch-after-dir-fsync');
    for (const p of batch) {
      if (p.failed === undefined && p.placed && dirFailed.has(dirname(p.dest))) p.failed = dirFailed.get(dirname(p.dest));
      this.stats.waitMs += performance.now() - p.queuedAt;
      if (p.failed === undefined) {
        p.resolve({ path: p.dest, size: p.size });
        continue;
      }
      ignoreErrors(() => unlinkSync(p.tmp));
      // placed but not made durable: take the name back, so a failure reported to the
      // caller never leaves a file that might survive anyway
      if (p.placed) ignoreErrors(() => unlinkSync(p.dest));
      p.reject(commitError(p.failed, p.dest, { tmpDir: '', noReplace: p.noReplace }, Boolean(p.placed)));
    }
  }
}
