// The file-system steps a receiver's staging and commit consist of — create a new job file
// with its bytes, rename it, remove it — applied one after another with synchronous calls,
// on whichever thread runs this: the stage worker (lib/session/stage-worker.ts) or, where
// no built worker exists, the caller's own. No fsync here: durability is the caller's step
// (SessionStore.finishCommit), taken only after every operation of a bag has completed.

import fs, { constants } from 'node:fs';

/** One step. `create` writes `len` bytes of the request's data from `off` into a new file (O_EXCL, 0600). */
export type StageOp =
  | { k: 'create'; path: string; off: number; len: number }
  | { k: 'rename'; from: string; to: string }
  | { k: 'unlink'; path: string };

export interface StageOpError {
  code: string | undefined;
  message: string;
  /** the op that failed (index in its request) */
  index: number;
}

/** the outcome of one request: every op applied, or the first that failed (the later ones were not tried) */
export type StageOpsResult = { ok: true; missing: number } | { ok: false; error: StageOpError };

/**
 * Apply `ops` in order. An unlink of a file that is not there counts as `missing`, not as a
 * failure (a removal retried after a crash). Stops at the first failure.
 */
export function applyStageOps(ops: readonly StageOp[], data: Uint8Array | undefined): StageOpsResult {
  let missing = 0;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    try {
      if (op.k === 'create') {
        const fd = fs.openSync(op.path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
        try {
          let off = 0;
          while (off < op.len) off += fs.writeSync(fd, data!, op.off + off, op.len - off);
        } finally {
          fs.closeSync(fd);
        }
      } else if (op.k === 'rename') {
        fs.renameSync(op.from, op.to);
      } else {
        try {
          fs.unlinkSync(op.path);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          missing++;
        }
      }
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return { ok: false, error: { code: e.code, message: e.message ?? String(err), index: i } };
    }
  }
  return { ok: true, missing };
}
