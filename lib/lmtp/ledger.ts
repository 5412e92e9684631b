// The LMTP dedup ledger on the spool: which (peer, payload digest) pairs became jobs
// lately, so a transaction an MTA sends again after losing our reply is not stored twice.
//
// One append-only file per peer and UTC day, `lmtp-ledger/PEER/YYYY-MM-DD`:
// "mailbag-lmtp-ledger 2\n", then a line "DIGEST JOBID\n" per job, appended with one
// write(2) on an O_APPEND descriptor right after the job is durable, and not fsynced (an
// entry only saves a duplicate; after a crash recover() enters the jobs committed last
// from the jobs themselves: docs/spool.md, "LMTP ingress states"). So a job costs one
// small write here, not a file of its own (a file create is the dearest step on a busy
// ext4 without a journal).
//
// Lookups go through a fixed-size Bloom filter of every entry loaded (bounded memory
// whatever the volume, promise 6); a possible hit is confirmed by reading the peer's day
// files, newest first. Before each lookup the tail of the current day files is read from
// where the last read stopped, so the entries another lmtpd on the same spool appends
// are seen, and at the first lookup of each day the peer's directory is listed again
// (day files another lmtpd made while this one made no lookup). Only complete, well-formed lines count: a line torn by a power cut (no LF,
// NUL bytes) is skipped, and a writer that finds a file not ending in LF adds one first.
// Retention deletes whole day files. Entries of the earlier format (one file per entry,
// `lmtp-ledger/PEER/DIGEST`) are moved into the day files at open().

import { createHash } from 'node:crypto';
import { chmodSync, closeSync, constants, fstatSync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { MailbagError, SpoolError } from '../errors.js';
import { decodeJobHeader, MAX_JOB_PREFIX, type JobHeader } from '../job/header.js';
import { jobIdTime } from '../job/id.js';
import { FILE_MODE, fsyncDirSync, spoolErrorFrom, tmpName } from '../spool/commit.js';
import { faultPoint } from '../spool/fault.js';
import type { Spool } from '../spool/spool.js';
import type { DedupLedger } from './store.js';

export const LEDGER_DIR = 'lmtp-ledger';
export const LEDGER_MAGIC = 'mailbag-lmtp-ledger 2\n';
/** the first line of an entry file of the earlier format (one file per entry) */
const LEGACY_MAGIC = 'mailbag-lmtp-ledger 1\n';
const DAY_NAME = /^\d{4}-\d{2}-\d{2}$/;
const LEGACY_NAME = /^[0-9a-f]{64}$/;
const PEER_NAME = /^[a-z0-9][a-z0-9.-]{0,63}$/;
const LINE = /^([0-9a-f]{64}) ([0-9a-f]{12}[0-9a-z]{4,52})$/;
const DAY_MS = 86_400_000;
/** ledger_retention's default (lib/config/index.ts), for recover() called without it */
const DEFAULT_RETENTION_MS = 14 * DAY_MS;
const READ_CHUNK = 64 * 1024;
/** 2^24 bits (2 MiB): below 0.1 % false positives up to a million entries in the retention */
const DEFAULT_FILTER_BITS = 24;
const FILTER_HASHES = 6;

export interface SpoolLedgerOptions {
  /** log2 of the Bloom filter's size in bits (default 24: 2 MiB) */
  filterBits?: number;
  /** the clock (tests) */
  now?: () => number;
}

/** the UTC day of a time, as its file name */
export function dayName(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

interface DayFile {
  day: string;
  path: string;
  /** bytes read so far, up to the end of the last complete line */
  offset: number;
  /** kept open for the tail reads of the current day's file */
  fd?: number;
  /** among the days whose tail is read before each lookup (read once more when it leaves them) */
  tailing?: boolean;
}

interface PeerFiles {
  days: Map<string, DayFile>;
  /** the peer's day files were read once (at open, or at its first lookup here) */
  loaded?: boolean;
  /** the UTC day of the last listing of the peer's directory (loadPeer) */
  listed?: string;
  /** the day file being appended to, and its descriptor */
  appendDay?: string;
  appendFd?: number;
}

/** Split `text` into complete lines; returns them and how many bytes they took (through the last LF). */
function completeLines(text: string): { lines: string[]; used: number } {
  const last = text.lastIndexOf('\n');
  if (last < 0) return { lines: [], used: 0 };
  return { lines: text.slice(0, last).split('\n'), used: last + 1 };
}

/** the first bytes read for a job's header; a longer header is read whole (up to MAX_JOB_PREFIX) */
const HEAD_PEEK = 4096;

/** A job file's header, from its first bytes; undefined when it cannot be read or decoded. */
function peekJobHeader(path: string): JobHeader | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY);
  } catch {
    return undefined;
  }
  try {
    let buf = Buffer.allocUnsafe(HEAD_PEEK);
    let r = decodeJobHeader(buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)));
    if (!r.ok && r.issue.code === 'truncated') {
      buf = Buffer.allocUnsafe(MAX_JOB_PREFIX);
      r = decodeJobHeader(buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)));
    }
    return r.ok ? r.value.header : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

