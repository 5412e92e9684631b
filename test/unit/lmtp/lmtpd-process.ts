// Runs the built `mailbag lmtpd` as a child process for the integration, fault and
// bench suites: a temp configuration, readiness from its log line, stop by its PID
// (SIGTERM, or SIGKILL for the fault tests), every wait bounded.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { journalJobs } from '../../../lib/lmtp/journal.js';
import { fileURLToPath } from 'node:url';

/** the checkout: the nearest directory above with a package.json (also when run built, from dist/) */
function findRepoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json')) && dirname(d) !== d) d = dirname(d);
  return d;
}

export const repoRoot = findRepoRoot();
export const mailbagBin = join(repoRoot, 'dist/bin/mailbag.js');

export interface LmtpdOptions {
  dir: string;
  /** peer name → domains */
  peers: Record<string, string[]>;
  socket?: string;
  socketMode?: string;
  listen?: string;
  /** lmtp.workers (unset: lmtpd's default, 1) */
  workers?: number;
  extraToml?: string;
  env?: NodeJS.ProcessEnv;
  uid?: number;
  gid?: number;
  /** use this configuration text as is (then `spool` and `socket` say where they are) */
  configText?: string;
  spool?: string;
}

export interface Lmtpd {
  child: ChildProcess;
  pid: number;
  config: string;
  spool: string;
  socket: string;
  /** TCP port when listen was given */
  port?: number;
  log(): string;
  /** SIGTERM, wait for exit (bounded); resolves with the exit code */
  stop(timeoutMs?: number): Promise<number | null>;
  /** SIGKILL, wait for exit */
  kill(): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function writeLmtpdConfig(o: LmtpdOptions): { config: string; spool: string; socket: string } {
  if (o.configText !== undefined) {
    const config = join(o.dir, 'mailbag.toml');
    writeFileSync(config, o.configText);
    const spool = o.spool ?? join(o.dir, 'spool');
    return { config, spool, socket: o.socket ?? join(spool, 'lmtp.sock') };
  }
  const spool = join(o.dir, 'spool');
  const socket = o.socket ?? join(o.dir, 'lmtp.sock');
  const peers = Object.entries(o.peers)
    .map(([name, domains]) => `[peers.${name}]\ndomains = ${JSON.stringify(domains)}\n`)
    .join('\n');
  const toml = [
    'site = "home"',
    `spool = ${JSON.stringify(spool)}`,
    '',
    '[lmtp]',
    `socket = ${JSON.stringify(socket)}`,
    `socket_mode = ${JSON.stringify(o.socketMode ?? '0660')}`,
    ...(o.listen ? [`listen = ${JSON.stringify(o.listen)}`] : []),
    ...(o.workers !== undefined ? [`workers = ${o.workers}`] : []),
    o.extraToml ?? '',
    '',
    peers,
  ].join('\n');
  const config = join(o.dir, 'mailbag.toml');
  writeFileSync(config, toml);
  return { config, spool, socket };
}

export async function startLmtpd(o: LmtpdOptions, timeoutMs = 20_000): Promise<Lmtpd> {
  const { config, spool, socket } = writeLmtpdConfig(o);
  // MAILBAG_LMTPD_NODE_ARGS: extra node options for lmtpd only (profiling a bench: --cpu-prof …)
  const nodeArgs = (process.env.MAILBAG_LMTPD_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, mailbagBin, 'lmtpd', '--config', config], {
    env: { ...process.env, ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    uid: o.uid,
    gid: o.gid,
  });
  let log = '';
  child.stdout!.on('data', (b: Buffer) => (log += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (log += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const deadline = Date.now() + timeoutMs;
  let dead = false;
  void exited.then(() => (dead = true));
  while (!/ready\n/.test(log)) {
    if (dead) throw new Error(`lmtpd exited before it was ready:\n${log}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`lmtpd not ready within ${timeoutMs} ms:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const portMatch = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
  const d: Lmtpd = {
    child,
    pid: child.pid!,
    config,
    spool,
    socket,
    port: portMatch ? Number(portMatch[1]) : undefined,
    log: () => log,
    exited,
    async stop(ms = 40_000) {
      if (dead) return (await exited).code;
      process.kill(child.pid!, 'SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), ms);
      const r = await exited;
      clearTimeout(t);
      return r.code;
    },
    async kill() {
      if (!dead) process.kill(child.pid!, 'SIGKILL');
      await exited;
    },
  };
  return d;
}

export interface SpooledJob {
  id: string;
  header: { id: string; from: string; to: string; command: string; args: string[]; sender: string; recipients: string[]; created: string };
  payload: string;
  /** the MAIL line, the RCPT lines, the message (unstuffed, LF) */
  mail: string;
  rcpts: string[];
  message: string;
}

/**
 * Every job lmtpd has answered for PEER, parsed (small test jobs only: read whole): those
 * in out/PEER, and those still only in lmtpd's journal (answered, written into out/ a
 * moment later: docs/spool.md, "The LMTP journal"), each once.
 */
export function readJobs(spool: string, peer: string): SpooledJob[] {
  const dir = join(spool, 'out', peer);
  // the journal first: a job leaves it only once it is in out/
  const journaled = new Map(journalJobs(spool).filter((j) => j.peer === peer).map((j) => [j.id, j.data]));
  const files = existsSync(dir) ? readdirSync(dir) : [];
  for (const id of files) journaled.delete(id);
  return [...files, ...journaled.keys()].sort().map((id) => {
    const raw = journaled.get(id)?.toString('latin1') ?? readFileSync(join(dir, id), 'latin1');
    const nl1 = raw.indexOf('\n');
    const nl2 = raw.indexOf('\n', nl1 + 1);
    const header = JSON.parse(Buffer.from(raw.slice(nl1 + 1, nl2), 'latin1').toString('utf8')) as SpooledJob['header'];
    const payload = raw.slice(nl2 + 1);
    const lines = payload.split('\n');
    const mail = lines.shift()!;
    const rcpts: string[] = [];
    while (lines[0]?.startsWith('RCPT TO:')) rcpts.push(lines.shift()!);
    if (lines.shift() !== 'DATA') throw new Error(`job ${id}: no DATA line`);
    if (lines.pop() !== '' || lines.pop() !== '.') throw new Error(`job ${id}: does not end with ".\\n"`);
    const message = lines.map((l) => (l.startsWith('.') ? l.slice(1) : l)).join('\n') + '\n';
    return { id, header, payload, mail, rcpts, message };
  });
}

/** all file names under the spool's tmp/ (must be empty after a clean refusal) */
export function tmpLeftovers(spool: string): string[] {
  const t = join(spool, 'tmp');
  return existsSync(t) ? readdirSync(t) : [];
}

/** the pids of a process's live children (lmtpd's workers) */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** whether a process exists (a zombie counts as gone) */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
