// Where rmail and rsmtp keep their copy of stdin while they deliver it (the MTA clients
// read it again, transaction by transaction). With a spool: SPOOL/tmp/ under a writer's
// name (PID.…), which the spool's start-up cleanup removes once this process is gone,
// so one killed mid-delivery (SIGKILL, an OOM kill) leaves nothing for ever. Without a
// usable spool: a private directory in $TMPDIR, as before.

import { lstat, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Spool, tmpName } from '../spool/index.js';

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
