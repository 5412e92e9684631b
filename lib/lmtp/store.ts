// What the LMTP listener needs from the spool, as an interface so the protocol side is
// tested with an in-memory store and a failing one: begin a job for a peer, feed it
// the payload chunk by chunk, then commit (durable when it resolves) or abort (nothing
// left). The spool adapter (spool-store.ts) implements it on the spool's commit function.

/** The parts of a job header the listener decides; the store adds id, from and created. */
export interface JobDraftHeader {
  to: string;
  command: 'rsmtp';
  args: string[];
  sender: string;
  recipients: string[];
}

export interface JobDraft {
  /**
   * append payload bytes; fails with the spool's error (ENOSPC → SpoolError 'spool-full'):
   * a store that writes synchronously (the spool's) returns nothing and throws, one that
   * writes asynchronously returns a promise that rejects
   */
  write(chunk: Buffer): void | Promise<void>;
  /** fsync, rename into out/PEER, fsync the directory; resolves with the job id once durable */
  commit(): Promise<string>;
  /** drop the partial job: nothing of it stays in the spool */
  abort(): Promise<void>;
}

export interface JobStore {
  begin(header: JobDraftHeader, opts: { maxSize: number }): Promise<JobDraft>;
}

/**
 * The LMTP dedup ledger: which (peer, payload digest) pairs became jobs lately, so a
 * transaction the MTA sends again after losing our reply is not queued twice.
 */
export interface DedupLedger {
  /** the job id recorded for this digest, if any */
  find(peer: string, digest: string): Promise<string | undefined>;
  /** record it, once the job is durable (the spool's ledger does not fsync it: see docs/spool.md, L4) */
  record(peer: string, digest: string, jobId: string): Promise<void>;
}
