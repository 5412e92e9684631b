// The receiver's ledger of committed bags and jobs from one peer (docs/protocol.md §5):
// `mailbag-ledger 1\n`, then `<ms> <bag hash> <job id>,<job id>,…\n` per bag. An append
// is one write and an fsync — the commit point of a bag. A torn last line is cut off on
// open (that bag counts as not committed). Entries older than the retention (counted from
// the clock, or from the newest entry when that is older) are pruned by rewriting the
// file with the spool's commit function.

import { constants } from 'node:fs';
import { open, readFile, truncate } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SpoolError } from '../errors.js';
import { commitFile, fsyncDir } from '../spool/commit.js';

export const LEDGER_MAGIC_LINE = 'mailbag-ledger 1\n';

export interface LedgerEntry {
  time: number;
  bag: string;
  jobs: string[];
}

export class Ledger {
  private readonly bags = new Map<string, LedgerEntry>();
  private readonly jobs = new Set<string>();
  private entries: LedgerEntry[] = [];
  /**
   * bags committed or answered `have` since this ledger was opened (one session's): an
   * honest sender offers a bag once a session, so a second offer of one of these is a
   * peer keeping the session busy (docs/protocol.md §3). Every one is also in `bags`: this
   * holds references to those strings, no more than the ledger itself
   */
  private readonly settledNow = new Set<string>();

  private constructor(readonly path: string, private readonly tmpDir: string) {}

  /** Open (creating it when missing), cut a torn last line, prune what is older than retentionMs. */
  static async open(path: string, tmpDir: string, retentionMs: number, now = Date.now()): Promise<Ledger> {
    const ledger = new Ledger(path, tmpDir);
    let text: string | undefined;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new SpoolError(`cannot read the ledger ${path}`, { cause: err });
    }
    if (text === undefined) {
      await commitFile(path, Buffer.from(LEDGER_MAGIC_LINE), { tmpDir, label: 'ledger' });
      return ledger;
    }
    const nl = text.indexOf('\n');
    const first = nl < 0 ? text : text.slice(0, nl + 1);
    if (first !== LEDGER_MAGIC_LINE) {
      const m = /^mailbag-ledger (\S+)\n$/.exec(first);
      throw new SpoolError(m ? `ledger ${path}: unknown version ${m[1]}` : `ledger ${path}: not a mailbag ledger`);
    }
    const lastNl = text.lastIndexOf('\n');
    if (lastNl !== text.length - 1) {
      // a torn append: the bag on that line was never committed
      await truncate(path, Buffer.byteLength(text.slice(0, lastNl + 1)));
      text = text.slice(0, lastNl + 1);
    }
    // lines are in commit order: one whose time is below an earlier line's was written with
    // the clock set back (a board booted far behind, before NTP) and is at least as young as
    // that line. A line in the future (this clock was ahead) is no such floor: it would hold
    // every line after it until the clock caught up with it
    let floor = Number.NEGATIVE_INFINITY;
    for (const line of text.slice(LEDGER_MAGIC_LINE.length).split('\n')) {
      if (!line) continue;
      const [t, bag, jobs] = line.split(' ');
      if (!t || !bag) continue;
      const time = Number(t);
      if (Number.isFinite(time) && time <= now) floor = Math.max(floor, time);
      ledger.add({ time: Number.isFinite(time) && time <= now ? Math.max(time, floor) : time, bag, jobs: jobs ? jobs.split(',') : [] });
    }
    // the age counts from the newest entry when the clock is ahead of it: a clock that jumped
    // forward (a board without an RTC that committed bags before NTP set it) must not make
    // the bags just committed look old, or the same jobs offered again after a lost ACK
    // would be committed twice. Entries go once a newer commit is retention younger.
    const newest = ledger.entries.reduce((m, e) => (Number.isFinite(e.time) && e.time > m ? e.time : m), Number.NEGATIVE_INFINITY);
    const cutoff = Math.min(now, newest) - retentionMs;
    if (ledger.entries.some((e) => e.time < cutoff)) await ledger.prune(cutoff);
    return ledger;
  }

  private add(e: LedgerEntry): void {
    this.entries.push(e);
    this.bags.set(e.bag, e);
    for (const j of e.jobs) this.jobs.add(j);
  }

  hasBag(bag: string): boolean {
    return this.bags.has(bag);
  }

  hasJob(id: string): boolean {
    return this.jobs.has(id);
  }

  /**
   * Whether `bag` (which the ledger holds) was committed or answered `have` since the
   * ledger was opened; marks it so. False the first time: answer `have`; true after.
   */
  answeredBefore(bag: string): boolean {
    const e = this.bags.get(bag);
    if (!e) return false;
    if (this.settledNow.has(e.bag)) return true;
    this.settledNow.add(e.bag);
    return false;
  }

  get size(): number {
    return this.entries.length;
  }

  /** Append a bag's line and fsync: once this returns, the bag is committed. */
  async record(bag: string, jobs: string[], now = Date.now()): Promise<void> {
    const e: LedgerEntry = { time: now, bag, jobs };
    const fh = await open(this.path, constants.O_WRONLY | constants.O_APPEND);
    try {
      await fh.write(`${now} ${bag} ${jobs.join(',')}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    this.add(e);
    this.settledNow.add(e.bag);
  }

  private async prune(cutoff: number): Promise<void> {
    const keep = this.entries.filter((e) => e.time >= cutoff);
    this.entries = [];
    this.bags.clear();
    this.jobs.clear();
    for (const e of keep) this.add(e);
    const body = keep.map((e) => `${e.time} ${e.bag} ${e.jobs.join(',')}\n`).join('');
    await commitFile(this.path, Buffer.from(LEDGER_MAGIC_LINE + body), { tmpDir: this.tmpDir, label: 'ledger' });
    await fsyncDir(dirname(this.path));
  }
}
