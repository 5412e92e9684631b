// `mailbag status [PEER] [--json]`: per peer, the jobs and bytes waiting in each queue
// (out: to send; in: received, waiting for the runner; failed) and the oldest job's age.
// `--jobs`: each received job that waits for the runner, with its attempts, next attempt
// and last error (the runner's record, run/PEER/ID), so an admin sees why mail is stuck
// without retrying it. Read-only: the spool is opened without cleanup and never created;
// one not made yet is empty.

import { lstatSync, statSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { CliIo } from './io.js';
import { ConfigError, MailbagError, SpoolError } from '../errors.js';
import type { Config } from '../config/types.js';
import { loadConfig, requirePeer } from '../config/index.js';
import { formatDuration, formatSize } from '../config/units.js';
import { inspectUnfinished } from '../session/idle-recovery.js';
import { journalJobs, journalNamesAt } from '../lmtp/journal.js';
import { lockHeldByLive } from '../spool/lock.js';
import { jobIdTime } from '../job/id.js';
import { isJobId } from '../job/header.js';
import { peerText } from '../session/messages.js';
import { readState, retryTimeCome } from '../runner/state.js';
import { QUEUES, Spool, SPOOL_MARKER, type PeerStats, type Queue } from '../spool/spool.js';
import { spoolErrorFrom } from '../spool/index.js';

export const STATUS_USAGE = [
  'Usage: mailbag status [--config FILE] [--json] [--jobs] [PEER]',
  '',
  'Per peer: jobs and bytes queued to send (out), received and waiting for the runner',
  '(in), and failed, with the age of the oldest job in each. With --jobs: each job',
  'waiting in in/ with its attempts, next attempt and last error. See docs/mailbag-status.md.',
  '',
].join('\n');

export interface QueueStatus {
  jobs: number;
  bytes: number;
  /** whole seconds since the oldest job was written; null when the queue is empty */
  oldestAgeSeconds: number | null;
  /** in: of `jobs`, those of committed (acknowledged) bags not yet moved out of bags/in/PEER/HASH.d/ (mailbag run moves them) */
  unmoved?: number;
  /** out: of `jobs`, those PEER has acknowledged, not yet removed (mailbag run or the next session removes them) */
  acked?: number;
  /** out: of `jobs`, those lmtpd answered 250 that are still only in its journal (lmtpd writes them into out/PEER; after a crash, at its next start) */
  journal?: number;
}

export interface PeerStatus {
  peer: string;
  /** true when the configuration has a [peers.NAME] section for it */
  configured: boolean;
  out: QueueStatus;
  in: QueueStatus;
  failed: QueueStatus;
}

export interface StatusReport {
  version: 1;
  site: string;
  spool: string;
  /** ISO 8601 UTC time of the report */
  generated: string;
  peers: PeerStatus[];
  /**
   * progress records of rsmtp and rmail (run/rsmtp-stdin/, run/rmail-stdin/) that do not
   * read: every retry of their input exits 75 until one is removed (docs/spool.md R8).
   * Present only when there are some; at most MAX_UNREADABLE_SHOWN, `count` all of them
   */
  unreadableProgress?: { count: number; records: Array<{ path: string; problem: string }> };
}

/** the unreadable progress records status names (the count says how many in all) */
const MAX_UNREADABLE_SHOWN = 20;
/** the front doors' progress directories under SPOOL/run/ */
const PROGRESS_DIRS = ['rsmtp-stdin', 'rmail-stdin'];

/** One received job waiting for the runner (in/PEER/ID), with the runner's record of it. */
export interface WaitingJob {
  peer: string;
  id: string;
  /** from the job's header; null when the header cannot be read (then `problem` says why) */
  command: string | null;
  sender: string | null;
  recipients: string[];
  /** bytes of the job file */
  bytes: number;
  /** whole seconds since it was written into in/PEER */
  ageSeconds: number;
  /** attempts begun so far (0: not tried yet) */
  attempts: number;
  /** ISO time before which the runner does not try it again; null: at the next run */
  nextAttempt: string | null;
  /** why the latest attempt did not finish */
  lastError: string | null;
  /** ISO time of a hand-over whose outcome is not recorded: a runner is at it, or one was killed then */
  startedAt: string | null;
  /** the job or its record cannot be read */
  problem?: string;
}

export interface JobsReport {
  version: 1;
  site: string;
  spool: string;
  generated: string;
  jobs: WaitingJob[];
  /** per peer, jobs of a killed session's committed bags not yet moved into in/ (mailbag run moves them) */
  unmoved: Record<string, number>;
}

interface StatusArgs {
  peer: string | undefined;
  json: boolean;
  jobs: boolean;
  configPath: string | undefined;
  help: boolean;
}

export function parseStatusArgs(argv: readonly string[]): StatusArgs {
  const out: StatusArgs = { peer: undefined, json: false, jobs: false, configPath: undefined, help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') out.json = true;
    else if (a === '--jobs') out.jobs = true;
    else if (a === '--help' || a === '-h') out.help = true;
    else if (a === '--config') {
      if (i + 1 >= argv.length) throw new MailbagError('usage', '--config needs a FILE');
      out.configPath = argv[++i]!;
    } else if (a.startsWith('--config=')) out.configPath = a.slice('--config='.length);
    else if (a.startsWith('-')) throw new MailbagError('usage', `unknown option ${JSON.stringify(a)} (usage: mailbag status [--json] [--jobs] [PEER])`);
    else if (out.peer === undefined) out.peer = a;
    else throw new MailbagError('usage', 'mailbag status takes at most one PEER');
  }
  return out;
}

const EMPTY: QueueStatus = { jobs: 0, bytes: 0, oldestAgeSeconds: null };

/**
 * Whether the spool has been made (its marker is there, or a queue: a spool that lost its
 * marker is Spool.open's error). Only a spool that does not exist (or a directory nothing
 * has been queued in yet) is empty: one this user cannot read (the
 * spool is its owner's, 0700) is an error, or status would show every queue empty while
 * mail waits; so is a spool path that names something other than a directory (a file, a
 * path through a file), a configuration error. For the commands that only read the spool:
 * status, failed, retry.
 */
export function spoolMade(config: Pick<Config, 'spool' | 'file'>, command = 'mailbag status'): boolean {
  const root = config.spool;
  const unreadable = (err: unknown): SpoolError => {
    const code = (err as NodeJS.ErrnoException).code;
    const who = code === 'EACCES' || code === 'EPERM' ? ` (run ${command} as the user that owns the spool)` : '';
    return new SpoolError(`cannot read the spool ${root}: ${(err as Error).message}${who}`, { cause: err });
  };
  let st;
  try {
    st = statSync(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') throw notDirectory(config, err);
    throw unreadable(err);
  }
  if (!st.isDirectory()) throw notDirectory(config);
  try {
    statSync(join(root, SPOOL_MARKER));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw unreadable(err);
  }
  // no marker: empty only when no queue was ever made there (the marker comes first). A
  // spool whose marker went (by hand, a partial restore) may hold mail: Spool.open says so
  try {
    return [...QUEUES, 'bags'].some((d) => lstatSync(join(root, d), { throwIfNoEntry: false }) !== undefined);
  } catch (err) {
    throw unreadable(err);
  }
}

function notDirectory(config: Pick<Config, 'spool' | 'file'>, cause?: unknown): ConfigError {
  // ConfigError puts `FILE: spool: ` in front
  return new ConfigError(`${JSON.stringify(config.spool)} is not a directory (nor a place for one)`, { key: 'spool', ...(config.file ? { file: config.file } : {}), ...(cause ? { cause } : {}) });
}

/** Gather the report: configured peers and every peer that has a queue in the spool. */
export async function gatherStatus(config: ReturnType<typeof loadConfig>, peer?: string, now: number = Date.now()): Promise<StatusReport> {
  let stats: Record<string, PeerStats> = {};
  // a spool nothing has been queued in yet (the checkout's spool/ holds only a README) is empty
  const haveSpool = spoolMade(config);
  if (haveSpool) {
    const spool = await Spool.open(config.spool, { cleanup: false });
    stats = await spool.stats(peer, now);
  }
  // jobs a killed lmtpd answered and left in its journal, not in out/PEER until its next
  // start (docs/spool.md, L8): shown with out/, so they are not hidden. A live lmtpd's
  // journal is not read: it writes its jobs into out/ within ms and keeps their records
  // until a reset, also of jobs a session has since sent (they would be counted again)
  const journal = new Map<string, { jobs: number; bytes: number; oldestMs: number }>();
  if (haveSpool) {
    const seen = new Set<string>();
    const live = new Set<string>();
    for (const name of journalNamesAt(config.spool)) {
      if (await lockHeldByLive(join(config.spool, 'locks'), `lmtp-journal-${name}`)) live.add(name);
    }
    for (const j of journalJobs(config.spool, live)) {
      if (seen.has(j.id) || (peer !== undefined && j.peer !== peer)) continue;
      seen.add(j.id);
      const e = journal.get(j.peer) ?? { jobs: 0, bytes: 0, oldestMs: Infinity };
      e.jobs++;
      e.bytes += j.data.length;
      e.oldestMs = Math.min(e.oldestMs, jobIdTime(j.id));
      journal.set(j.peer, e);
    }
  }
  const names = new Set<string>(peer !== undefined ? [peer] : [...Object.keys(config.peers), ...Object.keys(stats), ...journal.keys()]);
  const convert = (s: PeerStats | undefined, q: Queue): QueueStatus => {
    const qs = s?.[q];
    if (!qs) return { ...EMPTY };
    return { jobs: qs.jobs, bytes: qs.bytes, oldestAgeSeconds: qs.oldestAgeMs === null ? null : Math.floor(qs.oldestAgeMs / 1000) };
  };
  const peers: PeerStatus[] = [];
  for (const name of [...names].sort()) {
    const p: PeerStatus = {
      peer: name,
      configured: Object.hasOwn(config.peers, name),
      out: convert(stats[name], 'out'),
      in: convert(stats[name], 'in'),
      failed: convert(stats[name], 'failed'),
    };
    if (haveSpool) {
      const u = await inspectUnfinished(config.spool, name);
      if (u.unmoved.jobs > 0) {
        p.in.jobs += u.unmoved.jobs;
        p.in.bytes += u.unmoved.bytes;
        const age = Math.floor((now - u.unmoved.oldestWrittenMs!) / 1000);
        p.in.oldestAgeSeconds = p.in.oldestAgeSeconds === null ? age : Math.max(p.in.oldestAgeSeconds, age);
        p.in.unmoved = u.unmoved.jobs;
      }
      if (u.acked.jobs > 0) p.out.acked = u.acked.jobs;
      const j = journal.get(name);
      if (j) {
        p.out.jobs += j.jobs;
        p.out.bytes += j.bytes;
        const age = Math.max(0, Math.floor((now - j.oldestMs) / 1000));
        p.out.oldestAgeSeconds = p.out.oldestAgeSeconds === null ? age : Math.max(p.out.oldestAgeSeconds, age);
        p.out.journal = j.jobs;
      }
    }
    peers.push(p);
  }
  const report: StatusReport = { version: 1, site: config.site, spool: config.spool, generated: new Date(now).toISOString(), peers };
  if (haveSpool && peer === undefined) {
    const u = await unreadableProgress(await Spool.open(config.spool, { cleanup: false }));
    if (u.count > 0) report.unreadableProgress = u;
  }
  return report;
}

/**
 * rsmtp's and rmail's progress records that do not read (cut short by a disk, edited):
 * each stops every retry of its input with 75 (docs/spool.md R8), so status names them.
 * One read at a time; the names of one directory are held (the records of ledger_retention).
 */
async function unreadableProgress(spool: Spool): Promise<NonNullable<StatusReport['unreadableProgress']>> {
  const out: NonNullable<StatusReport['unreadableProgress']> = { count: 0, records: [] };
  for (const dir of PROGRESS_DIRS) {
    let names: string[];
    try {
      names = (await readdir(spool.path('run', dir))).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      if (!/^[0-9a-f]{64}$/.test(name)) continue;
      try {
        await readState(spool, dir, name);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        out.count++;
        if (out.records.length < MAX_UNREADABLE_SHOWN) out.records.push({ path: spool.path('run', dir, name), problem: err instanceof Error ? err.message : String(err) });
      }
    }
  }
  return out;
}

/** The --jobs report but its jobs, which eachWaitingJob gives one at a time. */
export type JobsHead = Omit<JobsReport, 'jobs' | 'unmoved'>;

/**
 * The --jobs listing as it is read: every job of in/PEER (or of every peer), oldest first
 * within a peer, with its runner record; `unmoved` gets per peer the jobs of a stopped
 * session's bags not yet moved in. Every peer's names (and its unmoved jobs) are listed
 * before the first job is given (a queue that cannot be listed fails before anything is
 * written); only the names are held,
 * each job read as it comes, so memory does not grow with in/ (DESIGN.md promise 7).
 */
export async function* eachWaitingJob(config: ReturnType<typeof loadConfig>, peer: string | undefined, now: number, unmoved: Record<string, number>): AsyncGenerator<WaitingJob> {
  if (!spoolMade(config)) return;
  const spool = await Spool.open(config.spool, { cleanup: false });
  const names = peer !== undefined ? [peer] : [...new Set([...Object.keys(config.peers), ...(await spool.peers('in'))])].sort();
  const lists: Array<[string, string[]]> = [];
  for (const name of names) lists.push([name, await jobIds(spool, name)]);
  for (const name of names) {
    const u = await inspectUnfinished(config.spool, name);
    if (u.unmoved.jobs > 0) unmoved[name] = u.unmoved.jobs;
  }
  for (const [name, ids] of lists) {
    for (const id of ids) {
      const ref = spool.ref('in', name, id);
      const st = await lstat(ref.path).catch(() => undefined);
      if (!st?.isFile()) continue; // taken by a runner meanwhile
      const job: WaitingJob = {
        peer: name, id: ref.id, command: null, sender: null, recipients: [], bytes: st.size,
        ageSeconds: Math.max(0, Math.floor((now - st.mtimeMs) / 1000)),
        attempts: 0, nextAttempt: null, lastError: null, startedAt: null,
      };
      const problems: string[] = [];
      try {
        const { header } = await spool.readJob(ref);
        job.command = header.command;
        job.sender = header.sender;
        job.recipients = header.recipients.length > 0 ? header.recipients : header.args;
      } catch (err) {
        problems.push(err instanceof Error ? err.message : String(err));
      }
      try {
        const state = await readState(spool, name, ref.id);
        if (state) {
          job.attempts = state.attempts;
          job.nextAttempt = state.nextAttempt ?? null;
          job.lastError = state.failed?.reason ?? state.lastError ?? null;
          job.startedAt = state.startedAt ?? null;
        }
      } catch (err) {
        problems.push(`its runner record: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (problems.length > 0) job.problem = problems.join('; ');
      yield job;
    }
  }
}

/** The ids of in/PEER, sorted (oldest first); none when it does not exist. Names only: a JobRef a job is ~600 bytes. */
async function jobIds(spool: Spool, peer: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(spool.path('in', peer));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw spoolErrorFrom(err, `listing ${spool.path('in', peer)}`);
  }
  return names.filter(isJobId).sort();
}

/** Gather the --jobs report whole (for a program's use; the command streams it). */
export async function gatherJobs(config: ReturnType<typeof loadConfig>, peer?: string, now: number = Date.now()): Promise<JobsReport> {
  const report: JobsReport = { version: 1, site: config.site, spool: config.spool, generated: new Date(now).toISOString(), jobs: [], unmoved: {} };
  for await (const j of eachWaitingJob(config, peer, now, report.unmoved)) report.jobs.push(j);
  return report;
}

function age(seconds: number): string {
  return seconds < 1 ? '0s' : formatDuration(seconds * 1000);
}

/**
 * JSON text with DEL and the C1 controls (U+007F–U+009F) written as \u escapes: the same
 * value, but JSON.stringify escapes only U+0000–U+001F, and a job header's fields (a
 * peer's text) may hold a C1 control (CSI, OSC …) that --json would put on the terminal.
 */
export function jsonSafe(json: string): string {
  return json.replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The --jobs text of one job: two lines, what it is and where its delivery stands. */
export function formatJob(j: WaitingJob, now: number = Date.now()): string {
  // a received job's header is a peer's text: no control character reaches the terminal
  const what = j.command === null ? 'unreadable job' : `${peerText(j.command)}  from <${peerText(j.sender ?? '')}>  to ${j.recipients.map((r) => `<${peerText(r)}>`).join(' ')}`;
  const parts: string[] = [];
  if (j.startedAt !== null) parts.push(`handed to the MTA at ${j.startedAt}, outcome not recorded (a runner is at it, or was stopped then)`);
  if (j.attempts === 0 && j.startedAt === null) parts.push('not tried yet: the next mailbag run delivers it');
  else if (j.attempts > 0) parts.push(`${j.attempts} attempt${j.attempts === 1 ? '' : 's'}`);
  if (j.nextAttempt !== null) {
    const wait = Math.ceil((Date.parse(j.nextAttempt) - now) / 1000);
    // further ahead than any backoff: set by a clock that has gone back since (run runs it)
    const ahead = retryTimeCome(j.nextAttempt, new Date(now)) && wait > 0 ? ', set by a clock ahead of this one' : '';
    parts.push(!retryTimeCome(j.nextAttempt, new Date(now)) ? `next attempt ${j.nextAttempt} (in ${age(wait)})` : `next attempt due (${j.nextAttempt}${ahead})`);
  }
  if (j.lastError !== null) parts.push(`last error: ${peerText(j.lastError.replace(/[\r\n]+/g, ' '))}`);
  if (j.problem !== undefined) parts.push(`cannot read ${peerText(j.problem.replace(/[\r\n]+/g, ' '))}`);
  return `${j.peer}/${j.id}  ${what}  size ${formatSize(j.bytes)}, received ${age(j.ageSeconds)} ago\n    ${parts.join('; ')}\n`;
}

/** The --jobs text's lines after the jobs: the unmoved ones, or that nothing waits. */
export function formatJobsEnd(jobs: number, unmoved: Record<string, number>, peer: string | undefined): string {
  const lines: string[] = [];
  for (const [p, n] of Object.entries(unmoved)) {
    lines.push(`${p}: ${n} job${n === 1 ? '' : 's'} of a stopped session not yet moved into in/ (mailbag run moves and delivers them)`);
  }
  if (jobs === 0 && lines.length === 0) lines.push(peer !== undefined ? `no received jobs waiting for ${peer}` : 'no received jobs waiting');
  return lines.map((l) => `${l}\n`).join('');
}

/** The --jobs text of a whole report: a header line, two lines per job, the end. */
export function formatJobs(report: JobsReport, peer: string | undefined, now: number = Date.now()): string {
  return `site ${report.site}, spool ${report.spool}\n${report.jobs.map((j) => formatJob(j, now)).join('')}${formatJobsEnd(report.jobs.length, report.unmoved, peer)}`;
}

function cell(q: QueueStatus): string {
  if (q.jobs === 0) return '-';
  // whole seconds (formatDuration would show a job under a second old as 0ms)
  const age = q.oldestAgeSeconds === null ? '' : `, oldest ${q.oldestAgeSeconds < 1 ? '0s' : formatDuration(q.oldestAgeSeconds * 1000)}`;
  const extra = [
    q.unmoved ? `${q.unmoved} not yet moved in` : '',
    q.acked ? `${q.acked} acknowledged` : '',
    q.journal ? `${q.journal} in lmtpd's journal` : '',
  ].filter(Boolean).map((x) => `; ${x}`).join('');
  return `${q.jobs} ${q.jobs === 1 ? 'job' : 'jobs'}, ${formatSize(q.bytes)}${age}${extra}`;
}

/** The human table: one line per peer, one column per queue. */
export function formatStatus(report: StatusReport): string {
  const head = `site ${report.site}, spool ${report.spool}\n`;
  if (report.peers.length === 0) return `${head}no peers configured and nothing queued\n`;
  const rows = [['PEER', ...QUEUES.map((q) => q.toUpperCase())]];
  for (const p of report.peers) {
    rows.push([p.configured ? p.peer : `${p.peer} (not configured)`, cell(p.out), cell(p.in), cell(p.failed)]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
  const u = report.unreadableProgress;
  const stuck = u
    ? [
        `${u.count} rsmtp/rmail progress ${u.count === 1 ? 'record does' : 'records do'} not read: every retry of ${u.count === 1 ? 'its input' : 'their inputs'} exits 75 until ${u.count === 1 ? 'it is' : 'each is'} removed (recipients it recorded as accepted then get the message again)`,
        ...u.records.map((r) => `  ${r.path}`),
        ...(u.count > u.records.length ? [`  … and ${u.count - u.records.length} more`] : []),
      ].map((l) => `${l}\n`).join('')
    : '';
  return `${head}${lines.join('\n')}\n${stuck}`;
}

/**
 * Write the --jobs listing as it is read: text, or the JSON document
 * JSON.stringify(JobsReport, null, 2) gives, one job at a time. The first job is read
 * before anything is written, so a spool that fails the listing leaves stdout empty.
 */
async function writeJobs(io: CliIo, config: ReturnType<typeof loadConfig>, peer: string | undefined, json: boolean, now: number): Promise<void> {
  const unmoved: Record<string, number> = {};
  const head: JobsHead = { version: 1, site: config.site, spool: config.spool, generated: new Date(now).toISOString() };
  let n = 0;
  const jobs = eachWaitingJob(config, peer, now, unmoved);
  // the first step lists every peer's names (the step that may fail) before any output
  const first = await jobs.next();
  const each = async function* (): AsyncGenerator<WaitingJob> {
    if (first.done) return;
    yield first.value;
    yield* jobs;
  };
  if (!json) io.stdout.write(`site ${head.site}, spool ${head.spool}\n`);
  else io.stdout.write(`${JSON.stringify(head, null, 2).slice(0, -2)},\n  "jobs": [`);
  for await (const j of each()) {
    if (json) io.stdout.write(`${n === 0 ? '\n' : ',\n'}${jsonSafe(JSON.stringify(j, null, 2)).replace(/^/gm, '    ')}`);
    else io.stdout.write(formatJob(j, now));
    n++;
  }
  if (!json) {
    io.stdout.write(formatJobsEnd(n, unmoved, peer));
    return;
  }
  const tail = JSON.stringify({ unmoved }, null, 2).slice(2, -2);
  io.stdout.write(`${n === 0 ? ']' : '\n  ]'},\n${tail}\n}\n`);
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  const args = parseStatusArgs(argv);
  if (args.help) {
    io.stdout.write(STATUS_USAGE);
    return 0;
  }
  const config = loadConfig({ path: args.configPath, env: io.env, cwd: io.cwd });
  if (args.jobs) {
    const now = Date.now();
    if (args.peer !== undefined && !Object.hasOwn(config.peers, args.peer)) {
      // as below: a peer no longer configured may still have jobs; one with none is a typo
      const unmoved: Record<string, number> = {};
      const jobs = eachWaitingJob(config, args.peer, now, unmoved);
      const first = await jobs.next();
      await jobs.return(undefined);
      if (first.done && !unmoved[args.peer]) requirePeer(config, args.peer);
    }
    await writeJobs(io, config, args.peer, args.json, now);
    return 0;
  }
  const report = await gatherStatus(config, args.peer);
  const one = report.peers[0];
  if (args.peer !== undefined && one && !one.configured && one.out.jobs + one.in.jobs + one.failed.jobs === 0) {
    // a peer no longer configured may still have jobs to show; one with none is a typo
    requirePeer(config, args.peer);
  }
  io.stdout.write(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report));
  return 0;
}
