// What a session does to the spool, for one peer (docs/protocol.md §5–§6): the sender's
// pending bags (built, offered, removed with their jobs only on acknowledgement) and the
// receiver's partial bags, staging and ledger. Every file enters through the spool's
// commit function or a rename on the same file system; every step that matters for a
// crash is followed by an fsync, in the order the crash story in docs/protocol.md gives.

import { execFile } from 'node:child_process';
import fs, { constants, createReadStream } from 'node:fs';
import { lstat, open, readdir, readFile, rename, rm, stat, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { expandedSizeOf } from '../bag/writer.js';
import { writeBagFile } from '../bag/workers.js';
import type { BagCodec } from '../bag/codec.js';
import { MailbagError, SpoolError } from '../errors.js';
import { JOB_ID_RE } from '../job/header.js';
import { commitFile, ensureDir, fsyncDir, tmpName } from '../spool/commit.js';
import { faultPoint } from '../spool/fault.js';
import { Ledger } from './ledger.js';
import { BagRefusal, LocalGrowth, PartialSource, fromStageFailure, stageFrom, type ReceiveCaps, type StageOutcome, type StageRequest } from './stage-bag.js';
import { StageOps, stageOnWorker, stageWhere, syncfsOnWorker, warmSyncfsOnWorker } from './stage-ops.js';
import { onTodaysClock, type ClockStep } from './clock.js';

export { BagRefusal, type ReceiveCaps };

export const BAG_LIST_MAGIC = 'mailbag-bag 1';
/**
 * bags/out/PEER/alone: the jobs of bags PEER refused as a whole (no job of them named), each
 * sent alone in its own bag from then on, so the one at fault is refused alone and fails
 * visibly instead of the same bag being refused session after session (docs/protocol.md §3)
 */
export const ALONE_FILE = 'alone';
export const ALONE_MAGIC = 'mailbag-alone 1';
/** a job this large or larger travels alone in its own bag, after the small ones */
export const LARGE_JOB = 1024 * 1024;
/** job bytes packed into one bag of small jobs */
export const BAG_TARGET = 8 * 1024 * 1024;
/** job bytes in the first bag of a session (each next one may hold four times more, up to BAG_TARGET) */
export const FIRST_BAG = 512 * 1024;

export interface SpoolPaths {
  /** the spool root */
  root: string;
  /** the spool's tmp/ (same file system): where the commit function writes */
  tmp: string;
  /** out/PEER/: jobs queued for the peer */
  out: string;
  /** in/PEER/: jobs received from the peer, for the runner */
  in: string;
}

export interface PendingBag {
  bag: string;
  size: number;
  codec: BagCodec;
  jobs: string[];
  /** the jobs' file sizes, in the order of `jobs` */
  sizes: number[];
}

export interface QueuedJob {
  id: string;
  size: number;
}

export interface CommitOutcome {
  committed: string[];
  duplicates: number;
  /** job payload bytes committed */
  bytes: number;
}

/** A bag checked and its new jobs written into its staging directory, not yet durable or committed. */
export interface StagedBag {
  bag: string;
  /** bags/in/PEER/HASH.d */
  staging: string;
  /** ids of the jobs staged (not in the ledger when the bag was read) */
  committed: string[];
  /** their sizes in the bag */
  sizes: Map<string, number>;
  /** jobs skipped because the ledger already held them */
  duplicates: number;
  bytes: number;
}

/** refusals that will not change by sending the same job again */
export const PERMANENT_REFUSALS: ReadonlySet<string> = new Set(['forbidden-command', 'bad-job', 'too-big']);

const execFileP = promisify(execFile);

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function sizeOfSync(path: string): number | undefined {
  try {
    return fs.statSync(path).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function rmQuiet(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

export interface StoreOptions {
  paths: SpoolPaths;
  site: string;
  peer: string;
  ledgerRetentionMs: number;
  /** job commands this peer's jobs may run here; undefined = not checked */
  accept?: string[] | undefined;
  /** brotli quality / gzip level for bags we build */
  level?: number;
  /**
   * where bags are compressed: on a worker thread (the default where the built worker
   * script is there, as in dist/) or on this thread (running from the TypeScript
   * sources, where tests that want the worker configure its script and say 'worker')
   */
  bagThread?: 'worker' | 'caller';
  /**
   * where staged jobs are created, moved and removed: the stage worker thread
   * (lib/session/stage-ops.ts; the default where its script exists) or this thread
   */
  stageThread?: 'worker' | 'caller';
}

/** the built bag worker beside lib/bag/workers.js (missing when run from the .ts sources) */
const BAG_WORKER_BUILT = fs.existsSync(fileURLToPath(new URL('../bag/bag-worker.js', import.meta.url)));

export class SessionStore {
  readonly paths: SpoolPaths;
  readonly site: string;
  readonly peer: string;
  private readonly bagsOut: string;
  private readonly bagsIn: string;
  private ledger: Ledger | undefined;
  private readonly options: StoreOptions;

  constructor(options: StoreOptions) {
    this.options = options;
    this.paths = options.paths;
    this.site = options.site;
    this.peer = options.peer;
    this.bagsOut = join(options.paths.root, 'bags', 'out', options.peer);
    this.bagsIn = join(options.paths.root, 'bags', 'in', options.peer);
  }

  /** Make the directories and run both recoveries (docs/protocol.md crash stories). */
  async open(): Promise<void> {
    const root = this.paths.root;
    // level by level, each level's directories at once (a parent is there before its
    // children): serve's OFFERs wait for this, and one at a time it was ten mkdirs (and
    // on a new spool ten parent fsyncs) in a row
    for (const level of [
      [join(root, 'bags'), join(root, 'ledger'), join(root, 'out'), join(root, 'in')],
      [join(root, 'bags', 'out'), join(root, 'bags', 'in'), this.paths.out, this.paths.in],
      [this.bagsOut, this.bagsIn],
    ]) {
      await Promise.all(level.map((d) => ensureDir(d)));
    }
    const ledgerPath = join(root, 'ledger', this.peer);
    // a committed bag not yet moved (S7) may have been acknowledged (the ACK follows the
    // ledger line, the moves come after it): its jobs are moved before the ledger is pruned,
    // or a line past the retention would make the recovery remove them as uncommitted (S6)
    if ((await readdir(this.bagsIn)).some((n) => n.endsWith('.d'))) {
      this.ledger = await Ledger.open(ledgerPath, this.paths.tmp, Number.POSITIVE_INFINITY);
      await this.recoverIncoming();
    }
    this.ledger = await Ledger.open(ledgerPath, this.paths.tmp, this.options.ledgerRetentionMs);
    await this.recoverOutgoing();
    await this.recoverIncoming();
  }

  private where(): 'worker' | 'caller' {
    return this.options.stageThread ?? stageWhere();
  }

  private ops(): StageOps {
    return new StageOps(this.where());
  }

  private get book(): Ledger {
    if (!this.ledger) throw new MailbagError('internal', 'session store used before open()');
    return this.ledger;
  }

  // ----- sender -----

  private async readList(path: string): Promise<{ codec: BagCodec; jobs: string[] } | undefined> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      return undefined;
    }
    const lines = text.split('\n');
    if (lines[0] !== BAG_LIST_MAGIC) return undefined;
    const m = /^codec (zstd|br|gzip|none)$/.exec(lines[1] ?? '');
    if (!m) return undefined;
    return { codec: m[1] as BagCodec, jobs: lines.slice(2).filter((l) => JOB_ID_RE.test(l)) };
  }

  private async recoverOutgoing(): Promise<void> {
    const names = await readdir(this.bagsOut);
    for (const name of names) {
      const m = /^([0-9a-f]{64})\.acked$/.exec(name);
      if (m) await this.finishAck(m[1]!);
    }
    for (const name of await readdir(this.bagsOut)) {
      const m = /^([0-9a-f]{64})\.(jobs|bag)$/.exec(name);
      if (name === ALONE_FILE) continue;
      if (!m) {
        await rmQuiet(join(this.bagsOut, name));
        continue;
      }
      const hash = m[1]!;
      const list = join(this.bagsOut, `${hash}.jobs`);
      const bag = join(this.bagsOut, `${hash}.bag`);
      if (m[2] === 'jobs' && !(await exists(bag))) await rmQuiet(list);
      if (m[2] === 'bag' && !(await exists(list))) await rmQuiet(bag);
    }
  }

  /** Bags built earlier and not yet acknowledged, every job still queued; smallest first. */
  async pendingBags(): Promise<PendingBag[]> {
    const out: PendingBag[] = [];
    for (const name of await readdir(this.bagsOut)) {
      const m = /^([0-9a-f]{64})\.bag$/.exec(name);
      if (!m) continue;
      const hash = m[1]!;
      const list = await this.readList(join(this.bagsOut, `${hash}.jobs`));
      const size = await sizeOf(join(this.bagsOut, name));
      let whole = list !== undefined && size !== undefined && list.jobs.length > 0;
      const sizes: number[] = [];
      if (whole) {
        for (const id of list!.jobs) {
          const n = await sizeOf(join(this.paths.out, id));
          if (n === undefined) whole = false;
          else sizes.push(n);
        }
      }
      if (!whole) {
        // a job was removed meanwhile (an admin, or a list we cannot read): re-bag the rest
        await this.discardBag(hash);
        continue;
      }
      out.push({ bag: hash, size: size!, codec: list!.codec, jobs: list!.jobs, sizes });
    }
    return out.sort((a, b) => a.size - b.size);
  }

  /** Jobs in out/PEER/ not in `exclude`, oldest first. */
  async queuedJobs(exclude: ReadonlySet<string>): Promise<QueuedJob[]> {
    const names = (await readdir(this.paths.out)).sort().filter((name) => JOB_ID_RE.test(name) && !exclude.has(name));
    // one stat per job, synchronous (the pool's round trips cost 4 x the CPU: 94-110 against
    // 25 ms for 10,160 jobs), with a turn for the event loop every YIELD_EVERY
    const jobs: QueuedJob[] = [];
    await eachSync(names, (id) => {
      const size = sizeOfSync(join(this.paths.out, id));
      if (size !== undefined) jobs.push({ id, size });
    });
    return jobs;
  }


  /** Write a bag of these jobs into the spool, named by its hash (crash-safe, see §6). */
  async buildBag(jobs: QueuedJob[], codec: BagCodec): Promise<PendingBag> {
    return (await this.writeBagFile(jobs, codec)).sealed;
  }

  /**
   * Compress a bag of these jobs into a tmp file. Resolves as soon as its bytes are
   * written — the compressor is free for the next bag — with `sealed`: the bag made
   * durable and named by its hash (§6), which must settle before the bag is offered.
   */
  async writeBagFile(jobs: QueuedJob[], codec: BagCodec): Promise<{ sealed: Promise<PendingBag> }> {
    const tmp = join(this.paths.tmp, tmpName('bag'));
    // compressed on a worker thread (lib/bag/workers.ts): this thread goes on serving the
    // link (SSH crypto, DATA, ACKs) meanwhile; the tmp file is removed on any failure
    const summary = await writeBagFile(
      jobs.map((j) => ({ name: j.id, size: j.size, path: join(this.paths.out, j.id) })),
      tmp,
      { codec, where: this.options.bagThread ?? (BAG_WORKER_BUILT ? 'worker' : 'caller'), ...(this.options.level === undefined ? {} : { level: this.options.level }) },
    );
    const sealed = this.sealBag(tmp, summary.sha256, summary.size, jobs, codec);
    sealed.catch(() => {});
    return { sealed };
  }

  private async sealBag(tmp: string, hash: string, size: number, jobs: QueuedJob[], codec: BagCodec): Promise<PendingBag> {
    const list = `${BAG_LIST_MAGIC}\ncodec ${codec}\n${jobs.map((j) => `${j.id}\n`).join('')}`;
    const listTmp = join(this.paths.tmp, tmpName('baglist'));
    try {
      // the bytes of both files on disk before their names are (one fsync each, at once)
      await Promise.all([syncFile(tmp), writeSynced(listTmp, Buffer.from(list))]);
      // the list first; either name alone is deleted by the recovery (§6), and one
      // fsync of the directory makes both names durable
      await rename(listTmp, join(this.bagsOut, `${hash}.jobs`));
      await rename(tmp, join(this.bagsOut, `${hash}.bag`));
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      await unlink(listTmp).catch(() => undefined);
      throw err;
    }
    await fsyncDir(this.bagsOut);
    return { bag: hash, size, codec, jobs: jobs.map((j) => j.id), sizes: jobs.map((j) => j.size) };
  }

  /** The bag's bytes from `from` to the end. */
  openBag(bag: string, from: number, size?: number): Readable {
    // never past the size offered (a file grown since would send DATA past the bag's end)
    return createReadStream(join(this.bagsOut, `${bag}.bag`), { start: from, ...(size !== undefined ? { end: size - 1 } : {}), highWaterMark: 256 * 1024 });
  }

  /** The peer has the bag: remove its jobs from out/PEER/, then the bag (order in §6). */
  async acked(bag: string): Promise<number> {
    const list = join(this.bagsOut, `${bag}.jobs`);
    if (!(await exists(list))) return 0;
    await rename(list, join(this.bagsOut, `${bag}.acked`));
    await fsyncDir(this.bagsOut);
    faultPoint('session-sender-after-ack');
    return this.finishAck(bag);
  }

  private async finishAck(bag: string): Promise<number> {
    const marker = join(this.bagsOut, `${bag}.acked`);
    const list = await this.readList(marker);
    let removed = 0;
    // the order among the unlinks does not matter (the .acked marker is durable); one
    // at a time, directly (unlinks racing in one directory spin on its lock). Not on the
    // stage worker: a sender that receives nothing then starts no thread (its memory)
    await eachSync(list?.jobs ?? [], (id) => {
      try {
        fs.unlinkSync(join(this.paths.out, id));
        removed++;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new SpoolError(`removing job ${id}`, { cause: err });
      }
    });
    await fsyncDir(this.paths.out);
    // not fsynced: a HASH.bag or HASH.acked that comes back after a crash is removed by
    // the recovery, and the jobs it names are gone for good (out/PEER/ was fsynced)
    await rmQuiet(join(this.bagsOut, `${bag}.bag`));
    await rmQuiet(marker);
    return removed;
  }

  /**
   * The peer refused one job of a bag for good: the bag is forgotten (its other jobs go
   * in a new bag next session) and the job moves to failed/PEER/ with the reason, where
   * `mailbag failed` shows it and `mailbag retry` can put it back.
   */
  async failRefusedJob(bag: string, id: string, reason: string, status = '5.7.1', now = new Date()): Promise<boolean> {
    await this.discardBag(bag);
    return this.failQueuedJob(id, reason, status, now);
  }

  /**
   * Move a job of out/PEER/ to failed/PEER/ for good with its reason and status; the
   * runner's pending-notice pass then tells its sender. Only under the session lock:
   * a bag that still names the job is re-bagged without it (pendingBags).
   */
  async failQueuedJob(id: string, reason: string, status: string, now = new Date()): Promise<boolean> {
    if (!JOB_ID_RE.test(id)) return false;
    const from = join(this.paths.out, id);
    if (!(await exists(from))) return false;
    const failedDir = join(this.paths.root, 'failed', this.peer);
    await ensureDir(join(this.paths.root, 'failed'));
    await ensureDir(failedDir);
    // the reason first (the runner's state record), then the move: a crash between them
    // leaves the job queued with a stale reason, never failed without one
    const runDir = join(this.paths.root, 'run', this.peer);
    await ensureDir(join(this.paths.root, 'run'));
    await ensureDir(runDir);
    const state = { attempts: 0, tx: {}, failed: { reason, at: now.toISOString(), status, noticeSent: false } };
    await commitFile(join(runDir, id), Buffer.from(`mailbag-run 1\n${JSON.stringify(state)}\n`), { tmpDir: this.paths.tmp, label: 'run' });
    await rename(from, join(failedDir, id));
    await fsyncDir(failedDir);
    await fsyncDir(this.paths.out);
    return true;
  }

  /**
   * Jobs of out/PEER/ made (by the time in their id) longer than `lifetimeMs` ago fail
   * for good: "not delivered to PEER within …" (DESIGN.md promise 4). Returns their ids.
   * `steps`: the wall clock's steps forward seen (clock.ts), added to the id time of a job
   * made before them.
   */
  async expireQueued(lifetimeMs: number, now = new Date(), steps: readonly ClockStep[] = []): Promise<string[]> {
    const expired: string[] = [];
    const d = lifetimeMs / 86_400_000;
    const days = Number.isInteger(d) ? `${d} day${d === 1 ? '' : 's'}` : `${Math.round(lifetimeMs / 3_600_000)} h`;
    for (const name of (await readdir(this.paths.out).catch(() => [] as string[])).sort()) {
      if (!JOB_ID_RE.test(name)) continue;
      let made = parseInt(name.slice(0, 12), 16);
      // made "in the future" (this clock was ahead and set back since, or a bad id): its
      // lifetime counts from its arrival in out/ by this clock, not never
      if (made > now.getTime()) made = await this.arrivedAt(name, now);
      // made by a clock that has stepped forward since (a clock weeks behind set by NTP):
      // its age on today's clock (clock.ts), not the weeks of the step
      else made = onTodaysClock(made, steps);
      // ids sort by time, but one counted from its arrival may be older than those before it
      if (now.getTime() - made <= lifetimeMs) continue;
      // `mailbag retry` put it back: its lifetime counts from then (the runner's record)
      const retried = await this.retriedAt(name);
      if (retried !== undefined && now.getTime() - retried <= lifetimeMs) continue;
      if (await this.failQueuedJob(name, `not delivered to ${this.peer} within ${days}`, '4.4.7', now)) expired.push(name);
    }
    return expired;
  }

  /**
   * When a queued job whose id time lies ahead of `now` came into out/: its mtime, or, when
   * that lies ahead too (written while this clock was ahead), `now`, set as its mtime so
   * that its lifetime counts from the first time it was seen so (a lost update: from a
   * later one).
   */
  private async arrivedAt(id: string, now: Date): Promise<number> {
    const path = join(this.paths.out, id);
    try {
      const m = (await stat(path)).mtimeMs;
      if (m <= now.getTime()) return m;
      await utimes(path, now, now);
    } catch {
      // gone meanwhile (sent), or not stat-able: counted from now, as a job just seen
    }
    return now.getTime();
  }

  /** When `mailbag retry` last put this queued job back (its run record), if it did. */
  private async retriedAt(id: string): Promise<number | undefined> {
    try {
      const text = await readFile(join(this.paths.root, 'run', this.peer, id), 'utf8');
      if (!text.startsWith('mailbag-run 1\n')) return undefined;
      const at = (JSON.parse(text.slice(text.indexOf('\n') + 1)) as { retriedAt?: unknown }).retriedAt;
      const t = typeof at === 'string' ? Date.parse(at) : NaN;
      return Number.isNaN(t) ? undefined : t;
    } catch {
      return undefined;
    }
  }

  /**
   * The jobs to send one per bag (ALONE_FILE), each with how many times a bag of it alone
   * was refused `bad-hash`; only those still queued. Read by the sender at its start.
   */
  async aloneJobs(): Promise<Map<string, number>> {
    const path = join(this.bagsOut, ALONE_FILE);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw new SpoolError(`reading ${path}`, { cause: err });
    }
    const lines = text.split('\n');
    if (lines[0] !== ALONE_MAGIC) throw new SpoolError(`${path}: not a ${ALONE_MAGIC} file (it starts ${JSON.stringify(lines[0]!.slice(0, 40))}); remove it to send its jobs in bags of many again`);
    const out = new Map<string, number>();
    let gone = 0;
    for (const line of lines.slice(1)) {
      if (line === '') continue;
      const m = /^(\S+) (\d{1,3})$/.exec(line);
      if (m && JOB_ID_RE.test(m[1]!) && sizeOfSync(join(this.paths.out, m[1]!)) !== undefined) out.set(m[1]!, Number(m[2]));
      else gone++;
    }
    // jobs acknowledged, failed or removed since: the list shrinks (and goes, once empty)
    if (gone > 0) await this.setAloneJobs(out);
    return out;
  }

  /**
   * Write the jobs to send one per bag (commit function: tmp, fsync, rename, directory
   * fsync); none left removes the file. Written once per session, at its end, before the
   * bags refused as a whole in it are forgotten: a crash between leaves pending bags of
   * jobs listed here, which the sender forgets (those of several jobs) or offers again.
   */
  async setAloneJobs(jobs: ReadonlyMap<string, number>): Promise<void> {
    const path = join(this.bagsOut, ALONE_FILE);
    const live = [...jobs].filter(([id]) => sizeOfSync(join(this.paths.out, id)) !== undefined);
    if (live.length === 0) {
      if (sizeOfSync(path) === undefined) return;
      await rmQuiet(path);
      await fsyncDir(this.bagsOut);
      return;
    }
    const text = `${ALONE_MAGIC}\n${live.map(([id, n]) => `${id} ${Math.min(n, 999)}\n`).join('')}`;
    await commitFile(path, Buffer.from(text), { tmpDir: this.paths.tmp, label: 'alone' });
  }

  /** Forget a bag (its jobs stay queued and go in a new bag next time). */
  async discardBag(bag: string): Promise<void> {
    await rmQuiet(join(this.bagsOut, `${bag}.bag`));
    await rmQuiet(join(this.bagsOut, `${bag}.jobs`));
    await fsyncDir(this.bagsOut);
  }

  // ----- receiver -----

  private async recoverIncoming(): Promise<void> {
    for (const name of await readdir(this.bagsIn)) {
      const d = /^([0-9a-f]{64})\.d$/.exec(name);
      if (d) {
        const hash = d[1]!;
        if (this.book.hasBag(hash)) await this.moveStaged(hash);
        else await rmQuiet(join(this.bagsIn, name));
        continue;
      }
      const p = /^([0-9a-f]{64})\.part$/.exec(name);
      if (p && (this.book.hasBag(p[1]!) || (await this.abandoned(join(this.bagsIn, name))))) await rmQuiet(join(this.bagsIn, name));
      if (!d && !p) await rmQuiet(join(this.bagsIn, name));
    }
  }

  /**
   * A partial not written to for longer than the ledger's retention (S5): its sender has
   * forgotten the bag (refused here, or discarded: a job removed, caps changed), or would
   * have offered it again at any session since, so nobody resumes it; deleted, or each
   * such bag would keep its bytes in bags/in/PEER/ for good. Offered after all, it is
   * simply sent again from byte 0.
   */
  private async abandoned(path: string): Promise<boolean> {
    try {
      return Date.now() - (await stat(path)).mtimeMs > this.options.ledgerRetentionMs;
    } catch {
      return false;
    }
  }

  hasBag(bag: string): boolean {
    return this.book.hasBag(bag);
  }

  /**
   * For a bag the ledger holds: true when this session committed it or answered `have`
   * for it already (an honest sender offers a bag once a session); marks it answered.
   */
  answeredBefore(bag: string): boolean {
    return this.book.answeredBefore(bag);
  }

  /**
   * Remove the partial file of a bag refused at its offer (too big, a codec we do not
   * read): its sender forgets such a bag (docs/protocol.md §3), so nobody would resume it
   * and it would stay until ledger_retention (S5).
   */
  async dropPartial(bag: string): Promise<void> {
    await rmQuiet(this.partPath(bag));
  }

  private partPath(bag: string): string {
    return join(this.bagsIn, `${bag}.part`);
  }

  /**
   * How many bytes of this bag we hold (a partial longer than the bag is deleted: 0). Not
   * through a symbolic link, nor of anything but a plain file (req-sec11: a link planted
   * there would have DATA written, and staged, through it): such an entry is removed, 0.
   */
  async partialLength(bag: string, size: number): Promise<number> {
    let st: fs.Stats;
    try {
      st = await lstat(this.partPath(bag));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    if (!st.isFile() || st.size > size) {
      await rmQuiet(this.partPath(bag));
      return 0;
    }
    return st.size;
  }

  /**
   * A bag of `jobs` jobs has been answered: one of SYNCFS_MIN or more is made durable with
   * a syncfs on the stage worker, whose helper shell starts now, while the bag arrives
   * (asked once a session; nothing where fsyncs will be used instead).
   */
  expectCommit(jobs: number): void {
    if (jobs < SYNCFS_MIN || !syncfsWorks || this.syncfsWarmed || this.where() !== 'worker') return;
    this.syncfsWarmed = true;
    warmSyncfsOnWorker();
  }

  private syncfsWarmed = false;

  /** Open the partial file for appending bytes from `from` on (never through a symbolic link). */
  async openPartial(bag: string, from: number): Promise<PartialWriter> {
    const fh = await open(this.partPath(bag), constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    if (from === 0) await fh.truncate(0);
    return new PartialWriter(fh, from);
  }

  /**
   * Check, validate and commit a complete bag (§5 steps 1–5). Throws BagRefusal when the
   * bag is refused (nothing of it committed); other errors are local failures.
   */
  async commitBag(bag: string, codec: BagCodec, caps: ReceiveCaps): Promise<CommitOutcome> {
    return this.finishCommit(await this.stageBag(bag, codec, caps));
  }

  /**
   * §5 steps 1–2 for a complete partial: check the hash, read and validate the bag, write
   * every job not in the ledger into `HASH.d/` (not yet durable). Several bags may be
   * staged at once, each in its own directory; finishCommit() of each must then run one
   * at a time.
   */
  async stageBag(bag: string, codec: BagCodec, caps: ReceiveCaps): Promise<StagedBag> {
    const size = (await sizeOf(this.partPath(bag))) ?? 0;
    return this.beginStage(bag, codec, caps, size, size).done;
  }

  /**
   * Start staging bag HASH of `size` bytes while its bytes arrive (§5 steps 1–2): a
   * stager reads the partial file from its byte 0 as it grows (the session reports each
   * write with grew(); the bytes come from the page cache, and a stager behind the link
   * costs disk, not memory), through the validating bag reader, and writes each new job
   * into `HASH.d/`. Its `done` settles when all `size` bytes have been read: with the bag
   * staged when their SHA-256 matches and every entry was good, else with a BagRefusal
   * (`bad-hash` first: a bag damaged on its way is never taken for a hostile one).
   * Nothing is committed here; `available` is what the partial already holds.
   */
  beginStage(bag: string, codec: BagCodec, caps: ReceiveCaps, size: number, available: number): Stager {
    const staging = join(this.bagsIn, `${bag}.d`);
    const req: StageRequest = { bag, codec, caps, site: this.site, peer: this.peer, accept: this.options.accept, part: this.partPath(bag), staging, size };
    const staged = (o: StageOutcome): StagedBag => ({
      bag,
      staging,
      committed: o.committed,
      sizes: new Map(o.committed.map((id, i) => [id, o.sizes[i]!])),
      duplicates: o.duplicates,
      bytes: o.bytes,
    });
    if (this.where() === 'worker') {
      // on the stage worker thread (stage-ops.ts, stage-bag.ts): hash, decompression,
      // validation and the creates run there, this thread only writes the partial and
      // tells the worker how far it has grown. The ledger is this thread's: a job it
      // already holds is staged there and dropped as a duplicate by commitStaged()
      const w = stageOnWorker(req, available);
      const done = w.done.then(
        (r) => {
          if (!r.ok) throw fromStageFailure(r);
          return staged(r.outcome);
        },
        async (err: unknown) => {
          // the worker stopped or hung mid-stage: what it staged is removed here (the
          // stager's own clean-up did not run); nothing of it was committed
          await rmQuiet(staging);
          throw err;
        },
      );
      done.catch(() => {});
      return { done, grew: (n) => w.grew(n), stop: () => w.stop() };
    }
    const growth = new LocalGrowth(available);
    const source = new PartialSource(req.part, size, growth);
    const done = stageFrom(source, req, this.ops(), (id) => this.book.hasJob(id)).then(staged);
    done.catch(() => {});
    return { done, grew: (n) => growth.grew(n), stop: () => growth.stop() };
  }

  /**
   * §5 steps 2 (durability) to 6 for a staged bag: commitStaged(), then moveCommitted().
   */
  async finishCommit(s: StagedBag): Promise<CommitOutcome> {
    const r = await this.commitStaged(s);
    await this.moveCommitted(s.bag);
    return r;
  }

  /**
   * §5 steps 2 (durability) and 3 for a staged bag: make the staged jobs durable and
   * record the ledger line (the commit point); the jobs are then the receiver's, in
   * `HASH.d/` until moveCommitted() (or the recovery) puts them into in/PEER/. One at a
   * time: a job that another bag committed since this one was staged is dropped here as
   * a duplicate, so it is never committed twice.
   */
  async commitStaged(s: StagedBag): Promise<CommitOutcome> {
    const { bag, staging } = s;
    let { duplicates, bytes } = s;
    const committed: string[] = [];
    for (const id of s.committed) {
      if (this.book.hasJob(id)) {
        await rmQuiet(join(staging, id));
        duplicates++;
        bytes -= s.sizes.get(id) ?? 0;
      } else committed.push(id);
    }
    // every staged job durable before the commit point: one syncfs of the spool's file
    // system for a bag of many jobs, else fsyncs issued together (one journal commit)
    // (a syncfs also wrote the directory's entries; fsyncs of the files did not). The ACK
    // follows the ledger line before the moves into in/PEER/: HASH.d/'s own entry (a plain
    // mkdir) must be durable in bags/in/PEER/ too, or a power cut after the ACK can lose it
    if (!(await syncStaged(staging, committed.map((id) => join(staging, id)), this.where()))) {
      await fsyncDir(staging);
      await fsyncDir(this.bagsIn);
    }
    faultPoint('session-after-stage');
    // 3. the commit point
    await this.book.record(bag, committed);
    faultPoint('session-after-commit');
    return { committed, duplicates, bytes };
  }

  /** §5 steps 5–6 for a committed bag: its jobs into in/PEER/, then `HASH.d/` and `HASH.part` removed. */
  async moveCommitted(bag: string): Promise<void> {
    if (!this.book.hasBag(bag)) throw new MailbagError('internal', `bag ${bag.slice(0, 12)} moved before it was committed`);
    await this.moveStaged(bag);
  }

  /** Remove what stageBag() wrote for a bag that will not be committed now. */
  async dropStaged(s: StagedBag): Promise<void> {
    await rmQuiet(s.staging);
  }

  private async moveStaged(bag: string): Promise<void> {
    const staging = join(this.bagsIn, `${bag}.d`);
    const names = await readdir(staging).catch(() => [] as string[]);
    // each rename is on its own; the order among them does not matter (the ledger
    // already holds the bag). One at a time, on this thread, which also makes the creates
    // of a stager on the stage worker (renames racing in one directory spin on its lock),
    // with a turn for the link every YIELD_EVERY: the stage worker meanwhile stages the
    // next bag (before, the worker made the moves and this thread staged)
    const stray: string[] = [];
    await eachSync(names, (name) => {
      if (!JOB_ID_RE.test(name)) {
        stray.push(name);
        return;
      }
      try {
        fs.renameSync(join(staging, name), join(this.paths.in, name));
      } catch (err) {
        throw new SpoolError(`renaming ${join(staging, name)}: ${(err as Error).message}`, { cause: err });
      }
    });
    for (const name of stray) await rmQuiet(join(staging, name));
    // both directories: in/PEER/'s new entries, and HASH.d/'s removed ones, so that a
    // power cut cannot bring back into HASH.d/ a job the runner may already have
    // delivered (the recovery would move it in again and it would run twice)
    await Promise.all([fsyncDir(this.paths.in), fsyncDir(staging)]);
    // not fsynced: an empty HASH.d/ or a HASH.part that comes back after a crash is
    // removed by the recovery (the ledger holds the bag)
    await rmQuiet(staging);
    await rmQuiet(this.partPath(bag));
  }

  /** Jobs waiting in out/PEER/. */
  async queuedCount(): Promise<number> {
    return (await readdir(this.paths.out)).filter((n) => JOB_ID_RE.test(n)).length;
  }
}

/** staged jobs of one bag from which one syncfs is cheaper than an fsync each */
const SYNCFS_MIN = 16;
/** false once `sync -f` failed here: fsync each from then on */
let syncfsWorks = true;

/**
 * Make staged files durable. For many files, one syncfs(2) of their file system
 * (coreutils `sync -f DIR`): measured on ext4, 488 staged corpus jobs took ~20 ms this
 * way against 115-225 ms with one fsync each. Where `sync -f` is missing or fails, one
 * fsync per file, as before. True when the whole file system was synced (the staging
 * directory's entries too).
 */
async function syncStaged(dir: string, paths: string[], where: 'worker' | 'caller'): Promise<boolean> {
  if (paths.length >= SYNCFS_MIN && syncfsWorks) {
    if (where === 'worker') {
      // started by the stage worker: the fork of this process (~100 MB) costs this thread
      // (the read loop's) nothing
      if (await syncfsOnWorker(dir)) return true;
      syncfsWorks = false;
    } else {
      try {
        await execFileP('sync', ['-f', dir], { timeout: 120_000 });
        return true;
      } catch {
        syncfsWorks = false;
      }
    }
  }
  await syncAll(paths);
  return false;
}

/** fsync many files, several at a time (callback fs: no FileHandle per file). */
async function syncAll(paths: string[], width = 32): Promise<void> {
  await forEach(paths, width, (p) => syncFile(p));
}

/** Run `task` on every item, at most `width` at once; the first failure is thrown (after the running ones settle). */
async function forEach<T>(items: readonly T[], width: number, task: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failure) {
      try {
        await task(items[next++]!);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  if (failure) throw failure.err;
}

function syncFile(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.open(path, 'r', (err, fd) => {
      if (err) return reject(err);
      fs.fsync(fd, (syncErr) => fs.close(fd, (closeErr) => (syncErr ?? closeErr ? reject(syncErr ?? closeErr) : resolve())));
    });
  });
}

/** A new file (O_EXCL, 0600) with these bytes, fsynced. */
async function writeSynced(path: string, data: Buffer): Promise<void> {
  const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    let off = 0;
    while (off < data.length) off += (await fh.write(data, off, data.length - off)).bytesWritten;
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Run a cheap synchronous file-system step on every item, one at a time, giving the
 * event loop a turn every YIELD_EVERY items (the link keeps being served).
 */
async function eachSync<T>(items: readonly T[], step: (item: T) => void): Promise<void> {
  for (let i = 0; i < items.length; i++) {
    step(items[i]!);
    if (i % YIELD_EVERY === YIELD_EVERY - 1) await new Promise<void>((r) => setImmediate(r));
  }
}
const YIELD_EVERY = 32;

/** A bag being staged while its bytes arrive (SessionStore.beginStage). */
export interface Stager {
  /** staged (hash matched, every entry good), or a BagRefusal, or a local failure */
  readonly done: Promise<StagedBag>;
  /** the partial file now holds this many bytes */
  grew(length: number): void;
  /** the session ended: stop reading (done rejects, HASH.d/ is removed) */
  stop(): void;
}

/** Appends a partial bag's bytes; data is made durable by sync() (before the hash check). */
export class PartialWriter {
  constructor(private readonly fh: FileHandle, public length: number) {}

  /**
   * Synchronous, into the page cache (a DATA frame is at most 256 KiB): the read loop
   * writes every frame of what it read and sends PROGRESS at once, instead of waiting a
   * turn of libuv's pool per frame behind a stager's work on the same thread.
   */
  async write(chunk: Buffer): Promise<void> {
    let off = 0;
    while (off < chunk.length) off += fs.writeSync(this.fh.fd, chunk, off, chunk.length - off, this.length + off);
    this.length += chunk.length;
  }

  async close(sync: boolean): Promise<void> {
    if (sync) await this.fh.sync();
    await this.fh.close();
  }
}

/**
 * Whether a pending bag may be offered to a peer with these codecs and caps (a bag built
 * in an earlier session, or before the peer's HELLO with this side's own defaults).
 */
export function bagFits(p: PendingBag, codecs: readonly BagCodec[], caps: ReceiveCaps): boolean {
  return (
    codecs.includes(p.codec) &&
    p.size <= caps.maxBag &&
    p.jobs.length <= caps.maxJobs &&
    p.sizes.every((n) => n <= caps.maxJob + 1024 * 1024) &&
    expandedSizeOf(p.sizes) <= caps.maxExpanded
  );
}

/**
 * The most bytes a bag of `expanded` tar bytes can compress to with any of our codecs,
 * whatever the mail (incompressible attachments): brotli adds at most a few bytes per
 * 16 KiB block, gzip 5 per stored block of 64 KiB, and both a header and a trailer; our
 * encoders flush only at the end (test/unit/session/plan.test.ts checks the bound). Bags of several jobs are kept
 * under the receiver's cap on a bag's size by this bound, so only a single job can ever
 * make a bag the receiver refuses as too big.
 */
export function worstCompressed(expanded: number): number {
  return expanded + 8 * Math.ceil(expanded / 16384) + 1024;
}

/** Split queued jobs into bags: small ones together (oldest first), each large one alone, after. */
export function planBags(
  jobs: QueuedJob[],
  caps: { maxBag: number; maxExpanded: number; maxJobs: number; maxJob: number },
  alone: { has(id: string): boolean } = new Set<string>(),
): { bags: QueuedJob[][]; held: QueuedJob[] } {
  const bags: QueuedJob[][] = [];
  const large: QueuedJob[][] = [];
  // jobs of a bag the peer refused as a whole (SessionStore.aloneJobs): one per bag, after
  // the small mail's bags, so the one at fault is refused alone
  const single: QueuedJob[][] = [];
  const held: QueuedJob[] = [];
  const limit = Math.max(1, Math.min(BAG_TARGET, caps.maxBag, caps.maxExpanded));
  // the first bags are small, so the receiver starts committing while later ones are
  // still being built: 512 KiB, 2 MiB, then BAG_TARGET
  const targetFor = (n: number): number => Math.min(limit, FIRST_BAG * 4 ** n);
  let cur: QueuedJob[] = [];
  let curBytes = 0;
  let curExpanded = expandedSizeOf([]);
  for (const j of jobs) {
    // a job file holds the header too; the receiver's cap is on the payload, so allow a header's worth
    if (j.size > caps.maxJob + 1024 * 1024 || expandedSizeOf([j.size]) > caps.maxExpanded) {
      held.push(j);
      continue;
    }
    if (j.size >= LARGE_JOB) {
      large.push([j]);
      continue;
    }
    if (alone.has(j.id)) {
      single.push([j]);
      continue;
    }
    const grows = expandedSizeOf([j.size]) - expandedSizeOf([]);
    if (
      cur.length > 0 &&
      (curBytes + j.size > targetFor(bags.length) || cur.length + 1 > caps.maxJobs || curExpanded + grows > caps.maxExpanded || worstCompressed(curExpanded + grows) > caps.maxBag)
    ) {
      bags.push(cur);
      cur = [];
      curBytes = 0;
      curExpanded = expandedSizeOf([]);
    }
    cur.push(j);
    curBytes += j.size;
    curExpanded += grows;
  }
  if (cur.length) bags.push(cur);
  large.sort((a, b) => a[0]!.size - b[0]!.size);
  return { bags: [...bags, ...single, ...large], held };
}