export class SpoolLedger implements DedupLedger {
  private readonly bits: number;
  private readonly filter: Uint32Array;
  private readonly peers = new Map<string, PeerFiles>();
  private readonly now: () => number;
  /** lookups; hits the files confirmed; hits of the filter they did not (false positives) */
  readonly stats = { lookups: 0, confirmed: 0, falsePositives: 0 };
  /** entries of the earlier format open() moved into day files */
  migrated = 0;

  private constructor(private readonly spool: Spool, opts: SpoolLedgerOptions) {
    this.bits = Math.min(30, Math.max(10, opts.filterBits ?? DEFAULT_FILTER_BITS));
    this.filter = new Uint32Array(2 ** (this.bits - 5));
    this.now = opts.now ?? Date.now;
  }

  /**
   * Open the ledger: move entries of the earlier format into day files, then read every
   * day file into the filter (streamed: memory stays the filter's whatever their size).
   */
  static async open(spool: Spool, opts: SpoolLedgerOptions = {}): Promise<SpoolLedger> {
    const l = new SpoolLedger(spool, opts);
    await spool.ensureDir(LEDGER_DIR);
    for (const peer of l.peerNames()) {
      l.migrated += l.migrate(peer);
      l.loadPeer(peer);
    }
    return l;
  }

  private peerNames(): string[] {
    try {
      return readdirSync(this.spool.path(LEDGER_DIR)).filter((n) => PEER_NAME.test(n)).sort();
    } catch {
      return [];
    }
  }

  private peerFiles(peer: string): PeerFiles {
    let p = this.peers.get(peer);
    if (!p) {
      p = { days: new Map() };
      this.peers.set(peer, p);
    }
    return p;
  }

  // ---- the filter

  private readonly salts = new Map<string, number>();

  private positions(peer: string, digest: string): number[] {
    // the digest is SHA-256: its hex digits are already uniform. A salt from the peer name
    // (FNV-1a) keeps one digest for two peers from sharing all its bits.
    let salt = this.salts.get(peer);
    if (salt === undefined) {
      salt = 0x811c9dc5;
      for (let i = 0; i < peer.length; i++) salt = Math.imul(salt ^ peer.charCodeAt(i), 0x01000193) >>> 0;
      this.salts.set(peer, salt);
    }
    const mask = 2 ** this.bits - 1;
    const out: number[] = [];
    for (let k = 0; k < FILTER_HASHES; k++) {
      const v = parseInt(digest.slice(k * 8, k * 8 + 8), 16) >>> 0;
      out.push(((v ^ salt) >>> 0) & mask);
    }
    return out;
  }

  private add(peer: string, digest: string): void {
    for (const b of this.positions(peer, digest)) this.filter[b >>> 5]! |= 1 << (b & 31);
  }

  private mayHave(peer: string, digest: string): boolean {
    for (const b of this.positions(peer, digest)) if ((this.filter[b >>> 5]! & (1 << (b & 31))) === 0) return false;
    return true;
  }

