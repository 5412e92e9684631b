// The LMTP listener's JobStore and DedupLedger on the real spool. A job is staged in
// the spool's tmp/ as the message arrives (bounded memory: written in 64 KiB pieces)
// and committed by a GroupCommit: with the jobs of the other transactions that ended
// meanwhile it is fsynced, linked into out/PEER and its directory fsynced, and only then
// does commit() resolve (promise 1). An aborted job leaves nothing behind.
// Ledger entries are small files `lmtp-ledger/PEER/DIGEST`, written whole (tmp, rename)
// but not fsynced: an entry only saves a duplicate, and after a crash recover() rebuilds
// the entries of the jobs committed last from the jobs themselves.

import { createHash } from 'node:crypto';
import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { readdir, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, MailbagError } from '../errors.js';
import { encodeJobHeader } from '../job/header.js';
import { jobIdTime, newJobId } from '../job/id.js';
import { LIMITS } from '../limits.js';
import { GroupCommit, spoolErrorFrom, tmpName } from '../spool/commit.js';
import type { Spool } from '../spool/spool.js';
import type { DedupLedger, JobDraft, JobDraftHeader, JobStore, PreparedEntry } from './store.js';

export class SpoolJobStore implements JobStore {
  /** out/PEER directories known to exist (made once, forgotten when a commit fails) */
  private readonly dirs = new Set<string>();

  constructor(
    private readonly spool: Spool,
    private readonly site: string,
    private readonly committer: GroupCommit = new GroupCommit(),
  ) {}

