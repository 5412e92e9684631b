// `mailbag status [PEER] [--json]`: per peer, the jobs and bytes waiting in each queue
// (out: to send; in: received, waiting for the runner; failed) and the oldest job's age.
// Read-only: the spool is opened without cleanup and never created; one not made yet is empty.

import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { CliIo } from './io.js';
import { MailbagError, SpoolError } from '../errors.js';
import { loadConfig, requirePeer } from '../config/index.js';
import { formatDuration, formatSize } from '../config/units.js';
import { inspectUnfinished } from '../session/idle-recovery.js';
import { QUEUES, Spool, SPOOL_MARKER, type PeerStats, type Queue } from '../spool/spool.js';

export const STATUS_USAGE = [
  'Usage: mailbag status [--config FILE] [--json] [PEER]',
  '',
  'Per peer: jobs and bytes queued to send (out), received and waiting for the runner',
  '(in), and failed, with the age of the oldest job in each. See docs/mailbag-status.md.',
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
}

interface StatusArgs {
  peer: string | undefined;
  json: boolean;
  configPath: string | undefined;
  help: boolean;
}

export function parseStatusArgs(argv: readonly string[]): StatusArgs {
  const out: StatusArgs = { peer: undefined, json: false, configPath: undefined, help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') out.json = true;
    else if (a === '--help' || a === '-h') out.help = true;
    else if (a === '--config') {
      if (i + 1 >= argv.length) throw new MailbagError('usage', '--config needs a FILE');
      out.configPath = argv[++i]!;
    } else if (a.startsWith('--config=')) out.configPath = a.slice('--config='.length);
    else if (a.startsWith('-')) throw new MailbagError('usage', `unknown option ${JSON.stringify(a)} (usage: mailbag status [--json] [PEER])`);
    else if (out.peer === undefined) out.peer = a;
    else throw new MailbagError('usage', 'mailbag status takes at most one PEER');
  }
  return out;
}

const EMPTY: QueueStatus = { jobs: 0, bytes: 0, oldestAgeSeconds: null };

/**
 * Whether the spool has been made (its marker is there). Only a spool that does not exist
 * is empty: one this user cannot read (the spool is its owner's, 0700) is an error, or
 * status would show every queue empty while mail waits.
 */
function spoolMade(root: string): boolean {
  try {
    statSync(join(root, SPOOL_MARKER));
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    const who = code === 'EACCES' || code === 'EPERM' ? ' (run mailbag status as the user that owns the spool)' : '';
    throw new SpoolError(`cannot read the spool ${root}: ${(err as Error).message}${who}`, { cause: err });
  }
}

/** Gather the report: configured peers and every peer that has a queue in the spool. */
export async function gatherStatus(config: ReturnType<typeof loadConfig>, peer?: string, now: number = Date.now()): Promise<StatusReport> {
  let stats: Record<string, PeerStats> = {};
  // a spool nothing has been queued in yet (the checkout's spool/ holds only a README) is empty
  const haveSpool = spoolMade(config.spool);
  if (haveSpool) {
    const spool = await Spool.open(config.spool, { cleanup: false });
    stats = await spool.stats(peer, now);
  }
  const names = new Set<string>(peer !== undefined ? [peer] : [...Object.keys(config.peers), ...Object.keys(stats)]);
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
    }
    peers.push(p);
  }
  return { version: 1, site: config.site, spool: config.spool, generated: new Date(now).toISOString(), peers };
}

function cell(q: QueueStatus): string {
  if (q.jobs === 0) return '-';
  // whole seconds (formatDuration would show a job under a second old as 0ms)
  const age = q.oldestAgeSeconds === null ? '' : `, oldest ${q.oldestAgeSeconds < 1 ? '0s' : formatDuration(q.oldestAgeSeconds * 1000)}`;
  const extra = q.unmoved ? `; ${q.unmoved} not yet moved in` : q.acked ? `; ${q.acked} acknowledged` : '';
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
  return `${head}${lines.join('\n')}\n`;
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  const args = parseStatusArgs(argv);
  if (args.help) {
    io.stdout.write(STATUS_USAGE);
    return 0;
  }
  const config = loadConfig({ path: args.configPath, env: io.env, cwd: io.cwd });
  const report = await gatherStatus(config, args.peer);
  const one = report.peers[0];
  if (args.peer !== undefined && one && !one.configured && one.out.jobs + one.in.jobs + one.failed.jobs === 0) {
    // a peer no longer configured may still have jobs to show; one with none is a typo
    requirePeer(config, args.peer);
  }
  io.stdout.write(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report));
  return 0;
}
