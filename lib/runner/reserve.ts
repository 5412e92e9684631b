// Room for a job's progress records, held before the MTA gets any of it (docs/spool.md
// R2a): a spool that fills between the MTA's taking a transaction and the record of it
// would end the attempt with that transaction unrecorded, and the next attempt would hand
// it over again. One set of files in SPOOL/tmp/ per worker, kept from job to job (a job
// whose record is not needed, an rmail job accepted whole, costs nothing), grown or made
// again before a job that needs more; the spool's cleanup removes them after a kill. A
// live reserve is written to (its mtime set) every hour, so another process's cleanup,
// which takes a live pid's file not written to for 24 hours for a reused pid's
// (lib/spool/cleanup.ts), never takes the room of a run that lasts longer. The
// front doors rsmtp and rmail hold one for their run's records (RecordReserve.reserve). A
// record that meets a full spool is written *into* one of them in place and renamed to its
// name, so no block goes back to the file system for another writer to take first
// (review10a). One that cannot be reserved is the spool full before anything was handed
// over.

import { open, rename, rm, statfs, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { asMailbagError } from '../errors.js';
import { LIMITS } from '../limits.js';
import type { Transaction } from '../deliver/message.js';
import { FILE_MODE, spoolErrorFrom, tmpName, type Spool } from '../spool/index.js';
import { RUN_MAGIC_LINE, statePath, writeState, type RunState } from './state.js';

/** a worker's reserve at most: a larger job has room for its first records only */
const MAX_RESERVE = 64 * 1024 * 1024;
/**
 * How often a live reserve's files are marked written (mtime now): well inside the 24 h
 * after which cleanup takes a file of a live pid for a reused pid's (LIMITS.staleTmpMs)
 */
export const RESERVE_REFRESH_MS = Math.min(60 * 60_000, LIMITS.staleTmpMs / 4);
/** what a record holds besides its transactions (attempts, times, lastError, noticeRetry, failed) */
const RECORD_BASE = 8192;

/** the longest diagnostic a progress record keeps (an MTA's refusal text); longer ones are cut with … */
export const MAX_RECORDED_DIAGNOSTIC = 1000;
/** the characters of diagnostics one transaction's record keeps in all (at least 100 a recipient) */
const MAX_RECORDED_DIAGNOSTICS = 4000;

/**
 * A refusal's text as a record keeps it: control characters as spaces (JSON would escape
 * each to 6 bytes), cut to its share of the transaction's (recordBound counts on both).
 */
export function recordedDiagnostic(text: string, recipients: number): string {
  const cut = Math.max(100, Math.min(MAX_RECORDED_DIAGNOSTIC, Math.floor(MAX_RECORDED_DIAGNOSTICS / Math.max(1, recipients))));
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, ' ');
  return clean.length > cut ? `${clean.slice(0, cut)}…` : clean;
}
/**
 * The largest progress record of a transaction to these recipients: an address JSON-escaped
 * to at most 6 bytes a byte, a recordedDiagnostic (no control characters) to at most 3 a
 * character (UTF-8, or a quote's escape), its status and the separators ~100.
 * `diagnostics` false: a record of accepted recipients only (rmail's).
 */
export function recordBound(recipients: readonly string[], diagnostics = true): number {
  const cut = Math.max(100, Math.min(MAX_RECORDED_DIAGNOSTIC, Math.floor(MAX_RECORDED_DIAGNOSTICS / Math.max(1, recipients.length))));
  return 512 + recipients.reduce((n, r) => n + 6 * Buffer.byteLength(r) + 100 + (diagnostics ? 3 * (cut + 1) : 0), 0);
}

/**
 * The room a job's delivery holds after its hand-over (docs/spool.md R2a): two files, each
 * of its final record's largest size (every transaction's bound). Once a record has needed
 * one, the attempt hands nothing more over and sends no notice (JobRun.run): the one write
 * left, the attempt's end, takes the other. Linear in the job's size (it was two files a
 * transaction of the cumulative size: a square, ~38 MB for 100 transactions).
 */
export function recordSizes(txs: readonly Transaction[]): number[] {
  const size = txs.reduce((n, tx) => n + recordBound(tx.recipients.map((r) => r.address)), RECORD_BASE);
  return [size, size];
}

export class RecordReserve {
  private files: { path: string; size: number }[] = [];
  private block = 0;
  /** marks the files written every RESERVE_REFRESH_MS while there are any (unref'd) */
  private refresher: NodeJS.Timeout | undefined;

