// In-memory JobStore and DedupLedger for the listener's unit tests: committed jobs are
// kept with their payload; a peer can be made to fail on write (ENOSPC) or on commit.

import type { DedupLedger, JobDraft, JobDraftHeader, JobStore } from '../../../lib/lmtp/store.js';
import { SpoolError } from '../../../lib/errors.js';

export interface StoredJob {
  id: string;
  header: JobDraftHeader;
  payload: Buffer;
}

export class MemoryStore implements JobStore {
  readonly jobs: StoredJob[] = [];
  /** drafts begun and not yet committed or aborted */
  open = 0;
  aborted = 0;
  failWrite = new Set<string>();
  failCommit = new Set<string>();
  private n = 0;

  async begin(header: JobDraftHeader, opts: { maxSize: number }): Promise<JobDraft> {
    this.open++;
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (): void => {
      if (!done) {
        done = true;
        this.open--;
      }
    };
    return {
      write: async (chunk) => {
        if (this.failWrite.has(header.to)) {
          throw new SpoolError('cannot write job: no space left on device', { cause: Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' }) });
        }
        size += chunk.length;
        if (size > opts.maxSize) throw new SpoolError('job too big');
        chunks.push(Buffer.from(chunk));
      },
      commit: async () => {
        if (this.failCommit.has(header.to)) throw new SpoolError('fsync failed: EIO');
        const id = `job${String(++this.n).padStart(4, '0')}`;
        this.jobs.push({ id, header, payload: Buffer.concat(chunks) });
        finish();
        return id;
      },
      abort: async () => {
        if (!done) this.aborted++;
        finish();
      },
    };
  }
}

export class MemoryLedger implements DedupLedger {
  readonly entries = new Map<string, string>();
  async find(peer: string, digest: string): Promise<string | undefined> {
    return this.entries.get(`${peer}/${digest}`);
  }
  async record(peer: string, digest: string, jobId: string): Promise<void> {
    this.entries.set(`${peer}/${digest}`, jobId);
  }
}
