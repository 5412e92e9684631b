// Where rmail and rsmtp keep their copy of stdin while they deliver it (the MTA clients
// read it again, transaction by transaction). With a spool: SPOOL/tmp/ under a writer's
// name (PID.…), which the spool's start-up cleanup removes once this process is gone,
// so one killed mid-delivery (SIGKILL, an OOM kill) leaves nothing for ever. Without a
// usable spool: a private directory in $TMPDIR, as before.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tmpName, type Spool } from '../spool/index.js';

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