  /** `label`: the reserve files' name in SPOOL/tmp/ (run-reserve, rsmtp-reserve, …) */
  constructor(private readonly label = 'run-reserve') {}

  /** a reserve holding a file for each size, made now (rsmtp, rmail: one run's records) */
  static async reserve(spool: Spool, label: string, sizes: readonly number[]): Promise<RecordReserve> {
    const r = new RecordReserve(label);
    await r.ensure(spool, sizes);
    return r;
  }

  /** Hold a file for each size (kept ones reused, grown or added); throws a spool error when the spool has no room. */
  async ensure(spool: Spool, sizes: readonly number[]): Promise<void> {
    if (this.block === 0) this.block = Math.max(4096, Number((await statfs(spool.tmpDir).catch(() => undefined))?.bsize ?? 4096));
    const round = (n: number): number => Math.ceil(n / this.block) * this.block;
    const want: number[] = [];
    let total = 0;
    for (const s of sizes) {
      const r = round(s);
      if (total + r > MAX_RESERVE) break;
      total += r;
      want.push(r);
    }
    want.sort((a, b) => b - a);
    this.files.sort((a, b) => b.size - a.size);
    try {
      for (let i = 0; i < want.length; i++) {
        const f = this.files[i];
        if (f && f.size >= want[i]!) continue;
        if (f) {
          const fh = await open(f.path, 'r+');
          try {
            await fh.write(Buffer.alloc(want[i]! - f.size), 0, want[i]! - f.size, f.size);
          } finally {
            await fh.close();
          }
          f.size = want[i]!;
          continue;
        }
        const path = join(spool.tmpDir, tmpName(this.label));
        const fh = await open(path, 'wx', FILE_MODE);
        const file = { path, size: 0 };
        this.files.push(file);
        try {
          await fh.write(Buffer.alloc(want[i]!), 0, want[i]!, 0);
          file.size = want[i]!;
        } finally {
          await fh.close();
        }
      }
    } catch (err) {
      await this.release();
      throw spoolErrorFrom(err, 'reserving room for the progress records');
    }
    if (this.files.length > 0 && !this.refresher) {
      this.refresher = setInterval(() => void this.refresh(), RESERVE_REFRESH_MS);
      this.refresher.unref();
    }
  }

  /**
   * Mark each file written now: the spool's cleanup then sees a live writer's file, not a
   * day-old one of a reused pid (a run, or one job, may last longer than a day). A file
   * that is gone (removed by hand) is let go: a record that needs it finds no room.
   */
  async refresh(): Promise<void> {
    const now = new Date();
    for (const f of [...this.files]) {
      await utimes(f.path, now, now).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') this.files = this.files.filter((x) => x !== f);
      });
    }
  }

  /**
   * writeState(); when it meets a full spool, the record goes into a reserved file's own
   * blocks (overwritten, cut to its length, synced) renamed to the record's name; `said`
   * gets one line. No reserved file large enough: the error. True when the record took a
   * reserved file (the spool is full).
   */
  async write(spool: Spool, peer: string, id: string, state: RunState, said: (line: string) => void): Promise<boolean> {
    try {
      await writeState(spool, peer, id, state);
      return false;
    } catch (err) {
      if (asMailbagError(err).code !== 'spool-full') throw err;
      const bytes = Buffer.from(RUN_MAGIC_LINE + JSON.stringify(state) + '\n'); // writeState's bytes
      let best = -1;
      for (let i = 0; i < this.files.length; i++) {
        if (this.files[i]!.size >= bytes.length && (best < 0 || this.files[i]!.size < this.files[best]!.size)) best = i;
      }
      if (best < 0) throw err;
      const [f] = this.files.splice(best, 1);
      try {
        const fh = await open(f!.path, 'r+');
        try {
          await fh.write(bytes, 0, bytes.length, 0);
          await fh.truncate(bytes.length);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(f!.path, statePath(spool, peer, id));
        await spool.fsyncDir('run', peer);
      } catch (e) {
        await rm(f!.path, { force: true });
        throw spoolErrorFrom(e, 'writing a progress record into the room reserved for it');
      }
      said(`${(err as Error).message}: progress kept in the room reserved for it`);
      return true;
    }
  }

  async release(): Promise<void> {
    clearInterval(this.refresher);
    this.refresher = undefined;
    for (const f of this.files.splice(0)) await rm(f.path, { force: true });
  }
}
