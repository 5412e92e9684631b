// The spool: one directory tree per site, all on one file system. Spool.open makes or
// checks the layout (marker file `mailbag-spool 1`, dirs 0700, files 0600, every
// directory on the root's device) and removes the tmp leftovers of dead writers. Jobs
// live in queues `out/PEER/ID` (to send), `in/PEER/ID` (received, for the runner) and
// `failed/PEER/ID`; every file enters through commitFile. Layout and crash states:
// docs/spool.md.

import { constants, createReadStream, lstatSync, readdirSync, readFileSync, realpathSync, statSync, type Stats } from 'node:fs';
import { chmod, open, readdir, rename, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { InputError, MailbagError, SpoolError } from '../errors.js';
import { LIMITS } from '../limits.js';
import { decodeJobHeader, encodeJobHeader, isJobId, isName, MAX_JOB_PREFIX, type JobHeader } from '../job/header.js';
import { cleanupTmp, type CleanupReport } from './cleanup.js';
import { commitFile, commitFileSync, DIR_MODE, ensureDir, fsyncDir, lstatOrUndefined, spoolErrorFrom, type CommitResult, type Content } from './commit.js';
import type { Lock, LockOptions } from './lock.js';

export const SPOOL_MAGIC = 'mailbag-spool';
export const SPOOL_VERSION = 1;
export const SPOOL_MARKER = 'mailbag-spool';
const SPOOL_MARKER_CONTENT = `${SPOOL_MAGIC} ${SPOOL_VERSION}\n`;
/** the tmp file of a marker being written (commit.ts tmpName with label `marker`) */
const MARKER_TMP = /^\d{1,10}\.[0-9a-z]+\.[0-9a-f]{8}\.marker$/;

export const QUEUES = ['out', 'in', 'failed'] as const;
export type Queue = (typeof QUEUES)[number];

/** the directories every spool has, relative to its root */
export const SPOOL_DIRS = ['tmp', 'out', 'in', 'failed', 'locks'] as const;

export interface JobRef {
  queue: Queue;
  peer: string;
  id: string;
  /** absolute path of the job file */
  path: string;
}

export interface OpenJob {
  ref: JobRef;
  header: JobHeader;
  /** bytes of the whole file */
  size: number;
  /** where the payload starts in the file */
  payloadOffset: number;
  /** payload bytes */
  payloadSize: number;
  /** a fresh stream of the payload (may be called more than once) */
  payload(): Readable;
}

export interface QueueStats {
  jobs: number;
  bytes: number;
  /** age in ms of the oldest job (by file time), or null for an empty queue */
  oldestAgeMs: number | null;
}

export type PeerStats = Record<Queue, QueueStats>;

export interface OpenOptions {
  /** make the spool (and its marker) when it is not there yet */
  create?: boolean;
  /** remove dead writers' tmp leftovers (default true) */
  cleanup?: boolean;
}

export interface WriteJobOptions {
  /** payload bytes allowed (default LIMITS.maxMessageSize; never above LIMITS.maxJobSizeCeiling) */
  maxSize?: number;
}

function checkQueue(queue: string): asserts queue is Queue {
  if (!(QUEUES as readonly string[]).includes(queue)) throw new MailbagError('internal', `no such queue ${JSON.stringify(queue)}`);
}

function checkPeer(peer: string): void {
  if (!isName(peer)) {
    throw new MailbagError('unknown-peer', `bad peer name ${JSON.stringify(String(peer).slice(0, 80))}: names are [a-z0-9][a-z0-9.-]*, at most ${LIMITS.maxNameLength} characters`);
  }
}

export class Spool {
  /** absolute path of the spool's root */
  readonly root: string;
  /** the device every spool directory must be on (stat of the root, made when first asked) */
  get dev(): number {
    return (this.#dev ??= statSync(this.root).dev);
  }

  #dev: number | undefined;
  /** opened by openForQueue's quick path: the one-file-system check was left to link(2) */
  #quick = false;
  /** what the start-up cleanup removed and kept */
  readonly cleanup: CleanupReport;

  /** QUEUE/PEER directories checked by openForQueue, so a job's write need not check them again */
  private readonly checked = new Set<string>();

  private constructor(root: string, dev: number | undefined, cleanup: CleanupReport) {
    this.root = root;
    this.#dev = dev;
    this.cleanup = cleanup;
  }

  /**
   * Open the spool at `root`: make it (with `create`) or check its marker, make missing
   * standard directories, check they are all on one file system, and clean up dead
   * writers' tmp files. Throws SpoolError (temporary) for anything wrong.
   */
  static async open(root: string, opts: OpenOptions = {}): Promise<Spool> {
    const abs = resolve(root);
    // The checks use synchronous calls: a front door opens the spool once per message
    // and each thread-pool round trip would cost more than the system call itself.
    try {
      if (!lstatSync(abs, { throwIfNoEntry: false })) {
        if (!opts.create) throw new SpoolError(`spool ${abs} does not exist`);
        await ensureDir(abs);
      }
      const rootSt = statSync(abs);
      if (!rootSt.isDirectory()) throw new SpoolError(`spool ${abs} is not a directory`);
      const dev = rootSt.dev;
      await Spool.checkMarker(abs, opts.create === true);
      Spool.checkMode(abs, statSync(abs)); // after the marker: a spool just made was set to 0700
      for (const d of SPOOL_DIRS) await Spool.checkDir(join(abs, d), dev, true);
      Spool.checkTree(abs, dev);
      const report = opts.cleanup === false ? { removed: [], kept: [] } : await cleanupTmp(join(abs, 'tmp'));
      return new Spool(abs, dev, report);
    } catch (err) {
      throw spoolErrorFrom(err, `opening spool ${abs}`);
    }
  }

  /**
   * Spool.open for a process that only writes jobs into QUEUE/PEER (a front door, once
   * per message). On a spool that is set up it checks what such a write passes through
   * and no more, without a walk of the tree: the marker; tmp/ and QUEUE/PEER are
   * directories reached without a symbolic link (realpath of `DIR/.`); neither the root,
   * tmp/, QUEUE nor QUEUE/PEER may be written by its group or every user (four stat
   * calls; Spool.open's checkMode); it removes dead writers' tmp files. The one-file-system rule holds for what it writes
   * because link(2) refuses to cross a mount (EXDEV): a job that can be linked from tmp/
   * into QUEUE/PEER is on the mount that holds their common parent, the root; when link
   * says EXDEV, writeJobSync reports Spool.open's error naming the directory. Anything
   * else — a new spool or peer, a symbolic link, a bad marker — is left to Spool.open
   * (followed by ensureDir(QUEUE, PEER)), which makes what is missing or says what is
   * wrong in its own words. Every other command opens the spool with Spool.open.
   */
  static async openForQueue(root: string, queue: Queue, peer: string, opts: OpenOptions = {}): Promise<Spool> {
    checkQueue(queue);
    checkPeer(peer);
    const abs = resolve(root);
    let spool = await Spool.openSetUp(abs, queue, peer, opts);
    if (spool) {
      spool.#quick = true;
    } else {
      spool = await Spool.open(abs, opts);
      await spool.ensureDir(queue, peer);
    }
    spool.checked.add(`${queue}/${peer}`);
    return spool;
  }

  /** openForQueue's checks; undefined when anything is not as expected (Spool.open then decides). */
  private static async openSetUp(abs: string, queue: Queue, peer: string, opts: OpenOptions): Promise<Spool | undefined> {
    try {
      // the root itself may be a symbolic link (Spool.open follows it too)
      const real = realpathSync.native(abs);
      for (const dir of ['tmp', `${queue}/${peer}`]) {
        // `DIR/.` resolves only when DIR is a directory; any link on the way changes the path
        if (realpathSync.native(`${abs}/${dir}/.`) !== `${real === '/' ? '' : real}/${dir}`) return undefined;
      }
      // a directory on the way that its group or every user may write: Spool.open refuses
      // it in its own words (checkMode), and the MTA keeps the mail (75)
      for (const dir of ['', '/tmp', `/${queue}`, `/${queue}/${peer}`]) {
        if (statSync(`${abs}${dir}`).mode & 0o022) return undefined;
      }
      const text = readFileSync(`${abs}/${SPOOL_MARKER}`, 'utf8');
      if (text !== SPOOL_MARKER_CONTENT) return undefined;
      const report = opts.cleanup === false ? { removed: [], kept: [] } : await cleanupTmp(`${abs}/tmp`);
      return new Spool(abs, undefined, report);
    } catch {
      return undefined;
    }
  }

  private static async checkMarker(root: string, create: boolean): Promise<void> {
    const path = join(root, SPOOL_MARKER);
    let text: string | undefined;
    try {
      // utf8: Node reads it without the generic Buffer path (a front door's start-up);
      // a marker that is not ASCII fails the check below either way
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text === undefined) {
      if (!create) throw new SpoolError(`${root} is not a mailbag spool (no ${SPOOL_MARKER} file)`);
      try {
        Spool.checkUnused(root);
      } catch (err) {
        // Another process may have made the spool between the read above and the look
        // inside (two front doors on a fresh spool, the MTA delivering in parallel): its
        // marker is committed before anything else of the spool is made, so a marker there
        // now means the entries are that spool's, not someone else's files
        let now: string;
        try {
          now = readFileSync(path, 'utf8');
        } catch {
          throw err;
        }
        Spool.checkMarkerText(path, now);
        return;
      }
      await chmod(root, DIR_MODE);
      await ensureDir(join(root, 'tmp'));
      await commitFile(path, Buffer.from(SPOOL_MARKER_CONTENT), { tmpDir: join(root, 'tmp'), label: 'marker' });
      return;
    }
    Spool.checkMarkerText(path, text);
  }

  /**
   * A spool is made only in a directory that holds nothing of anyone else's: empty, or
   * with what a file system's root has (`lost+found`), the README.md a checkout's spool/
   * ships with, or what an interrupted making of this spool left (`tmp/` with marker tmp
   * files). `spool = "/var"` (or "/", a home
   * directory) would otherwise have had its mode set to 0700 and its tmp/ emptied of
   * every file a day old by the cleanup of dead writers' leftovers.
   */
  private static checkUnused(root: string): void {
    const foreign = readdirSync(root, { withFileTypes: true }).filter((e) => {
      if (e.name === 'lost+found' && e.isDirectory()) return false;
      if (e.name === 'README.md' && e.isFile()) return false; // a checkout's spool/ ships with one
      if (e.name === 'tmp' && e.isDirectory()) return !readdirSync(join(root, 'tmp')).every((n) => MARKER_TMP.test(n));
      return true;
    });
    if (foreign.length === 0) return;
    const names = foreign.slice(0, 3).map((e) => e.name).join(', ') + (foreign.length > 3 ? ', …' : '');
    throw new SpoolError(
      `${root} is not a mailbag spool (no ${SPOOL_MARKER} file) and is not empty (it holds ${names}): a spool is made only in a new or empty directory; set spool to one, like /var/spool/mailbag`,
    );
  }

  private static checkMarkerText(path: string, text: string): void {
    if (text === SPOOL_MARKER_CONTENT) return;
    const m = /^mailbag-spool (\d{1,9})\n$/.exec(text);
    if (!m) throw new SpoolError(`${path} is not a mailbag spool marker (it must read "${SPOOL_MARKER_CONTENT.trim()}")`);
    if (Number(m[1]) !== SPOOL_VERSION) {
      throw new SpoolError(`spool format version ${m[1]} is not supported; this mailbag reads version ${SPOOL_VERSION} (${path})`);
    }
  }

  /**
   * The one-filesystem check: every directory in the root and one level below it
   * (out/PEER, ledger/PEER, bags/out …), two below in bags/ (bags/out/PEER), must be
   * on the root's device. Job files are not looked at, so a long queue costs nothing.
   */
  private static checkTree(root: string, dev: number): void {
    const subdirs = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory() || e.isSymbolicLink()).map((e) => join(dir, e.name));
    for (const top of subdirs(root)) {
      Spool.checkStat(top, lstatSync(top), dev);
      if (top.endsWith('/tmp') || top.endsWith('/locks')) continue;
      for (const second of subdirs(top)) {
        Spool.checkStat(second, lstatSync(second), dev);
        if (top.endsWith('/bags')) for (const third of subdirs(second)) Spool.checkStat(third, lstatSync(third), dev);
      }
    }
  }

  /** check a directory (made first when `make` and missing) is a real one on `dev` */
  private static async checkDir(dir: string, dev: number, make: boolean): Promise<void> {
    let st = lstatSync(dir, { throwIfNoEntry: false });
    if (!st && make) {
      await ensureDir(dir);
      st = lstatSync(dir);
    }
    if (st) Spool.checkStat(dir, st, dev);
  }

  /**
   * A spool directory every user may write (0777, 1777: someone's chmod, a restore, the
   * spool made at a mount point made for everyone) lets anyone rename, replace or add the
   * files in it (an empty tmp/ swapped for one of their own sees every job written): refused.
   */
  private static checkMode(dir: string, st: Stats): void {
    if (st.mode & 0o002) {
      throw new SpoolError(`spool: every user may write ${dir} (mode 0${(st.mode & 0o7777).toString(8)}), and so replace the spool's files: chmod 0700 ${dir} (docs/spool.md, Permissions)`);
    }
    // a group may search and read (a socket inside the spool needs no more), never write:
    // every member could add, replace or remove the spool's files as every user could
    if (st.mode & 0o020) {
      throw new SpoolError(`spool: its group (gid ${st.gid}) may write ${dir} (mode 0${(st.mode & 0o7777).toString(8)}), and so every member may replace the spool's files: chmod g-w ${dir} (docs/spool.md, Permissions)`);
    }
  }

  private static checkStat(dir: string, st: Stats, dev: number): void {
    if (!st.isDirectory()) throw new SpoolError(`spool: ${dir} is not a directory${st.isSymbolicLink() ? ' (symbolic links are not allowed in the spool)' : ''}`);
    Spool.checkMode(dir, st);
    if (st.dev !== dev) {
      throw new SpoolError(`spool: ${dir} is on another file system than the spool root; every spool directory must be on one file system (rename is atomic only within one)`);
    }
  }

  /** absolute path of a spool-relative path */
  path(...parts: string[]): string {
    return join(this.root, ...parts);
  }

  /** the spool's tmp/ directory (tmp files of commitFile and locks live here) */
  get tmpDir(): string {
    return join(this.root, 'tmp');
  }

  /**
   * Make a spool directory (relative path, one level at a time from an existing one)
   * with mode 0700, fsync its parent, and check it is on the spool's file system.
   */
  async ensureDir(...parts: string[]): Promise<string> {
    const dir = this.path(...parts);
    try {
      await Spool.checkDir(dir, this.dev, true);
    } catch (err) {
      throw spoolErrorFrom(err, `making ${dir}`);
    }
    return dir;
  }

  /** fsync a spool directory (after removing or renaming names in it) */
  async fsyncDir(...parts: string[]): Promise<void> {
    try {
      await fsyncDir(this.path(...parts));
    } catch (err) {
      throw spoolErrorFrom(err, `syncing ${this.path(...parts)}`);
    }
  }

  /**
   * THE commit: write `content` to the spool-relative `dest` through tmp/ (O_EXCL,
   * write, fsync, rename or link, directory fsync). See lib/spool/commit.ts.
   */
  async commitFile(dest: string, content: Content, opts: { noReplace?: boolean; maxSize?: number; label?: string } = {}): Promise<CommitResult> {
    return commitFile(this.path(dest), content, { ...opts, tmpDir: this.tmpDir });
  }

  /** Take an exclusive lock (see lib/spool/lock.ts). */
  async lock(name: string, opts: LockOptions = {}): Promise<Lock> {
    // loaded on first use: the enqueue front door never locks and should not pay for it
    const { acquireLock } = await import('./lock.js');
    return acquireLock(this.path('locks'), this.tmpDir, name, opts);
  }

  /** The job's ref (path) for a queue, peer and id; validates all three. */
  ref(queue: Queue, peer: string, id: string): JobRef {
    checkQueue(queue);
    checkPeer(peer);
    if (!isJobId(id)) throw new MailbagError('internal', `bad job id ${JSON.stringify(String(id).slice(0, 80))}`);
    return { queue, peer, id, path: this.path(queue, peer, id) };
  }

  /**
   * Write a job durably into `queue/peer/ID` (ID = header.id). The payload streams
   * through; past maxSize InputError 'too-big' is thrown and nothing is left behind.
   * A job in out/PEER must be for PEER (header.to), one in in/ or failed/PEER from it.
   * File-system failures are SpoolError (temporary: 75). An existing job with the same
   * id is never replaced (SpoolError whose cause has code EEXIST).
   */
  async writeJob(queue: Queue, peer: string, header: JobHeader, payload: Content, opts: WriteJobOptions = {}): Promise<JobRef & { size: number }> {
    const { ref, head, max } = await this.prepareJob(queue, peer, header, opts);
    const body: Content =
      payload instanceof Uint8Array
        ? Buffer.concat([head, payload])
        : (async function* () {
            yield head;
            yield* payload;
          })();
    try {
      const r = await commitFile(ref.path, body, { tmpDir: this.tmpDir, noReplace: true, maxSize: head.length + max, label: 'job' });
      return { ...ref, size: r.size };
    } catch (err) {
      throw jobTooBig(err, max);
    }
  }

  /**
   * writeJob for a payload pulled synchronously (a front door's stdin, read with
   * readSync): the same checks, and the same commit through commitFileSync, which
   * spares one small message the thread-pool round trip of every step.
   */
  async writeJobSync(queue: Queue, peer: string, header: JobHeader, payload: Iterable<Uint8Array>, opts: WriteJobOptions = {}): Promise<JobRef & { size: number }> {
    const { ref, head, max } = await this.prepareJob(queue, peer, header, opts);
    const body = (function* () {
      yield head;
      yield* payload;
    })();
    try {
      const r = commitFileSync(ref.path, body, { tmpDir: this.tmpDir, noReplace: true, maxSize: head.length + max, label: 'job' });
      return { ...ref, size: r.size };
    } catch (err) {
      // tmp/ and the queue on two mounts: Spool.open names the directory (openForQueue left that check to link)
      if (this.#quick && err instanceof MailbagError && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'EXDEV') {
        await Spool.open(this.root, { cleanup: false });
      }
      throw jobTooBig(err, max);
    }
  }

  /** What both writeJobs check and make before the commit. */
  private async prepareJob(queue: Queue, peer: string, header: JobHeader, opts: WriteJobOptions): Promise<{ ref: JobRef; head: Buffer; max: number }> {
    const ref = this.ref(queue, peer, header.id);
    // out/PEER holds only jobs for PEER, in/PEER and failed/PEER only jobs from PEER
    const party = queue === 'out' ? header.to : header.from;
    if (party !== peer) {
      throw new MailbagError('internal', `job ${header.id} is ${queue === 'out' ? 'for' : 'from'} ${JSON.stringify(party)}, not for the ${queue}/${peer} queue`);
    }
    const head = encodeJobHeader(header);
    const max = Math.min(opts.maxSize ?? LIMITS.maxMessageSize, LIMITS.maxJobSizeCeiling);
    if (!this.checked.has(`${queue}/${peer}`)) await this.ensureDir(queue, peer);
    return { ref, head, max };
  }

  /** Jobs of one peer's queue, oldest id first. A missing queue is empty. */
  async listJobs(queue: Queue, peer: string): Promise<JobRef[]> {
    checkQueue(queue);
    checkPeer(peer);
    let names: string[];
    try {
      names = await readdir(this.path(queue, peer));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw spoolErrorFrom(err, `listing ${this.path(queue, peer)}`);
    }
    return names
      .filter(isJobId)
      .sort()
      .map((id) => ({ queue, peer, id, path: this.path(queue, peer, id) }));
  }

  /** Peers that have a directory in `queue`, sorted. */
  async peers(queue: Queue): Promise<string[]> {
    checkQueue(queue);
    try {
      return (await readdir(this.path(queue))).filter(isName).sort();
    } catch (err) {
      throw spoolErrorFrom(err, `listing ${this.path(queue)}`);
    }
  }

  /**
   * Open a job: its header is read and checked (InputError 'bad-job' naming the file
   * when it is refused); the payload is streamed on demand with bounded memory.
   */
  async readJob(ref: JobRef): Promise<OpenJob> {
    return readJobFile(ref.path, ref);
  }

  /** Remove a job durably (unlink, then fsync its directory). A missing job is fine. */
  async removeJob(ref: JobRef): Promise<void> {
    const r = this.ref(ref.queue, ref.peer, ref.id);
    try {
      await unlink(r.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw spoolErrorFrom(err, `removing ${r.path}`);
    }
    await this.fsyncDir(r.queue, r.peer);
  }

  /**
   * Move a job to another queue of the same peer (for example in → failed). The new
   * name is made durable before the old one goes away, so a crash leaves the job in at
   * least one queue.
   */
  async moveJob(ref: JobRef, queue: Queue): Promise<JobRef> {
    const from = this.ref(ref.queue, ref.peer, ref.id);
    const to = this.ref(queue, ref.peer, ref.id);
    await this.ensureDir(queue, ref.peer);
    try {
      await rename(from.path, to.path);
    } catch (err) {
      throw spoolErrorFrom(err, `moving ${from.path} to ${to.path}`);
    }
    await this.fsyncDir(queue, ref.peer);
    await this.fsyncDir(from.queue, from.peer);
    return to;
  }

  /** Per peer, per queue: jobs, bytes (whole files) and the oldest job's age. */
  async stats(peer?: string, now: number = Date.now()): Promise<Record<string, PeerStats>> {
    if (peer !== undefined) checkPeer(peer);
    const out: Record<string, PeerStats> = {};
    const names = new Set<string>();
    if (peer !== undefined) names.add(peer);
    else for (const q of QUEUES) for (const p of await this.peers(q)) names.add(p);
    for (const p of [...names].sort()) {
      const entry = {} as PeerStats;
      for (const q of QUEUES) {
        const s: QueueStats = { jobs: 0, bytes: 0, oldestAgeMs: null };
        for (const ref of await this.listJobs(q, p)) {
          const st = await lstatOrUndefined(ref.path).catch(() => undefined);
          if (!st || !st.isFile()) continue;
          s.jobs++;
          s.bytes += st.size;
          const age = Math.max(0, now - st.mtimeMs);
          if (s.oldestAgeMs === null || age > s.oldestAgeMs) s.oldestAgeMs = Math.round(age);
        }
        entry[q] = s;
      }
      out[p] = entry;
    }
    return out;
  }
}

/**
 * Open a job file anywhere (bounded: reads at most the header's cap before deciding).
 * InputError 'bad-job' naming the file for a header that is refused.
 */
export async function readJobFile(path: string, ref?: JobRef): Promise<OpenJob> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY);
  } catch (err) {
    throw spoolErrorFrom(err, `reading ${path}`);
  }
  try {
    const size = (await fh.stat()).size;
    const want = Math.min(size, MAX_JOB_PREFIX);
    // most headers are small: read 64 KiB first, more only when the header needs it
    let buf = Buffer.alloc(Math.min(want, 64 * 1024));
    let have = (await fh.read(buf, 0, buf.length, 0)).bytesRead;
    let r = decodeJobHeader(buf.subarray(0, have));
    if (!r.ok && r.issue.code === 'truncated' && have < want) {
      buf = Buffer.alloc(want);
      have = (await fh.read(buf, 0, want, 0)).bytesRead;
      r = decodeJobHeader(buf.subarray(0, have));
    }
    if (!r.ok) throw new InputError('bad-job', `${path}: ${r.issue.message}`);
    const payloadOffset = r.value.length;
    const theRef: JobRef = ref ?? refFromPath(path);
    return {
      ref: theRef,
      header: r.value.header,
      size,
      payloadOffset,
      payloadSize: size - payloadOffset,
      payload: () => createReadStream(path, { start: payloadOffset }),
    };
  } catch (err) {
    if (err instanceof MailbagError) throw err;
    throw spoolErrorFrom(err, `reading ${path}`);
  } finally {
    await fh.close();
  }
}

/** A commit's too-big error re-worded with the job's payload cap; any other error as it is. */
function jobTooBig(err: unknown, max: number): unknown {
  if (err instanceof InputError && err.code === 'too-big') {
    return new InputError('too-big', `message is larger than the limit of ${max} bytes`, { cause: err });
  }
  return err;
}

function refFromPath(path: string): JobRef {
  const parts = path.split('/');
  const id = parts.at(-1) ?? '';
  const peer = parts.at(-2) ?? '';
  const queue = (parts.at(-3) ?? 'in') as Queue;
  return { queue, peer, id, path };
}
