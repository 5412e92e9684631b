// Fault injection for the fault tests: when MAILBAG_FAULT names a point, the process
// kills itself with SIGKILL there, exactly as a crash or power cut would stop it (no
// exit handlers, no flushing). The variable is read once at load, so an unset variable
// costs one string comparison per point.

const armed = process.env.MAILBAG_FAULT;

/**
 * The commit function's points, in the order it passes them: `mid-write` after the
 * first chunk of streamed content (the file is partial), `after-write` once all of it
 * is written, `after-fsync`, `after-rename` (for a job: linked into place, tmp name not
 * yet removed) and `after-dir-fsync`.
 */
export const FAULT_POINTS = ['mid-write', 'after-write', 'after-fsync', 'after-rename', 'after-dir-fsync'] as const;

/**
 * GroupCommit's points, once per batch: `batch-before-fsync` (every file of the batch
 * written, none fsynced), `batch-after-fsync` (all fsynced, none in place),
 * `batch-after-rename` (all linked into place, directories not yet fsynced) and
 * `batch-after-dir-fsync` (durable, no caller told yet).
 */
export const BATCH_FAULT_POINTS = ['batch-before-fsync', 'batch-after-fsync', 'batch-after-rename', 'batch-after-dir-fsync'] as const;

/** Kill this process with SIGKILL when MAILBAG_FAULT equals `name`; otherwise nothing. */
export function faultPoint(name: string): void {
  if (armed !== undefined && armed === name) process.kill(process.pid, 'SIGKILL');
}