  async begin(h: JobDraftHeader, opts: { maxSize: number }): Promise<JobDraft> {
    const id = newJobId();
    const header = { id, from: this.site, to: h.to, created: new Date().toISOString(), command: h.command, args: h.args, sender: h.sender, recipients: h.recipients };
    const head = encodeJobHeader(header);
    const ref = this.spool.ref('out', h.to, id);
    if (!this.dirs.has(h.to)) {
      await this.spool.ensureDir('out', h.to);
      this.dirs.add(h.to);
    }
    const max = Math.min(opts.maxSize, LIMITS.maxJobSizeCeiling);
    const staged = await this.committer.stage(ref.path, { tmpDir: this.spool.tmpDir, noReplace: true, maxSize: head.length + max, label: 'job' });
    const tooBig = (err: unknown): unknown =>
      err instanceof InputError && err.code === 'too-big' ? new InputError('too-big', `message is larger than the limit of ${max} bytes`, { cause: err }) : err;
    try {
      staged.write(head);
    } catch (err) {
      throw tooBig(err);
    }
    return {
      id,
      write: async (chunk) => {
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

const LEDGER_DIR = 'lmtp-ledger';
const LEDGER_MAGIC = 'mailbag-lmtp-ledger 1\n';

export class SpoolLedger implements DedupLedger {
  private readonly dirs = new Set<string>();

  constructor(private readonly spool: Spool) {}

  // find and record use synchronous calls: a small file in the page cache, cheaper than
  // a thread-pool round trip each (they run once per accepted message)
  async find(peer: string, digest: string): Promise<string | undefined> {
    let text: string;
    try {
      text = readFileSync(this.spool.path(LEDGER_DIR, peer, digest), 'latin1');
    } catch {
      return undefined;
    }
    if (!text.startsWith(LEDGER_MAGIC)) return undefined;
    return text.slice(LEDGER_MAGIC.length).trim() || undefined;
  }

  private async ensureDirs(peer: string): Promise<void> {
    if (!this.dirs.has(peer)) {
      await this.spool.ensureDir(LEDGER_DIR);
      await this.spool.ensureDir(LEDGER_DIR, peer);
      this.dirs.add(peer);
    }
  }

  /**
   * The entry written under tmp/ while the message arrives (creating a file can wait for
   * a journal commit: in the thread pool, not on the reply path); place() renames it to
   * its digest once the job is durable, the same entry record() writes.
   */
  async prepare(peer: string, jobId: string): Promise<PreparedEntry> {
    await this.ensureDirs(peer);
    const tmp = join(this.spool.tmpDir, tmpName('ledger'));
    try {
      await writeFile(tmp, `${LEDGER_MAGIC}${jobId}\n`, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw spoolErrorFrom(err, 'preparing an LMTP ledger entry');
    }
    let done = false;
    const drop = (): void => {
      done = true;
      try {
        unlinkSync(tmp);
      } catch {
        // gone already
      }
    };
    return {
      place: async (digest) => {
        if (done) throw new MailbagError('internal', 'LMTP ledger entry placed twice');
        done = true;
        try {
          renameSync(tmp, this.spool.path(LEDGER_DIR, peer, digest));
        } catch (err) {
          drop();
          // the directory may have gone: make it again next time
          this.dirs.delete(peer);
          throw spoolErrorFrom(err, 'recording in the LMTP ledger');
        }
      },
      discard: () => {
        if (!done) drop();
      },
    };
  }

  async record(peer: string, digest: string, jobId: string): Promise<void> {
    await this.ensureDirs(peer);
    const tmp = join(this.spool.tmpDir, tmpName('ledger'));
    try {
      writeFileSync(tmp, `${LEDGER_MAGIC}${jobId}\n`, { mode: 0o600, flag: 'wx' });
      renameSync(tmp, this.spool.path(LEDGER_DIR, peer, digest));
    } catch (err) {
      try {
        unlinkSync(tmp);
      } catch {
        // never made
      }
      throw spoolErrorFrom(err, `recording in the LMTP ledger`);
    }
  }

  /**
   * After a crash: a job committed just before the listener died may have no ledger
   * entry yet (the entry is written right after the commit). Jobs are time-sortable, so
   * only the ones made since shortly before the newest entry (or in the last hour, with
   * no entry at all) can lack one; their payload digests are recorded now, before the
   * listener accepts the MTA's retry. Returns how many entries were added.
   */
  async recover(site: string, now = Date.now()): Promise<number> {
    let newest = 0;
    let peers: string[] = [];
    try {
      peers = await readdir(this.spool.path(LEDGER_DIR));
    } catch {
      // no ledger yet
    }
    for (const peer of peers) {
      for (const name of await readdir(this.spool.path(LEDGER_DIR, peer)).catch(() => [] as string[])) {
        const st = await stat(this.spool.path(LEDGER_DIR, peer, name)).catch(() => undefined);
        if (st && st.mtimeMs > newest) newest = st.mtimeMs;
      }
    }
    // jobs committed in parallel with the newest entry (other connections) are covered by the slack
    const since = newest > 0 ? newest - 10 * 60_000 : now - 60 * 60_000;
    let added = 0;
    for (const peer of await this.spool.peers('out')) {
      for (const ref of await this.spool.listJobs('out', peer)) {
        if (jobIdTime(ref.id) < since) continue;
        let job;
        try {
          job = await this.spool.readJob(ref);
        } catch {
          continue; // not ours to judge here; the runner reports bad jobs
        }
        if (job.header.from !== site || job.header.command !== 'rsmtp') continue;
        const hash = createHash('sha256');
        for await (const chunk of job.payload()) hash.update(chunk as Buffer);
        const digest = hash.digest('hex');
        if ((await this.find(peer, digest)) === undefined) {
          await this.record(peer, digest, ref.id);
          added++;
        }
      }
    }
    return added;
  }

  /** Remove entries older than `retentionMs`; returns how many went. */
  async prune(retentionMs: number, now = Date.now()): Promise<number> {
    let removed = 0;
    let peers: string[];
    try {
      peers = await readdir(this.spool.path(LEDGER_DIR));
    } catch {
      return 0;
    }
    for (const peer of peers) {
      const dir = this.spool.path(LEDGER_DIR, peer);
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        continue;
      }
      for (const name of names) {
        const p = join(dir, name);
        try {
          const st = await stat(p);
          if (now - st.mtimeMs > retentionMs) {
            await unlink(p);
            removed++;
          }
        } catch {
          // gone meanwhile
        }
      }
    }
    return removed;
  }
}
