// Where rmail and rsmtp keep their copy of stdin while they deliver it (the MTA clients
// read it again, transaction by transaction). With a spool: SPOOL/tmp/ under a writer's
// name (PID.…), which the spool's start-up cleanup removes once this process is gone,
// so one killed mid-delivery (SIGKILL, an OOM kill) leaves nothing for ever. Without a
// usable spool: a private directory in $TMPDIR, as before.

import { lstat, mkdtemp, open, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { asMailbagError } from '../errors.js';
import { Spool, spoolErrorFrom, tmpName } from '../spool/index.js';

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
/** a reserve's cap: a larger batch has room for its first records only */
const MAX_RESERVE = 64 * 1024 * 1024;

/**
 * Room for progress records, taken before the MTA gets anything (rsmtp, rmail): a disk that
 * fills while the MTA has the mail must not leave what it accepted unrecorded, or the
 * caller's retry delivers it again. A file in SPOOL/tmp/ (the spool's cleanup removes it
 * after a kill) of the records' sizes, each rounded up to the file system's block, plus
 * one block for the directory and one record for a rewrite's new copy. Written, not
 * synced: the file system has given it blocks (or, delayed, counted them), which its
 * removal hands back. One that cannot be written is the spool full before anything was
 * handed over (75).
 */
export class RecordRoom {
  private staged: Staged | undefined;

  private constructor(staged: Staged) {
    this.staged = staged;
  }

  /** `records`: each record's largest size in bytes */
  static async reserve(spool: Spool, label: string, records: readonly number[]): Promise<RecordRoom> {
    const block = Math.max(4096, Number((await statfs(spool.tmpDir).catch(() => undefined))?.bsize ?? 4096));
    const round = (n: number): number => Math.ceil(n / block) * block;
    let size = block;
    let largest = 0;
    for (const r of records) {
      largest = Math.max(largest, round(r));
      size += round(r);
      if (size >= MAX_RESERVE) break;
    }
    size = Math.min(size + largest, MAX_RESERVE);
    const staged = await stageFile(spool, label);
    try {
      const fh = await open(staged.path, 'wx', 0o600);
      try {
        const chunk = Buffer.alloc(Math.min(size, 1 << 20));
        for (let at = 0; at < size; at += chunk.length) await fh.write(chunk, 0, Math.min(chunk.length, size - at), at);
      } finally {
        await fh.close();
      }
    } catch (err) {
      await staged.remove();
      throw spoolErrorFrom(err, 'reserving room for the progress records');
    }
    return new RecordRoom(staged);
  }

  /**
   * `write()`; when it meets a full spool, the room is given back and it is run once more.
   * `said` gets one line when that happens.
   */
  async write(write: () => Promise<void>, said: (line: string) => void): Promise<void> {
    try {
      await write();
    } catch (err) {
      if (!this.staged || asMailbagError(err).code !== 'spool-full') throw err;
      await this.release();
      said(`${(err as Error).message}: progress kept in the room reserved for it`);
      await write();
    }
  }

  async release(): Promise<void> {
    const s = this.staged;
    this.staged = undefined;
    await s?.remove();
  }
}

/** the largest progress record of a transaction to these recipients (JSON escapes a character to at most 6) */
export function recordBound(recipients: readonly string[]): number {
  return 512 + recipients.reduce((n, r) => n + 6 * (Buffer.byteLength(r) + MAX_RECORDED_DIAGNOSTIC) + 100, 0);
}