  // ---- reading day files

  /**
   * Read `path` (or its open descriptor) from `from` to its end in chunks, calling `line`
   * for each complete well-formed entry until it returns true; returns the offset after
   * the last complete line read.
   */
  private scan(path: string, from: number, line: (digest: string, id: string) => boolean | void, keep?: DayFile): number {
    let fd = keep?.fd;
    if (fd === undefined) {
      try {
        fd = openSync(path, constants.O_RDONLY);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return from;
        throw spoolErrorFrom(err, `reading ${path}`);
      }
      if (keep) keep.fd = fd;
    }
    try {
      const buf = Buffer.allocUnsafe(READ_CHUNK);
      let pos = from;
      if (from === 0) {
        const n = readSync(fd, buf, 0, LEDGER_MAGIC.length, 0);
        const head = buf.toString('latin1', 0, n);
        if (head !== LEDGER_MAGIC) {
          if (LEDGER_MAGIC.startsWith(head)) return 0; // empty or being made
          const v = /^mailbag-lmtp-ledger (\S+)\n/.exec(head)?.[1];
          throw new SpoolError(v
            ? `LMTP ledger format version ${v} is not supported; this mailbag reads version 2 (${path})`
            : `${path} is not an LMTP ledger file (no "mailbag-lmtp-ledger 2" line); remove it`);
        }
        pos = LEDGER_MAGIC.length;
      }
      let carry = '';
      for (;;) {
        const n = readSync(fd, buf, 0, READ_CHUNK, pos);
        if (n === 0) break;
        pos += n;
        const text = carry + buf.toString('latin1', 0, n);
        const { lines, used } = completeLines(text);
        carry = text.slice(used);
        for (const l of lines) {
          const m = LINE.exec(l);
          if (m && line(m[1]!, m[2]!) === true) return pos - carry.length;
        }
        // a short read is the end of the file as it is now
        if (n < READ_CHUNK) break;
      }
      return pos - carry.length;
    } finally {
      if (!keep) closeSync(fd);
    }
  }

  private loadPeer(peer: string): void {
    const files = this.peerFiles(peer);
    files.loaded = true;
    files.listed = dayName(this.now());
    let names: string[];
    try {
      names = readdirSync(this.spool.path(LEDGER_DIR, peer)).filter((n) => DAY_NAME.test(n)).sort();
    } catch {
      return;
    }
    for (const day of names) {
      const path = this.spool.path(LEDGER_DIR, peer, day);
      const f = files.days.get(day) ?? { day, path, offset: 0 };
      f.offset = this.scan(path, f.offset, (digest) => this.add(peer, digest));
      files.days.set(day, f);
    }
  }

  /**
   * Read what was appended since the last read to the files another lmtpd may be
   * appending to: today's, and yesterday's in the first hour of a day.
   */
  private refresh(peer: string): void {
    const now = this.now();
    const files = this.peerFiles(peer);
    // a peer another lmtpd began to record after this one opened: its earlier days too.
    // And at the first lookup of each day the directory again: a day file another lmtpd
    // made while this one made no lookup at all (idle from before that day began until
    // after the first hour of the next) was never tailed here, and would never be read
    if (!files.loaded || files.listed !== dayName(now)) this.loadPeer(peer);
    const days = [dayName(now)];
    if (now % DAY_MS < 3_600_000) days.push(dayName(now - DAY_MS));
    for (const day of days) {
      let f = files.days.get(day);
      if (!f) {
        f = { day, path: this.spool.path(LEDGER_DIR, peer, day), offset: 0 };
        files.days.set(day, f);
      }
      f.tailing = true;
      f.offset = this.scan(f.path, f.offset, (digest) => this.add(peer, digest), f);
    }
    // a day no longer read for its tail is over (nobody appends to it now): read what was
    // appended since this lmtpd last looked (another's entries of its last hours), then close
    for (const f of files.days.values()) {
      if (!f.tailing || days.includes(f.day)) continue;
      f.tailing = false;
      f.offset = this.scan(f.path, f.offset, (digest) => this.add(peer, digest), f);
      this.closeRead(f);
    }
  }

