// The LMTP listener's JobStore and DedupLedger on the real spool. A job is written by
// the spool's one commit function (Spool.writeJob: tmp → write → fsync → rename →
// directory fsync) fed from an async iterable the listener pushes chunks into, so the
// message streams to disk as it arrives and an aborted job leaves nothing behind.
// Ledger entries are small files `lmtp-ledger/PEER/DIGEST`, written whole (tmp, rename)
// but not fsynced: an entry only saves a duplicate, and after a crash recover() rebuilds
// the entries of the jobs committed last from the jobs themselves.

import { createHash } from 'node:crypto';
import { readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jobIdTime, newJobId } from '../job/id.js';
import { tmpName } from '../spool/commit.js';
import type { Spool } from '../spool/spool.js';
import type { DedupLedger, JobDraft, JobDraftHeader, JobStore } from './store.js';

/** A one-slot channel: the writer's promise settles once the reader took the chunk and asked for the next. */
class Channel implements AsyncIterable<Uint8Array> {
  private taker: { resolve: (r: IteratorResult<Uint8Array>) => void; reject: (e: unknown) => void } | undefined;
  private offered: { chunk: Uint8Array; ack: () => void } | undefined;
  private inflight: (() => void) | undefined;
  private ended = false;
  private aborted: Error | undefined;
  private failed: unknown;
  private readonly failures: ((e: unknown) => void)[] = [];

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: () => {
        // the reader asks for more: the chunk it had is written
        const done = this.inflight;
        this.inflight = undefined;
        done?.();
        return new Promise<IteratorResult<Uint8Array>>((resolve, reject) => {
          if (this.aborted) return reject(this.aborted);
          if (this.offered) {
            const { chunk, ack } = this.offered;
            this.offered = undefined;
            this.inflight = ack;
            return resolve({ value: chunk, done: false });
          }
          if (this.ended) return resolve({ value: undefined, done: true });
          this.taker = { resolve, reject };
        });
      },
      // the reader gave up (too big): the writer waiting on its chunk learns why from
      // fail(), once the commit has failed; it must not be told the chunk was written
      return: async () => ({ value: undefined, done: true }),
    };
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    return new Promise<void>((resolve, reject) => {
      this.failures.push(reject);
      const ack = (): void => {
        this.failures.splice(this.failures.indexOf(reject), 1);
        resolve();
      };
      if (this.taker) {
        const t = this.taker;
        this.taker = undefined;
        this.inflight = ack;
        t.resolve({ value: chunk, done: false });
      } else {
        this.offered = { chunk, ack };
      }
    });
  }

  /** the consumer (the commit) failed: every writer waiting learns why */
  fail(err: unknown): void {
    this.failed = err;
    for (const reject of this.failures.splice(0)) reject(err);
  }

  end(): void {
    this.ended = true;
    if (this.taker && !this.offered) {
      const t = this.taker;
      this.taker = undefined;
      t.resolve({ value: undefined, done: true });
    }
  }

  abort(): void {
    this.aborted = new Error('LMTP transaction abandoned');
    if (this.taker) {
      const t = this.taker;
      this.taker = undefined;
      t.reject(this.aborted);
    }
  }
}

export class SpoolJobStore implements JobStore {
  constructor(private readonly spool: Spool, private readonly site: string) {}

  async begin(h: JobDraftHeader, opts: { maxSize: number }): Promise<JobDraft> {
    const id = newJobId();
    const header = { id, from: this.site, to: h.to, created: new Date().toISOString(), command: h.command, args: h.args, sender: h.sender, recipients: h.recipients };
    const channel = new Channel();
    const written = this.spool.writeJob('out', h.to, header, channel, { maxSize: opts.maxSize });
    let settled = false;
    written.then(
      () => {
        settled = true;
      },
      (err: unknown) => {
        settled = true;
        channel.fail(err);
      },
    );
    return {
      write: (chunk) => channel.write(chunk),
      commit: async () => {
        channel.end();
        const ref = await written;
        return ref.id;
      },
      abort: async () => {
        if (!settled) channel.abort();
        await written.catch(() => undefined);
      },
    };
  }
}

const LEDGER_DIR = 'lmtp-ledger';
const LEDGER_MAGIC = 'mailbag-lmtp-ledger 1\n';

export class SpoolLedger implements DedupLedger {
  private readonly dirs = new Set<string>();

  constructor(private readonly spool: Spool) {}

  async find(peer: string, digest: string): Promise<string | undefined> {
    let text: string;
    try {
      text = await readFile(this.spool.path(LEDGER_DIR, peer, digest), 'latin1');
    } catch {
      return undefined;
    }
    if (!text.startsWith(LEDGER_MAGIC)) return undefined;
    return text.slice(LEDGER_MAGIC.length).trim() || undefined;
  }

  async record(peer: string, digest: string, jobId: string): Promise<void> {
    if (!this.dirs.has(peer)) {
      await this.spool.ensureDir(LEDGER_DIR);
      await this.spool.ensureDir(LEDGER_DIR, peer);
      this.dirs.add(peer);
    }
    const tmp = join(this.spool.tmpDir, tmpName('ledger'));
    try {
      await writeFile(tmp, `${LEDGER_MAGIC}${jobId}\n`, { mode: 0o600, flag: 'wx' });
      await rename(tmp, this.spool.path(LEDGER_DIR, peer, digest));
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
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
