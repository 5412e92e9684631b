// Where rmail and rsmtp keep their copy of stdin while they deliver it (the MTA clients
// read it again, transaction by transaction). With a spool: SPOOL/tmp/ under a writer's
// name (PID.…), which the spool's start-up cleanup removes once this process is gone,
// so one killed mid-delivery (SIGKILL, an OOM kill) leaves nothing for ever. Without a
// usable spool: a private directory in $TMPDIR, as before.

import { lstat, mkdtemp, open, rename, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { asMailbagError } from '../errors.js';
import { RUN_MAGIC_LINE, statePath, writeState, type RunState } from '../runner/state.js';
import { FILE_MODE, Spool, spoolErrorFrom, tmpName } from '../spool/index.js';

/**
 * The spool rmail and rsmtp keep their progress in, if it can be used. One not made yet
 * is no spool (no memory across retries, as documented); one that is there but cannot be
 * opened (not writable, an o+w root, not a spool) is said on stderr, since each retry of
 * a partial delivery may then repeat what was accepted (review9a's L1).
 */
export async function openProgressSpool(config: { readonly spool: string }, command: string, stderr: NodeJS.WritableStream): Promise<Spool | undefined> {
  let path: string;
  try {
    path = config.spool;
  } catch {
    return undefined; // no spool set (an installed package): none, as without one made
  }
  try {
    return await Spool.open(path);
  } catch (err) {
    if (!(await lstat(resolve(path)).catch(() => undefined))) return undefined;
    stderr.write(`${command}: spool not usable, progress not kept: ${(err as Error).message}\n`);
    return undefined;
  }
}

export interface Staged {
  /** the file to write the copy to (not there yet: create it exclusively, 0600) */
  path: string;
  remove(): Promise<void>;
}

export async function stageFile(spool: Spool | undefined, label: string): Promise<Staged> {
  if (spool) {
    const path = join(spool.tmpDir, tmpName(label));
    return { path, remove: () => rm(path, { force: true }) };
  }
  const dir = await mkdtemp(join(tmpdir(), `mailbag-${label}-`));
  return { path: join(dir, 'input'), remove: () => rm(dir, { recursive: true, force: true }) };
}

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
/** a reserve's cap: a larger batch has room for its first records only */
const MAX_RESERVE = 64 * 1024 * 1024;

/**
 * Room for progress records, taken before the MTA gets anything (rsmtp, rmail): a disk that
 * fills while the MTA has the mail must not leave what it accepted unrecorded, or the
 * caller's retry delivers it again. One file in SPOOL/tmp/ per record (the spool's cleanup
 * removes them after a kill), each of that record's largest size rounded up to the file
 * system's block; written, not synced: the file system has given them blocks (or, delayed,
 * counted them). A record that meets a full spool is written *into* one of them in place
 * and renamed to its name: no block goes back to the file system, where a writer still
 * writing (the log that filled it) would take it before the record (review10a). One that
 * cannot be written is the spool full before anything was handed over (75).
 */
export class RecordRoom {
  private constructor(private readonly files: { path: string; size: number }[]) {}

  /** `records`: each record's largest size in bytes */
  static async reserve(spool: Spool, label: string, records: readonly number[]): Promise<RecordRoom> {
    const block = Math.max(4096, Number((await statfs(spool.tmpDir).catch(() => undefined))?.bsize ?? 4096));
    const round = (n: number): number => Math.ceil(n / block) * block;
    const room = new RecordRoom([]);
    let total = 0;
    try {
      for (const r of records) {
        const size = round(r);
        if (total + size > MAX_RESERVE) break;
        total += size;
        const path = join(spool.tmpDir, tmpName(label));
        const fh = await open(path, 'wx', FILE_MODE);
        room.files.push({ path, size });
        try {
          await fh.write(Buffer.alloc(size), 0, size, 0);
        } finally {
          await fh.close();
        }
      }
    } catch (err) {
      await room.release();
      throw spoolErrorFrom(err, 'reserving room for the progress records');
    }
    return room;
  }

  /**
   * writeState(); when it meets a full spool, the record goes into a reserved file's own
   * blocks (overwritten, cut to its length, synced) renamed to the record's name. `said`
   * gets one line when that happens. No reserved file left (or none large enough): the error.
   */
  async write(spool: Spool, dir: string, id: string, state: RunState, said: (line: string) => void): Promise<void> {
    try {
      await writeState(spool, dir, id, state);
    } catch (err) {
      if (asMailbagError(err).code !== 'spool-full') throw err;
      const bytes = Buffer.from(RUN_MAGIC_LINE + JSON.stringify(state) + '\n'); // writeState's bytes
      const i = this.files.findIndex((f) => f.size >= bytes.length);
      if (i < 0) throw err;
      const [f] = this.files.splice(i, 1);
      try {
        const fh = await open(f!.path, 'r+');
        try {
          await fh.write(bytes, 0, bytes.length, 0);
          await fh.truncate(bytes.length);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(f!.path, statePath(spool, dir, id));
        await spool.fsyncDir('run', dir);
      } catch (e) {
        await rm(f!.path, { force: true });
        throw spoolErrorFrom(e, 'writing a progress record into the room reserved for it');
      }
      said(`${(err as Error).message}: progress kept in the room reserved for it`);
    }
  }

  async release(): Promise<void> {
    for (const f of this.files.splice(0)) await rm(f.path, { force: true });
  }
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