  private closeRead(f: DayFile): void {
    if (f.fd === undefined) return;
    try {
      closeSync(f.fd);
    } catch {
      // closed already
    }
    f.fd = undefined;
  }

  // ---- DedupLedger

  async find(peer: string, digest: string): Promise<string | undefined> {
    return this.findSync(peer, digest);
  }

  findSync(peer: string, digest: string): string | undefined {
    this.refresh(peer);
    this.stats.lookups++;
    if (!this.mayHave(peer, digest)) return undefined;
    const files = this.peers.get(peer);
    let found: string | undefined;
    for (const day of [...(files?.days.keys() ?? [])].sort().reverse()) {
      this.scan(files!.days.get(day)!.path, 0, (d, id) => {
        if (d !== digest) return false;
        found = id;
        return true;
      });
      if (found !== undefined) break;
    }
    if (found === undefined) this.stats.falsePositives++;
    else this.stats.confirmed++;
    return found;
  }

  async record(peer: string, digest: string, jobId: string): Promise<void> {
    this.recordSync(peer, digest, jobId);
  }

  /** Append the entry to today's file (one write(2), O_APPEND, no fsync). */
  recordSync(peer: string, digest: string, jobId: string): void {
    if (!/^[0-9a-f]{64}$/.test(digest) || !LINE.test(`${digest} ${jobId}`)) {
      throw new MailbagError('internal', `not an LMTP ledger entry: ${digest} ${jobId}`);
    }
    const fd = this.appendFd(peer, dayName(this.now()));
    try {
      writeSync(fd, `${digest} ${jobId}\n`);
    } catch (err) {
      this.closeAppend(peer);
      throw spoolErrorFrom(err, 'recording in the LMTP ledger');
    }
    this.add(peer, digest);
  }

  private closeAppend(peer: string): void {
    const files = this.peers.get(peer);
    if (files?.appendFd !== undefined) {
      try {
        closeSync(files.appendFd);
      } catch {
        // closed already
      }
      files.appendFd = undefined;
      files.appendDay = undefined;
    }
  }

