// The crash-safe spool: layout, THE commit function, job queues, locks, cleanup and
// fault points. Every state a crash can leave is listed in docs/spool.md.

export {
  Spool,
  readJobFile,
  QUEUES,
  SPOOL_DIRS,
  SPOOL_MAGIC,
  SPOOL_VERSION,
  SPOOL_MARKER,
  type Queue,
  type JobRef,
  type OpenJob,
  type QueueStats,
  type PeerStats,
  type OpenOptions,
  type WriteJobOptions,
} from './spool.js';
export { commitFile, fsyncDir, ensureDir, tmpName, spoolErrorFrom, FILE_MODE, DIR_MODE, type Content, type CommitOptions, type CommitResult } from './commit.js';
export { acquireLock, parseLock, LOCK_MAGIC_LINE, type Lock, type LockInfo, type LockOptions } from './lock.js';
export { cleanupTmp, pidAlive, type CleanupReport } from './cleanup.js';
export { faultPoint, FAULT_POINTS } from './fault.js';
export { holderAlive } from './process.js';
