// The LMTP listener's JobStore and DedupLedger on the real spool. With lmtpd's journal
// (journal.ts) a job of up to 128 KiB is gathered in memory and committed into the
// journal with the jobs of the other transactions that ended meanwhile (one flush), then
// written into out/PEER. Otherwise, and for a larger job, it is staged in the spool's
// tmp/ as the message arrives (bounded memory: written in 64 KiB pieces) and committed
// by a GroupCommit: fsynced with the others, linked into out/PEER and its directory
// fsynced. Either way commit() resolves only once the job is durable (promise 1). An
// aborted job leaves nothing behind.
// The dedup ledger on the spool is SpoolLedger (ledger.ts).

import { InputError } from '../errors.js';
import { encodeJobHeader } from '../job/header.js';
import { newJobId } from '../job/id.js';
import { LIMITS } from '../limits.js';
import { GroupCommit } from '../spool/commit.js';
import type { Spool } from '../spool/spool.js';
import type { LmtpJournal } from './journal.js';
import type { JobDraft, JobDraftHeader, JobStore } from './store.js';

export class SpoolJobStore implements JobStore {
  /** out/PEER directories known to exist (made once, forgotten when a commit fails) */
  private readonly dirs = new Set<string>();

  constructor(
    private readonly spool: Spool,
    private readonly site: string,
    private readonly committer: GroupCommit = new GroupCommit(),
    /** the clock for job ids and `created` (tests) */
    private readonly now: () => number = Date.now,
    /** lmtpd's write-ahead journal (journal.ts): jobs up to its limit are made durable there, larger ones by the committer */
    private readonly journal?: LmtpJournal,
  ) {}

  async begin(h: JobDraftHeader, opts: { maxSize: number }): Promise<JobDraft> {
    const t = this.now();
    const id = newJobId(t);
    const header = { id, from: this.site, to: h.to, created: new Date(t).toISOString(), command: h.command, args: h.args, sender: h.sender, recipients: h.recipients };
    const head = encodeJobHeader(header);
    const ref = this.spool.ref('out', h.to, id);
    if (!this.dirs.has(h.to)) {
      await this.spool.ensureDir('out', h.to);
      this.dirs.add(h.to);
    }
    const max = Math.min(opts.maxSize, LIMITS.maxJobSizeCeiling);
    const stageOpts = { tmpDir: this.spool.tmpDir, noReplace: true, maxSize: head.length + max, label: 'job' };
    const staged = this.journal ? this.journal.stage(ref.path, stageOpts) : await this.committer.stage(ref.path, stageOpts);
    const tooBig = (err: unknown): unknown =>
      err instanceof InputError && err.code === 'too-big' ? new InputError('too-big', `message is larger than the limit of ${max} bytes`, { cause: err }) : err;
    try {
      staged.write(head);
    } catch (err) {
      throw tooBig(err);
    }
    return {
      // synchronous: staged.write gathers the bytes and writes them without a thread-pool
      // round trip, so no promise per chunk
      write: (chunk) => {
        try {
          staged.write(chunk);
        } catch (err) {
          throw tooBig(err);
        }
      },
      commit: async () => {
        try {
          await staged.commit();
        } catch (err) {
          // the directory may have gone: make it again next time
          this.dirs.delete(h.to);
          throw tooBig(err);
        }
        return id;
      },
      abort: async () => {
        staged.abort();
      },
    };
  }
}