  /** The O_APPEND descriptor of PEER's file for `day`, made (magic line first) when missing. */
  private appendFd(peer: string, day: string): number {
    const files = this.peerFiles(peer);
    if (files.appendFd !== undefined && files.appendDay === day) return files.appendFd;
    this.closeAppend(peer);
    const dir = this.spool.path(LEDGER_DIR, peer);
    const path = join(dir, day);
    try {
      let made = false;
      try {
        statSync(dir);
      } catch {
        this.makeDirSync(dir);
      }
      let fd: number;
      try {
        fd = openSync(path, constants.O_WRONLY | constants.O_APPEND);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        // a new day file appears whole with its magic line: written under tmp/, linked
        // (another lmtpd may make the same one at the same moment: its link wins then)
        const tmp = join(this.spool.tmpDir, tmpName('ledger'));
        const t = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, FILE_MODE);
        try {
          writeSync(t, LEDGER_MAGIC);
        } finally {
          closeSync(t);
        }
        try {
          linkSync(tmp, path);
          made = true;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        } finally {
          try {
            unlinkSync(tmp);
          } catch {
            // gone
          }
        }
        fd = openSync(path, constants.O_WRONLY | constants.O_APPEND);
      }
      if (!made) {
        // a line torn by a power cut would swallow the next entry: end it first
        const size = fstatSync(fd).size;
        if (size > 0) {
          const last = Buffer.alloc(1);
          const r = openSync(path, constants.O_RDONLY);
          try {
            readSync(r, last, 0, 1, size - 1);
          } finally {
            closeSync(r);
          }
          if (last[0] !== 0x0a) writeSync(fd, '\n');
        }
      }
      files.appendFd = fd;
      files.appendDay = day;
      if (!files.days.has(day)) files.days.set(day, { day, path, offset: 0 });
      return fd;
    } catch (err) {
      throw spoolErrorFrom(err, `opening the LMTP ledger ${path}`);
    }
  }

  private makeDirSync(dir: string): void {
    // lmtp-ledger/ itself is made by open(); a peer's directory on its first entry
    try {
      // the spool's mode whatever the umask, then the parent fsynced (as Spool.ensureDir)
      mkdirSync(dir, { mode: 0o700 });
      chmodSync(dir, 0o700);
      fsyncDirSync(this.spool.path(LEDGER_DIR));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }

  // ---- the earlier format

  /**
   * Move PEER's one-file entries (`lmtp-ledger/PEER/DIGEST`, "mailbag-lmtp-ledger 1") into
   * the day file of their time; the day files are fsynced before the old files go, so a
   * crash in between leaves an entry twice (harmless), never nowhere.
   */
  private migrate(peer: string): number {
    const dir = this.spool.path(LEDGER_DIR, peer);
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => LEGACY_NAME.test(n));
    } catch {
      return 0;
    }
    if (names.length === 0) return 0;
    const byDay = new Map<string, { lines: string[]; files: string[] }>();
    for (const name of names) {
      const p = join(dir, name);
      let text: string;
      let mtime: number;
      try {
        text = readFileSync(p, 'latin1');
        mtime = statSync(p).mtimeMs;
      } catch {
        continue;
      }
      const id = text.startsWith(LEGACY_MAGIC) ? text.slice(LEGACY_MAGIC.length).trim() : '';
      const day = dayName(mtime);
      const g = byDay.get(day) ?? { lines: [], files: [] };
      if (LINE.test(`${name} ${id}`)) g.lines.push(`${name} ${id}\n`);
      g.files.push(p);
      byDay.set(day, g);
    }
    let moved = 0;
    for (const [day, g] of [...byDay].sort()) {
      const fd = this.appendFd(peer, day);
      if (g.lines.length) writeSync(fd, g.lines.join(''));
      fsyncSync(fd);
      moved += g.lines.length;
    }
    this.closeAppend(peer);
    // the day files are durable (the new ones' names with the directory fsync below; a
    // kill here leaves every entry in both forms, and the next start moves them again)
    fsyncDirSync(dir);
    faultPoint('lmtp-ledger-migrated');
    for (const g of byDay.values()) {
      for (const p of g.files) {
        try {
          unlinkSync(p);
        } catch {
          // gone meanwhile
        }
      }
    }
    fsyncDirSync(dir);
    return moved;
  }

  // ---- crash recovery and retention

  /**
   * After a crash: a job committed just before the listener died may have no entry yet
   * (the entry is appended right after the commit, and not fsynced). Which jobs can lack
   * one does not depend on when they were committed: a job's id is made when its
   * transaction's DATA begins, and DATA may last as long as the MTA keeps sending (the
   * idle timeout bounds each pause, not the whole), and a commit as long as the disk takes.
   * So every job of this site's LMTP kind (`rsmtp`) in `out/` made within `retentionMs`
   * (ledger_retention: the span the ledger deduplicates at all, L5) whose id has no line in
   * the ledger gets its payload digest recorded now, before the listener accepts the MTA's
   * retry. Only the day files from the oldest such job's day on are read (an entry is
   * appended on or after its job's day), and memory is the jobs' listing, not the
   * ledger's size. Returns how many entries were added.
   */
  async recover(site: string, retentionMs = DEFAULT_RETENTION_MS, now = this.now()): Promise<number> {
    const since = now - retentionMs;
    let added = 0;
    for (const peer of await this.spool.peers('out')) {
      const recent = (await this.spool.listJobs('out', peer)).filter((ref) => jobIdTime(ref.id) >= since);
      if (recent.length === 0) continue;
      // the ids not seen in the ledger yet: a line naming one takes it out
      const missing = new Set(recent.map((ref) => ref.id));
      // a day before the oldest job's (a clock a little behind when the entry was made)
      let from = Number.POSITIVE_INFINITY;
      for (const ref of recent) from = Math.min(from, jobIdTime(ref.id) - DAY_MS);
      const days = [...(this.peers.get(peer)?.days.values() ?? [])].sort((a, b) => (a.day < b.day ? 1 : -1));
      for (const f of days) {
        // newest first: the jobs lately committed are the ones still in out/
        if (missing.size === 0) break;
        if (Date.parse(`${f.day}T00:00:00Z`) + DAY_MS < from) break;
        this.scan(f.path, 0, (_d, id) => {
          missing.delete(id);
          return missing.size === 0;
        });
      }
      for (const ref of recent) {
        if (!missing.has(ref.id)) continue;
        // the front doors' jobs (rmail, or another site's) never have an entry: their
        // headers are read with one synchronous read each, not a job reader each
        const head = peekJobHeader(ref.path);
        if (!head || head.from !== site || head.command !== 'rsmtp') continue;
        let job;
        try {
          job = await this.spool.readJob(ref);
        } catch {
          continue; // not ours to judge here (or sent and removed meanwhile); the runner reports bad jobs
        }
        if (job.header.from !== site || job.header.command !== 'rsmtp') continue;
        // the payload is opened again by its path: a session may have sent and removed the
        // job since its header was read (ENOENT). Skipped like a job gone before, not the
        // end of the recovery (and of lmtpd's start)
        const hash = createHash('sha256');
        try {
          for await (const chunk of job.payload()) hash.update(chunk as Buffer);
        } catch {
          continue;
        }
        const digest = hash.digest('hex');
        if (this.findSync(peer, digest) === undefined) {
          this.recordSync(peer, digest, ref.id);
          added++;
        }
      }
    }
    return added;
  }

  /**
   * Remove the day files whose every entry is older than `retentionMs` (the file of day D
   * once D's end is that old), then rebuild the filter from the files left. The filter is
   * rebuilt too when only another lmtpd on the spool removed them (a worker of
   * `lmtp.workers`, whose primary or sibling pruned first): a day this ledger read that is
   * past the retention is forgotten here whoever unlinked it, or its entries would stay in
   * the filter for good, filling it. Returns how many entries this call removed.
   */
  async prune(retentionMs: number, now = this.now()): Promise<number> {
    let removed = 0;
    let forgot = false;
    const expired = (day: string): boolean => now - (Date.parse(`${day}T00:00:00Z`) + DAY_MS) > retentionMs;
    const forget = (peer: string, day: string): void => {
      const files = this.peers.get(peer);
      if (files?.appendDay === day) this.closeAppend(peer);
      const f = files?.days.get(day);
      if (f) {
        this.closeRead(f);
        files!.days.delete(day);
        forgot = true;
      }
    };
    for (const peer of this.peerNames()) {
      const dir = this.spool.path(LEDGER_DIR, peer);
      let names: string[];
      try {
        names = readdirSync(dir).filter((n) => DAY_NAME.test(n));
      } catch {
        continue;
      }
      for (const day of names) {
        if (!expired(day)) continue;
        const path = join(dir, day);
        let count = 0;
        this.scan(path, 0, () => {
          count++;
        });
        forget(peer, day);
        try {
          unlinkSync(path);
          removed += count;
        } catch {
          // gone meanwhile (another lmtpd pruned it)
        }
      }
    }
    // the days read here that another lmtpd removed before this call looked
    for (const [peer, files] of this.peers) {
      for (const day of [...files.days.keys()]) if (expired(day)) forget(peer, day);
    }
    if (removed > 0 || forgot) this.rebuild();
    return removed;
  }

  /** Clear the filter and read every day file again (after old ones went). */
  private rebuild(): void {
    this.filter.fill(0);
    for (const files of this.peers.values()) {
      for (const f of files.days.values()) {
        this.closeRead(f);
        f.offset = 0;
      }
    }
    for (const peer of this.peerNames()) this.loadPeer(peer);
  }

  /** Close the descriptors (a stopping listener). */
  close(): void {
    for (const [peer, files] of this.peers) {
      this.closeAppend(peer);
      for (const f of files.days.values()) this.closeRead(f);
    }
  }
}
