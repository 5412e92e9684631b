// `npm run bench -- relay`: mailbag relaying real mail spool to spool over a REAL OpenSSH
// sshd on 127.0.0.1, side by side in one run with the floor for moving the same files:
// `tar c | gzip -6 | ssh host 'tar xz && sync'`.
//
// The bench starts its own sshd (test/helpers/sshd.ts: generated host and user keys,
// everything in a temp dir, stopped by its PID). Two user keys: one whose authorized_keys
// line forces `mailbag serve --peer home --no-run --config HUB.toml` (wrapped in
// /usr/bin/time for its peak RSS), one without a forced command for the floor's `ssh`.
// Every byte between the client and sshd goes through a counting TCP proxy on 127.0.0.1
// (test/helpers/cut-proxy.ts), for the mailbag runs and the floor alike.
//
// Per round and variant the sender's spool is fresh: the corpus messages are enqueued
// with the library (Spool.writeJob, rmail jobs, several at once) before the clock starts;
// then ONE process is timed from spawn to exit:
//   floor         bash -c 'tar c -C OUT . | gzip -6 | ssh … "mkdir -p D && tar xz -C D && sync"'
//   mailbag ssh2  mailbag sync hub   (transport = "ssh", ssh2)
//   mailbag ssh   mailbag sync hub   (transport = "command", the system ssh client)
// Afterwards every job must be in the far in/home queue exactly once with the same
// payload hash, and the sender's out/hub empty (the floor: every file, same hash).
//
// Then (unless --no-cut) a 100 MB message (the corpus's large part, concatenated) is
// relayed once uncut for reference and once with the link cut (RST at the proxy) halfway
// through the upstream bytes, then resumed: what crossed twice is counted at the proxy.
// With --big a 1 GB message (bulk messages concatenated, streamed to disk, never held in
// memory) is relayed, with the peak RSS of both ends; first the free space of --tmp is
// checked against what the run writes at its peak (bigSpaceNeeded: 2.4 GB for 1 GB). A
// failed process is reported with the tail of its stderr (exitReport), where its cause is.

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile, statfs } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { formatFromLine } from '../lib/envelope/index.js';
import { newJobId } from '../lib/job/id.js';
import { Spool } from '../lib/spool/spool.js';
import { corpusFiles } from '../test/helpers/corpus.js';
import { startCutProxy, type CutProxy } from '../test/helpers/cut-proxy.js';
import { knownHostsLine, makeKey, type KeyFiles } from '../test/helpers/ssh-keys.js';
import { SSHD_BIN, startSshd, type Sshd } from '../test/helpers/sshd.js';

const here = fileURLToPath(new URL('.', import.meta.url));
// built to dist/bench/: the repository is two levels up
const repoRoot = resolve(here, '../..');
// the processes run from a snapshot of dist/ in the temp dir (snapshotDist), so a rebuild
// of the checkout during the run cannot change what is measured
let snapRoot = repoRoot;
// the installed bin (package.json "bin": dist/bin/mailbag.cjs), as sshd's forced command and cron run it
const mailbagBin = (): string => join(snapRoot, 'dist/bin/mailbag.cjs');
const TIME = '/usr/bin/time';
const MB = 1e6;
const MiB = 1024 * 1024;

type Variant = 'floor' | 'ssh2' | 'ssh';
const VARIANT_LABEL: Record<Variant, string> = {
  floor: 'floor: tar c, gzip -6, ssh, tar xz; sync',
  ssh2: 'mailbag sync (ssh2)',
  ssh: 'mailbag sync (command: ssh)',
};

interface Options {
  sizes: number[];
  rounds: number;
  variants: Variant[];
  /** the corpus relays (--no-corpus: only the cut and/or big tests) */
  corpus: boolean;
  cut: boolean;
  cutMB: number;
  big: boolean;
  bigMB: number;
  cpuProf?: string;
  /** MAILBAG_TRACE=1 at both ends; their timestamped frame traces go into this dir */
  trace?: string;
  /** transport of the cut and big tests (default ssh2, or ssh when ssh2 failed) */
  via?: 'ssh2' | 'ssh';
  json?: string;
  keep: boolean;
  /** where the temp dir (spools, floor's far side) goes (default the system temp dir) */
  tmp?: string;
  timeoutS: number;
  /** set when plain Node cannot load the built ssh2 transport (see ssh2-esm-hooks.ts) */
  shim?: boolean;
}

const USAGE = `usage: npm run bench -- relay [options]
  --messages N      corpus messages per relay (default 1000; repeatable: --messages 1000 --messages 5000)
  --all             also relay all 10,160 bulk messages
  --rounds N        rounds of every variant per size (default 3 for sizes under 5000, else 1)
  --no-command      leave out transport = "command" (system ssh)
  --variants LIST   which of floor,ssh2,ssh to run (default all three)
  --no-corpus       leave out the corpus relays (only the cut and/or big tests)
  --no-cut          leave out the 100 MB cut-and-resume test
  --cut-mb N        size of the cut test's message (default 100)
  --big             also relay a 1 GB message (about 2 minutes)
  --big-mb N        size of that message (default 1000)
  --via ssh2|ssh    transport of the cut and big tests (default ssh2; ssh when ssh2 failed)
  --cpu-prof DIR    run every mailbag process under node --cpu-prof, profiles into DIR
  --trace DIR       MAILBAG_TRACE=1 at both ends: each run's timestamped frame trace in DIR
  --json FILE       figures as JSON too
  --keep            keep the temp dir (printed)
  --tmp DIR         put the temp dir (both spools, the floor's files) in DIR, e.g. /dev/shm to take the disk out
  --timeout S       bound for one timed process (default 900)`;

export function parseArgs(argv: string[]): Options {
  const o: Options = { sizes: [], rounds: 0, variants: ['floor', 'ssh2', 'ssh'], corpus: true, cut: true, cutMB: 100, big: false, bigMB: 1000, keep: false, timeoutS: 900 };
  let all = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const num = (): number => {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${a} needs a positive integer\n${USAGE}`);
      return n;
    };
    if (a === '--messages') o.sizes.push(num());
    else if (a === '--all') all = true;
    else if (a === '--rounds') o.rounds = num();
    else if (a === '--no-command') o.variants = o.variants.filter((v) => v !== 'ssh');
    else if (a === '--variants' && argv[i + 1]) {
      const vs = argv[++i]!.split(',');
      for (const v of vs) if (!(v in VARIANT_LABEL)) throw new Error(`--variants takes floor,ssh2,ssh (got ${v})\n${USAGE}`);
      o.variants = vs as Variant[];
    }
    else if (a === '--no-cut') o.cut = false;
    else if (a === '--no-corpus') o.corpus = false;
    else if (a === '--cut-mb') o.cutMB = num();
    else if (a === '--big') o.big = true;
    else if (a === '--big-mb') o.bigMB = num();
    else if (a === '--cpu-prof' && argv[i + 1]) o.cpuProf = resolve(argv[++i]!);
    else if (a === '--trace' && argv[i + 1]) o.trace = resolve(argv[++i]!);
    else if (a === '--json' && argv[i + 1]) o.json = argv[++i];
    else if (a === '--keep') o.keep = true;
    else if (a === '--tmp' && argv[i + 1]) o.tmp = resolve(argv[++i]!);
    else if (a === '--via' && (argv[i + 1] === 'ssh2' || argv[i + 1] === 'ssh')) o.via = argv[++i] as 'ssh2' | 'ssh';
    else if (a === '--timeout') o.timeoutS = num();
    else throw new Error(`unknown option ${a}\n${USAGE}`);
  }
  if (o.sizes.length === 0) o.sizes.push(1000);
  if (all) o.sizes.push(Infinity);
  return o;
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** stderr lines kept in a failure's report: the cause is often at the end, after the first line */
const STDERR_TAIL_LINES = 40;

/**
 * Why a timed process failed: `WHAT exited CODE`, then the last STDERR_TAIL_LINES lines of
 * its stderr (MAILBAG_TRACE lines left out), each on its own indented line.
 */
export function exitReport(what: string, ran: Pick<Ran, 'code' | 'signal' | 'stderr'>): string {
  const lines = ran.stderr.split('\n').map((l) => l.trimEnd()).filter((l) => l !== '' && !/^\d\d:\d\d:\d\d\.\d+ /.test(l));
  const tail = lines.slice(-STDERR_TAIL_LINES);
  const cut = lines.length > tail.length ? [`    (${lines.length - tail.length} earlier stderr lines left out)`] : [];
  return [`${what} exited ${ran.code ?? ran.signal}${tail.length ? '; its stderr:' : ', nothing on stderr'}`, ...cut, ...tail.map((l) => `    ${l}`)].join('\n');
}

/** A failure report in one line for a table cell: its first line and its last (the cause, usually). */
export function oneLine(report: string): string {
  const lines = report.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return lines.length > 1 ? `${lines[0]} … ${lines[lines.length - 1]}` : (lines[0] ?? '');
}

/** Free and total bytes of the file system that holds `dir`. */
export async function diskSpace(dir: string): Promise<{ free: number; total: number }> {
  const s = await statfs(dir);
  return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
}

/**
 * What the big test writes at its peak, on the one file system of --tmp: the job in the
 * sender's out/ and the same job staged on the receiver (2 × the message), the bag on the
 * way (the receiver's partial; the bulk corpus compresses to 0.19 × at the bench's zstd
 * level, so 0.25 × is allowed), and 128 MiB for the rest (spools, the corpus runs' files).
 * Measured: 2.29 GB at the peak of a 1,000 MB run.
 */
export function bigSpaceNeeded(messageBytes: number): number {
  return 2 * messageBytes + Math.ceil(messageBytes / 4) + 128 * MiB;
}

/** Undefined when `free` bytes are enough for a big test of `messageBytes`; else what to do. */
export function bigSpaceProblem(dir: string, messageBytes: number, free: number): string | undefined {
  const need = bigSpaceNeeded(messageBytes);
  if (free >= need) return undefined;
  return (
    `not enough free space for the ${(messageBytes / MB).toFixed(0)} MB big test in ${dir}: it needs about ${(need / MB).toFixed(0)} MB ` +
    `(the job in both spools, its compressed bag, 128 MiB more), ${(free / MB).toFixed(0)} MB are free; ` +
    `give --tmp a larger file system or --big-mb a smaller message`
  );
}

/** `…: the file system of DIR has N MB free of M MB`, for a failure that may be a full disk. */
async function spaceNote(dir: string): Promise<string> {
  const d = await diskSpace(dir).catch(() => undefined);
  return d ? `    the file system of ${dir} has ${(d.free / MB).toFixed(0)} MB free of ${(d.total / MB).toFixed(0)} MB now` : `the free space of ${dir} cannot be read`;
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

async function sha256File(path: string, start = 0): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { start })) h.update(c as Buffer);
  return h.digest('hex');
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------------------
// processes

interface Ran {
  code: number | null;
  signal: string | null;
  ms: number;
  stdout: string;
  stderr: string;
}

/** Spawn in its own process group; wall time from spawn to exit; the group is killed at the deadline. */
function run(argv: string[], timeoutS: number, env: NodeJS.ProcessEnv = process.env): Promise<Ran> {
  return new Promise((resolvePromise, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout = (stdout + b.toString('utf8')).slice(-100_000)));
    child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(-100_000)));
    const timer = setTimeout(() => {
      stderr += `\n[bench: killed after ${timeoutS} s]`;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }, timeoutS * 1000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, ms: Number(process.hrtime.bigint() - t0) / 1e6, stdout, stderr });
    });
  });
}

/** what /usr/bin/time writes with TIME_FORMAT: peak RSS (KiB), user and system CPU seconds */
const TIME_FORMAT = '%M %U %S';
const TIME_LINE = /^(\d+) (\d+(?:\.\d+)?) (\d+(?:\.\d+)?)$/;
interface Used {
  /** peak RSS, bytes */
  rss: number;
  /** user + system CPU, seconds */
  cpu: number;
}
function timeLines(file: string): Used[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').trim().split('\n').flatMap((l) => {
    const m = TIME_LINE.exec(l.trim());
    return m ? [{ rss: Number(m[1]) * 1024, cpu: Number(m[2]) + Number(m[3]) }] : [];
  });
}

/** peak RSS and CPU /usr/bin/time wrote to `file`, waiting (bounded) for the process to end */
async function peakRss(file: string, waitMs: number): Promise<Used | undefined> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const lines = timeLines(file);
    if (lines.length) return lines[lines.length - 1];
    if (Date.now() > deadline) return undefined;
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------
// the two sites

interface World {
  dir: string;
  sshd: Sshd;
  proxy: CutProxy;
  serveKey: KeyFiles;
  floorKey: KeyFiles;
  o: Options;
  runNo: number;
}

interface Sites {
  dir: string;
  home: Spool;
  hub: Spool;
  homeToml: string;
  hubToml: string;
  serveRss: string;
}

const LIMITS_TOML = '[limits]\nmax_message_size = "2G"\nmax_bag_size = "2G"\nmax_bag_expanded = "2G"\n';

function nodeArgs(o: Options): string[] {
  return o.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProf}`] : [];
}

/** true when plain Node cannot import the built ssh2 transport (named exports of a CommonJS module) */
function needsSsh2Shim(): boolean {
  const url = pathToFileURL(join(snapRoot, 'dist/lib/transport/ssh.js')).href;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(url)})`], { encoding: 'utf8', timeout: 60_000 });
  if (r.status === 0) return false;
  if (/Named export '\w+' not found/.test(r.stderr)) return true;
  throw new Error(`cannot load ${url}: ${r.stderr.trim() || r.error?.message}`);
}

const shimArgs = (): string[] => ['--import', join(snapRoot, 'dist/bench/ssh2-esm-shim.js')];

/** dist/ (bin, lib, bench), package.json and a node_modules link, copied under `dir` */
function snapshotDist(dir: string): string {
  const root = join(dir, 'snapshot');
  mkdirSync(join(root, 'dist'), { recursive: true });
  for (const d of ['bin', 'lib', 'bench']) cpSync(join(repoRoot, 'dist', d), join(root, 'dist', d), { recursive: true });
  copyFileSync(join(repoRoot, 'package.json'), join(root, 'package.json'));
  symlinkSync(join(repoRoot, 'node_modules'), join(root, 'node_modules'));
  return root;
}
const SHIM_NOTE =
  "NOTE: the built transport cannot be loaded by plain Node (lib/transport/ssh.ts imports named exports from ssh2, a CommonJS module: \"Named export 'utils' not found\"), " +
  'so every `mailbag sync` ran with `node --import dist/bench/ssh2-esm-shim.js` (bench/ssh2-esm-hooks.ts), which only re-exports ssh2 by name.';

/** Fresh spools for home (the sender, dials) and hub (behind sshd), configs for both, and the forced command. */
async function makeSites(w: World, variant: Exclude<Variant, 'floor'> | 'floor', proxy: CutProxy = w.proxy): Promise<Sites> {
  const dir = join(w.dir, `run-${++w.runNo}`);
  mkdirSync(dir, { recursive: true });
  const home = await Spool.open(join(dir, 'home'), { create: true });
  const hub = await Spool.open(join(dir, 'hub'), { create: true });
  const hubToml = join(dir, 'hub.toml');
  writeFileSync(hubToml, `site = "hub"\nspool = ${JSON.stringify(hub.root)}\n\n${LIMITS_TOML}\n[peers.home]\naccept = ["rmail", "rsmtp"]\n`);
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, w.sshd.hostPublicKeys.map((k) => `${knownHostsLine('127.0.0.1', proxy.port, k)}\n`).join(''));
  const sshArgs = sshClientArgs(w, proxy, variant === 'floor' ? w.floorKey : w.serveKey, knownHosts);
  const peer =
    variant === 'ssh'
      ? `transport = "command"\ncommand = ${JSON.stringify(['ssh', ...sshArgs, 'mailbag serve --peer home'])}\n`
      : `transport = "ssh"\nhost = "127.0.0.1"\nport = ${proxy.port}\nuser = ${JSON.stringify(w.sshd.user)}\n` +
        `identity = ${JSON.stringify(w.serveKey.privatePath)}\nknown_hosts = ${JSON.stringify(knownHosts)}\nremote_command = "mailbag serve --peer home"\n`;
  const homeToml = join(dir, 'home.toml');
  writeFileSync(homeToml, `site = "home"\nspool = ${JSON.stringify(home.root)}\n\n${LIMITS_TOML}\n[peers.hub]\n${peer}accept = ["rmail", "rsmtp"]\n`);
  // sshd reads authorized_keys at each login: this run's forced command writes its own RSS file
  const serveRss = join(dir, 'serve.rss');
  // sshd runs it through the user's shell with sshd's own clean environment, as in production
  const trace = w.o.trace ? ['env', 'MAILBAG_TRACE=1'] : [];
  const forced = [...trace, TIME, '-f', `'${TIME_FORMAT}'`, '-a', '-o', serveRss, process.execPath, ...nodeArgs(w.o), mailbagBin(), 'serve', '--peer', 'home', '--no-run', '--config', hubToml, ...(w.o.trace ? ['2>>', join(w.o.trace, `run-${w.runNo}-serve.trace`)] : [])].join(' ');
  w.sshd.setAuthorizedKeys([
    { publicKey: w.serveKey.publicKey, command: forced },
    { publicKey: w.floorKey.publicKey },
  ]);
  return { dir, home, hub, homeToml, hubToml, serveRss };
}

function sshClientArgs(w: World, proxy: CutProxy, key: KeyFiles, knownHosts: string): string[] {
  return [
    '-F', '/dev/null',
    '-p', String(proxy.port),
    '-i', key.privatePath,
    '-o', 'IdentitiesOnly=yes',
    '-o', `UserKnownHostsFile=${knownHosts}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'BatchMode=yes',
    '-o', 'Compression=no',
    '-o', 'LogLevel=ERROR',
    `${w.sshd.user}@127.0.0.1`,
  ];
}

// ---------------------------------------------------------------------------------------
// enqueue and verify

interface Enqueued {
  /** job id → sha256 of the payload (From_ line + message) */
  jobs: Map<string, string>;
  /** corpus bytes (the messages alone) */
  raw: number;
  /** job file bytes in out/hub */
  files: number;
  ms: number;
}

async function enqueueCorpus(spool: Spool, files: string[]): Promise<Enqueued> {
  const t0 = Date.now();
  const jobs = new Map<string, string>();
  let raw = 0;
  let bytes = 0;
  const date = new Date();
  const sender = 'list-owner@home.example';
  const fromLine = Buffer.from(formatFromLine({ sender, date, remoteFrom: 'home' }));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const file = files[next++]!;
      const message = await readFile(file);
      const payload = Buffer.concat([fromLine, message]);
      const id = newJobId();
      const r = await spool.writeJob('out', 'hub', { id, from: 'home', to: 'hub', created: date.toISOString(), command: 'rmail', args: ['me@hub.example'], sender, recipients: ['me@hub.example'] }, payload, { maxSize: 64 * MiB });
      jobs.set(id, sha256(payload));
      raw += message.length;
      bytes += r.size;
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return { jobs, raw, files: bytes, ms: Date.now() - t0 };
}

/** every job in hub's in/home exactly once, same payload hash; home's out/hub empty */
async function verifyRelayed(s: Sites, want: Map<string, string>): Promise<string | undefined> {
  const got = await s.hub.listJobs('in', 'home');
  const left = await s.home.listJobs('out', 'hub');
  if (left.length) return `${left.length} jobs still in home's out/hub`;
  if (got.length !== want.size) return `${got.length} jobs in hub's in/home, expected ${want.size}`;
  for (const ref of got) {
    const expected = want.get(ref.id);
    if (expected === undefined) return `unexpected job ${ref.id} in hub's in/home`;
    const job = await s.hub.readJob(ref);
    const h = await sha256File(ref.path, job.payloadOffset);
    if (h !== expected) return `job ${ref.id}: payload hash ${h.slice(0, 12)} differs from the one enqueued ${expected.slice(0, 12)}`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// one measured transfer

interface Measured {
  size: string;
  variant: Variant;
  round: number;
  messages: number;
  raw: number;
  ms: number;
  wire: number;
  wireUp: number;
  wireDown: number;
  rssClient?: number;
  rssServer?: number;
  /** user + system CPU seconds of sync and serve */
  cpuClient?: number;
  cpuServer?: number;
  summary?: string;
  /** set when this run failed: the first line of the error */
  failed?: string;
}

/**
 * The environment `mailbag sync` gets from cron or a systemd timer: PATH, HOME and the
 * user's names, nothing of this shell's (NODE_EXTRA_CA_CERTS, set on this machine, alone
 * doubles Node's start-up). The far side's `serve` gets sshd's own clean environment.
 */
function syncEnv(o: Options): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of ['PATH', 'HOME', 'LOGNAME', 'USER', 'LANG']) if (process.env[k] !== undefined) env[k] = process.env[k];
  if (o.trace) env.MAILBAG_TRACE = '1';
  return env;
}

async function syncOnce(w: World, s: Sites, proxy: CutProxy = w.proxy): Promise<{ ran: Ran; exitAt: Date; up: number; down: number; rssClient?: number; rssServer?: number; cpuClient?: number; cpuServer?: number }> {
  const clientRss = join(s.dir, `sync-${Date.now()}.rss`);
  const serveBefore = timeLines(s.serveRss).length;
  const up0 = proxy.bytesUp;
  const down0 = proxy.bytesDown;
  const spawned = Date.now();
  const ran = await run([TIME, '-f', TIME_FORMAT, '-o', clientRss, process.execPath, ...nodeArgs(w.o), ...(w.o.shim ? shimArgs() : []), mailbagBin(), 'sync', 'hub', '--no-run', '--config', s.homeToml], w.o.timeoutS, syncEnv(w.o));
  const exitAt = new Date(spawned + ran.ms);
  if (w.o.trace) writeFileSync(join(w.o.trace, `run-${w.runNo}-sync.trace`), ran.stderr, { flag: 'a' });
  const client = await peakRss(clientRss, 5000);
  // the far side's serve ends after the client: wait (bounded) for its line
  let server: Used | undefined;
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const lines = timeLines(s.serveRss);
    if (lines.length > serveBefore) {
      server = lines[lines.length - 1];
      break;
    }
    await sleep(50);
  }
  return { ran, exitAt, up: proxy.bytesUp - up0, down: proxy.bytesDown - down0, rssClient: client?.rss, rssServer: server?.rss, cpuClient: client?.cpu, cpuServer: server?.cpu };
}

/**
 * Where a session's time went, from both ends' MAILBAG_TRACE (one clock): when serve's
 * HELLO arrived after sync's start, HELLO to serve's BYE, serve's last byte received to
 * its last ACK, that ACK to sync's BYE, sync's last removal of acknowledged jobs
 * against its BYE, and (given `exitAt`, when the bench saw sync exit) sync's BYE to its
 * exit: the session's end (the link's close, the far serve's exit). Undefined when a
 * trace lacks a line.
 */
export function traceTimeline(serve: string, sync: string, exitAt?: Date): string | undefined {
  const at = (text: string, re: RegExp): number[] =>
    text.split('\n').flatMap((l) => {
      const m = /^(\d\d):(\d\d):(\d\d\.\d+) (.*)$/.exec(l);
      return m && re.test(m[4]!) ? [Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3])] : [];
    });
  const start = at(sync, /process started/)[0];
  const hello = at(serve, /^\S+ < HELLO/)[0];
  const byeServe = at(serve, /^\S+ > BYE/)[0];
  const lastByte = Math.max(...at(serve, /received all of/));
  const lastAck = Math.max(...at(serve, /^\S+ > ACK/));
  const byeSync = at(sync, /^\S+ > BYE/)[0];
  const removed = Math.max(...at(sync, /removed \d+ jobs/));
  if ([start, hello, byeServe, byeSync].some((x) => x === undefined) || ![lastByte, lastAck, removed].every(Number.isFinite)) return undefined;
  const s = (x: number): string => x.toFixed(3);
  // the trace's clock is the time of day (UTC); a session across midnight gets no exit figure
  const exit = exitAt ? exitAt.getUTCHours() * 3600 + exitAt.getUTCMinutes() * 60 + exitAt.getUTCSeconds() + exitAt.getUTCMilliseconds() / 1000 : undefined;
  const toExit = exit !== undefined && exit >= byeSync! ? `, sync's BYE→its exit ${s(exit - byeSync!)} s` : '';
  return `HELLO at +${s(hello! - start!)} s, HELLO→serve's BYE ${s(byeServe! - hello!)} s, last byte→last ACK ${s(lastAck - lastByte)} s, last ACK→sync's BYE ${s(byeSync! - lastAck)} s, sync's last removal ${removed - byeSync! >= 0 ? '+' : ''}${s(removed - byeSync!)} s from its BYE${toExit}`;
}

/**
 * The session's start and end on one clock, from both ends' MAILBAG_TRACE (session 11):
 * after sync's process start, when it reached the far side (`command: ssh spawned`, or
 * ssh2's TCP connection opened), when the far serve's process started (sshd, the
 * account's shell and Node in between), had its configuration, sent its HELLO and read
 * sync's; and after serve's BYE, when serve's session was over, its stage worker stopped,
 * the ssh child exited (command transport) and sync's session was over. A step a trace
 * lacks is left out; undefined without sync's start or serve's BYE.
 */
export function traceEnds(serve: string, sync: string): string | undefined {
  const at = (text: string, re: RegExp): number | undefined => {
    for (const l of text.split('\n')) {
      const m = /^(\d\d):(\d\d):(\d\d\.\d+) (.*)$/.exec(l);
      if (m && re.test(m[4]!)) return Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
    }
    return undefined;
  };
  const loaded = (text: string, who: string): number | undefined => {
    const m = new RegExp(`^\\S+ ${who}: process started; (\\d\\d):(\\d\\d):(\\d\\d\\.\\d+) configuration loaded`, 'm').exec(text);
    return m ? Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) : undefined;
  };
  const start = at(sync, /^sync: process started/);
  const bye = at(serve, /^\S+ > BYE/);
  if (start === undefined || bye === undefined) return undefined;
  const from = (x: number | undefined, t0: number, label: string): string[] => (x === undefined ? [] : [`${label} ${x - t0 >= 0 ? '+' : ''}${(x - t0).toFixed(3)}`]);
  const starts = [
    ...from(loaded(sync, 'sync'), start, "sync's configuration"),
    ...from(at(sync, /^command: \S+ spawned/), start, 'ssh spawned'),
    ...from(at(sync, /^ssh: opening a TCP connection/), start, 'TCP opened'),
    ...from(at(serve, /^serve: process started/), start, 'serve started'),
    ...from(loaded(serve, 'serve'), start, "serve's configuration"),
    ...from(at(serve, /^\S+ > HELLO/), start, "serve's HELLO"),
    ...from(at(serve, /^\S+ < HELLO/), start, "sync's HELLO read"),
  ];
  const ends = [
    ...from(at(serve, /^serve: session over/), bye, "serve's session over"),
    ...from(at(serve, /^serve: stage worker stopped/), bye, 'its stage worker stopped'),
    ...from(at(sync, /^command: \S+ exited/), bye, 'ssh exited'),
    ...from(at(sync, /^sync: session over/), bye, "sync's session over"),
  ];
  return `start (s after sync's): ${starts.join(', ')}; end (s after serve's BYE): ${ends.join(', ')}`;
}

async function relayCorpus(w: World, files: string[], sizeLabel: string, round: number, variant: Variant): Promise<Measured> {
  const s = await makeSites(w, variant);
  try {
    const q = await enqueueCorpus(s.home, files);
    log(`  ${sizeLabel} round ${round} ${VARIANT_LABEL[variant]}: ${q.jobs.size} jobs enqueued in ${(q.ms / 1000).toFixed(1)} s`);
    if (variant === 'floor') {
      const src = s.home.path('out', 'hub');
      const dest = join(s.dir, 'floor-dest');
      const knownHosts = join(s.dir, 'known_hosts');
      const ssh = ['ssh', ...sshClientArgs(w, w.proxy, w.floorKey, knownHosts), `mkdir -p ${dest} && tar xz -C ${dest} && sync`];
      const quoted = ssh.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
      const up0 = w.proxy.bytesUp;
      const down0 = w.proxy.bytesDown;
      const ran = await run(['bash', '-c', `set -o pipefail; tar c -C '${src}' . | gzip -6 | ${quoted}`], w.o.timeoutS);
      const up = w.proxy.bytesUp - up0;
      const down = w.proxy.bytesDown - down0;
      if (ran.code !== 0) throw new Error(exitReport('floor', ran));
      // the floor moved every file, byte for byte
      const names = readdirSync(src);
      if (readdirSync(dest).length !== names.length) throw new Error(`floor: ${readdirSync(dest).length} files arrived, ${names.length} sent`);
      for (const n of names) if ((await sha256File(join(src, n))) !== (await sha256File(join(dest, n)))) throw new Error(`floor: ${n} differs`);
      return { size: sizeLabel, variant, round, messages: q.jobs.size, raw: q.raw, ms: ran.ms, wire: up + down, wireUp: up, wireDown: down };
    }
    const r = await syncOnce(w, s);
    if (w.o.trace) {
      const line = traceTimeline(readFileSync(join(w.o.trace, `run-${w.runNo}-serve.trace`), 'utf8'), r.ran.stderr, r.exitAt);
      if (line) log(`    run ${w.runNo} timeline: ${line}`);
      const ends = traceEnds(readFileSync(join(w.o.trace, `run-${w.runNo}-serve.trace`), 'utf8'), r.ran.stderr);
      if (ends) log(`    run ${w.runNo} ${ends}`);
    }
    if (r.ran.code !== 0) throw new Error(exitReport(VARIANT_LABEL[variant], r.ran));
    const bad = await verifyRelayed(s, q.jobs);
    if (bad) throw new Error(`${VARIANT_LABEL[variant]}: ${bad}`);
    return {
      size: sizeLabel, variant, round, messages: q.jobs.size, raw: q.raw, ms: r.ran.ms, wire: r.up + r.down, wireUp: r.up, wireDown: r.down,
      rssClient: r.rssClient, rssServer: r.rssServer, cpuClient: r.cpuClient, cpuServer: r.cpuServer, summary: r.ran.stdout.trim(),
    };
  } finally {
    // the runs' files are removed with the temp dir at the end, not here: on ext4 without
    // a journal a file created within a minute or so of many removals nearby skips every
    // recently freed inode (`recently_deleted`), and each run would pay for the removal
    // of the one before it (the floor's 20,000 files, then mailbag's): see bench/README.md
  }
}

// ---------------------------------------------------------------------------------------
// one huge message, streamed

/** A message of `bytes` bytes: a header, then corpus messages concatenated (cycled), read file by file. */
async function* hugeMessage(files: string[], bytes: number, hash: ReturnType<typeof createHash>): AsyncGenerator<Uint8Array> {
  const head = Buffer.from(`From: big@home.example\nTo: me@hub.example\nSubject: ${bytes} bytes of corpus mail\nMessage-ID: <big.${Date.now()}@home.example>\n\n`);
  hash.update(head);
  yield head;
  let left = bytes - head.length;
  for (let i = 0; left > 0; i = (i + 1) % files.length) {
    let b = await readFile(files[i]!);
    if (b.length > left) b = b.subarray(0, left);
    left -= b.length;
    hash.update(b);
    yield b;
  }
}

async function enqueueHuge(spool: Spool, files: string[], bytes: number): Promise<{ id: string; hash: string; ms: number }> {
  const t0 = Date.now();
  const sender = 'big@home.example';
  const date = new Date();
  const hash = createHash('sha256');
  const fromLine = Buffer.from(formatFromLine({ sender, date, remoteFrom: 'home' }));
  hash.update(fromLine);
  const body = hugeMessage(files, bytes, hash);
  const payload = (async function* () {
    yield fromLine;
    yield* body;
  })();
  const id = newJobId();
  await spool.writeJob('out', 'hub', { id, from: 'home', to: 'hub', created: date.toISOString(), command: 'rmail', args: ['me@hub.example'], sender, recipients: ['me@hub.example'] }, payload, { maxSize: 4 * 1024 * MiB - 1 });
  return { id, hash: hash.digest('hex'), ms: Date.now() - t0 };
}

interface CutResult {
  messageBytes: number;
  refUp: number;
  refDown: number;
  refMs: number;
  cutAt: number;
  firstExit: number | null;
  firstUp: number;
  partial: number;
  resumeUp: number;
  resumeDown: number;
  resumeMs: number;
  resent: number;
}

async function cutTest(w: World, files: string[], via: 'ssh2' | 'ssh'): Promise<CutResult> {
  const bytes = w.o.cutMB * MB;
  // reference: the same size of message, uncut, through the counting proxy
  const ref = await makeSites(w, via);
  let refUp: number;
  let refDown: number;
  let refMs: number;
  try {
    const q = await enqueueHuge(ref.home, files, bytes);
    log(`  cut test: reference ${w.o.cutMB} MB job enqueued in ${(q.ms / 1000).toFixed(1)} s`);
    const r = await syncOnce(w, ref);
    if (r.ran.code !== 0) throw new Error(`${exitReport('cut reference sync', r.ran)}\n${await spaceNote(w.dir)}`);
    const bad = await verifyRelayed(ref, new Map([[q.id, q.hash]]));
    if (bad) throw new Error(`cut reference: ${bad}`);
    refUp = r.up;
    refDown = r.down;
    refMs = r.ran.ms;
  } finally {
    if (!w.o.keep) rmSync(ref.dir, { recursive: true, force: true });
  }

  // the cut: connection 0 is reset once half the reference's upstream bytes went through
  const cutAt = Math.floor(refUp / 2);
  const proxy = await startCutProxy({ target: { host: '127.0.0.1', port: w.sshd.port }, direction: 'up', cutAfter: (n) => (n === 0 ? cutAt : undefined) });
  const s = await makeSites(w, via, proxy);
  try {
    const q = await enqueueHuge(s.home, files, bytes);
    const first = await syncOnce(w, s, proxy);
    if (first.ran.code === 0) throw new Error('the cut sync exited 0: the cut came too late');
    if (proxy.cuts !== 1) throw new Error(`expected one cut, the proxy made ${proxy.cuts}`);
    const partDir = s.hub.path('bags', 'in', 'home');
    const parts = existsSync(partDir) ? readdirSync(partDir).filter((n) => n.endsWith('.part')) : [];
    const partial = parts.reduce((sum, n) => sum + statSync(join(partDir, n)).size, 0);
    const second = await syncOnce(w, s, proxy);
    if (second.ran.code !== 0) throw new Error(`${exitReport('resumed sync', second.ran)}\n${await spaceNote(w.dir)}`);
    const bad = await verifyRelayed(s, new Map([[q.id, q.hash]]));
    if (bad) throw new Error(`cut test: ${bad}`);
    return {
      messageBytes: bytes, refUp, refDown, refMs, cutAt, firstExit: first.ran.code, firstUp: first.up, partial,
      resumeUp: second.up, resumeDown: second.down, resumeMs: second.ran.ms, resent: first.up + second.up - refUp,
    };
  } finally {
    await proxy.close();
    if (!w.o.keep) rmSync(s.dir, { recursive: true, force: true });
  }
}

interface BigResult {
  messageBytes: number;
  enqueueMs: number;
  ms: number;
  wireUp: number;
  wireDown: number;
  rssClient?: number;
  rssServer?: number;
}

async function bigTest(w: World, files: string[], via: 'ssh2' | 'ssh'): Promise<BigResult> {
  const bytes = w.o.bigMB * MB;
  // a full disk half-way through says less than this, and after minutes
  const space = await diskSpace(w.dir);
  const short = bigSpaceProblem(w.dir, bytes, space.free);
  if (short) throw new Error(short);
  log(`  big: ${(space.free / MB).toFixed(0)} MB free in ${w.dir}, about ${(bigSpaceNeeded(bytes) / MB).toFixed(0)} MB needed`);
  const s = await makeSites(w, via);
  try {
    const q = await enqueueHuge(s.home, files, bytes);
    log(`  big: ${w.o.bigMB} MB job enqueued (streamed) in ${(q.ms / 1000).toFixed(1)} s; relaying…`);
    const r = await syncOnce(w, s);
    if (w.o.trace) {
      const line = traceTimeline(readFileSync(join(w.o.trace, `run-${w.runNo}-serve.trace`), 'utf8'), r.ran.stderr);
      if (line) log(`    run ${w.runNo} timeline: ${line}`);
    }
    if (r.ran.code !== 0) throw new Error(`${exitReport('big sync', r.ran)}\n${await spaceNote(w.dir)}`);
    const bad = await verifyRelayed(s, new Map([[q.id, q.hash]]));
    if (bad) throw new Error(`big: ${bad}`);
    return { messageBytes: bytes, enqueueMs: q.ms, ms: r.ran.ms, wireUp: r.up, wireDown: r.down, rssClient: r.rssClient, rssServer: r.rssServer };
  } finally {
    if (!w.o.keep) rmSync(s.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------
// report

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function mb(n: number | undefined): string {
  return n === undefined ? '?' : (n / MiB).toFixed(0);
}

function ensureCorpusEnv(): void {
  // test/helpers/corpus.ts finds ../shared/corpus from its own place in the source tree;
  // built into dist/ it would look one level too deep
  process.env.MAILBAG_CORPUS ??= resolve(repoRoot, '../shared/corpus');
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const o = parseArgs(argv);
  for (const f of [mailbagBin(), TIME, SSHD_BIN, '/usr/bin/ssh', '/usr/bin/ssh-keygen']) if (!existsSync(f)) throw new Error(`${f} is missing (${f === mailbagBin() ? 'npm run build' : 'apt-get install openssh-server openssh-client time'})`);
  ensureCorpusEnv();
  if (o.cpuProf) mkdirSync(o.cpuProf, { recursive: true });
  if (o.trace) mkdirSync(o.trace, { recursive: true });
  const bulk = corpusFiles('bulk');
  const large = o.cut ? corpusFiles('large') : [];

  const dir = mkdtempSync(join(o.tmp ?? tmpdir(), 'mailbag-bench-relay-'));
  snapRoot = snapshotDist(dir);
  o.shim = needsSsh2Shim();
  if (o.shim) log(SHIM_NOTE);
  const keys = join(dir, 'keys');
  mkdirSync(keys, { mode: 0o700 });
  const serveKey = makeKey(keys, 'home_ed25519');
  const floorKey = makeKey(keys, 'floor_ed25519');
  let sshd: Sshd | undefined;
  let proxy: CutProxy | undefined;
  const started = Date.now();
  try {
    mkdirSync(join(dir, 'sshd'), { mode: 0o700 });
    sshd = await startSshd({ authorizedKeys: [{ publicKey: serveKey.publicKey, command: 'false' }], dir: join(dir, 'sshd') });
    proxy = await startCutProxy({ target: { host: '127.0.0.1', port: sshd.port } });
    const w: World = { dir, sshd, proxy, serveKey, floorKey, o, runNo: 0 };
    log(`bench relay: sshd pid ${sshd.pid} on 127.0.0.1:${sshd.port}, counting proxy on :${proxy.port}, temp ${dir}`);

    const results: Measured[] = [];
    for (const size of o.corpus ? o.sizes : []) {
      const files = Number.isFinite(size) ? bulk.slice(0, size) : bulk;
      const label = `${files.length}`;
      const rounds = o.rounds || (files.length < 5000 ? 3 : 1);
      for (let round = 1; round <= rounds; round++) {
        for (const v of o.variants) {
          try {
            results.push(await relayCorpus(w, files, label, round, v));
          } catch (err) {
            const failed = err instanceof Error ? err.message : String(err);
            log(`  FAILED ${label} round ${round} ${VARIANT_LABEL[v]}: ${failed}`);
            results.push({ size: label, variant: v, round, messages: files.length, raw: NaN, ms: NaN, wire: NaN, wireUp: NaN, wireDown: NaN, failed });
          }
        }
      }
    }
    // the huge transfers go over ssh2 unless it failed above (then the system ssh)
    const ssh2Failed = results.some((r) => r.variant === 'ssh2' && r.failed);
    const via: 'ssh2' | 'ssh' = o.via ?? (ssh2Failed ? 'ssh' : 'ssh2');
    // the whole report (exitReport: the stderr tail, where a cause such as a full disk is)
    const attempt = async <T>(what: string, f: () => Promise<T>): Promise<T | string> => {
      try {
        return await f();
      } catch (err) {
        const failed = err instanceof Error ? err.message : String(err);
        log(`  FAILED ${what}: ${failed}`);
        return failed;
      }
    };
    const cut = o.cut ? await attempt('cut test', () => cutTest(w, large, via)) : undefined;
    const big = o.big ? await attempt('big', () => bigTest(w, bulk, via)) : undefined;

    // ---- figures
    const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const sshV = spawnSync('ssh', ['-V'], { encoding: 'utf8' });
    const machine = `${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${cpus().length} cores, node ${process.version}, ${(sshV.stderr || sshV.stdout).trim().split(',')[0]}`;
    const git = (args: string[]): string => spawnSync('git', ['-C', repoRoot, ...args], { encoding: 'utf8' }).stdout?.trim() ?? '';
    const dirty = git(['status', '--porcelain', '--', 'lib', 'bin']) ? ', lib/ or bin/ modified in the work tree' : '';
    const lines = [`${date} — ${machine}; mailbag at ${git(['rev-parse', '--short', 'HEAD']) || process.env.MAILBAG_COMMIT || 'unknown commit'}${dirty}`, ''];
    if (o.shim) lines.push(SHIM_NOTE, '');
    if (results.length > 0) {
      lines.push('| messages (raw MB) | variant | wall s (median) | × floor | wire MB | wire / raw | peak RSS sync / serve MB | CPU s sync / serve (median) | rounds |');
      lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|');
    }
    const sizes = [...new Set(results.map((r) => r.size))];
    for (const size of sizes) {
      const floor = results.filter((r) => r.size === size && r.variant === 'floor');
      const floorMs = floor.length ? median(floor.map((r) => r.ms)) : NaN;
      for (const v of o.variants) {
        const all = results.filter((r) => r.size === size && r.variant === v);
        if (!all.length) continue;
        const rs = all.filter((r) => !r.failed);
        const failures = all.filter((r) => r.failed);
        if (!rs.length) {
          lines.push(`| ${size} | ${VARIANT_LABEL[v]} | FAILED: ${oneLine(failures[0]!.failed!).slice(0, 300).replace(/\|/g, '/')} | | | | | | ${all.length} |`);
          continue;
        }
        const ms = median(rs.map((r) => r.ms));
        const wire = median(rs.map((r) => r.wire));
        const raw = rs[0]!.raw;
        const rss = v === 'floor' ? '—' : `${mb(Math.max(...rs.map((r) => r.rssClient ?? NaN)))} / ${mb(Math.max(...rs.map((r) => r.rssServer ?? NaN)))}`;
        const cpu = v === 'floor' ? '—' : `${median(rs.map((r) => r.cpuClient ?? NaN)).toFixed(2)} / ${median(rs.map((r) => r.cpuServer ?? NaN)).toFixed(2)}`;
        lines.push(
          `| ${size} (${(raw / MB).toFixed(1)}) | ${VARIANT_LABEL[v]} | ${(ms / 1000).toFixed(2)} (${rs.map((r) => (r.ms / 1000).toFixed(2)).join(', ')}) | ${(ms / floorMs).toFixed(2)} | ${(wire / MB).toFixed(2)} | ${(wire / raw).toFixed(3)} | ${rss} | ${cpu} | ${rs.length}${failures.length ? ` (+${failures.length} FAILED)` : ''} |`,
        );
      }
    }
    if (results.length > 0) lines.push('', 'targets: wall ≤ 1.0 × floor; wire ≤ 0.20 × raw corpus bytes; peak RSS ≤ 150 MB (each end)');
    if (typeof cut === 'string') lines.push('', `cut and resume: FAILED: ${cut}`);
    else if (cut) {
      lines.push(
        '',
        `cut and resume, ${(cut.messageBytes / MB).toFixed(0)} MB message (corpus large part concatenated), ${VARIANT_LABEL[via]}:`,
        `  uncut reference: ${(cut.refUp / MB).toFixed(2)} MB up, ${(cut.refDown / MB).toFixed(3)} MB down, ${(cut.refMs / 1000).toFixed(1)} s`,
        `  cut after ${(cut.cutAt / MB).toFixed(2)} MB up: sync exit ${cut.firstExit}, receiver's partial bag ${(cut.partial / MB).toFixed(2)} MB`,
        `  resumed: ${(cut.resumeUp / MB).toFixed(2)} MB up, ${(cut.resumeDown / MB).toFixed(3)} MB down, ${(cut.resumeMs / 1000).toFixed(1)} s, exit 0, job verified`,
        `  sent again: ${(cut.resent / MB).toFixed(3)} MB = ${((100 * cut.resent) / cut.refUp).toFixed(2)} % of the transfer (${((100 * cut.resent) / cut.messageBytes).toFixed(2)} % of the message); target ≤ 1 %`,
      );
    }
    if (typeof big === 'string') lines.push('', `big: FAILED: ${big}`);
    else if (big) {
      lines.push(
        '',
        `big: one ${(big.messageBytes / MB).toFixed(0)} MB message (bulk concatenated), ${VARIANT_LABEL[via]}: ${(big.ms / 1000).toFixed(1)} s, wire ${((big.wireUp + big.wireDown) / MB).toFixed(1)} MB,` +
          ` peak RSS sync ${mb(big.rssClient)} MB / serve ${mb(big.rssServer)} MB (target ≤ 200 MB); job verified`,
      );
    }
    lines.push('', `whole bench: ${((Date.now() - started) / 1000).toFixed(0)} s`);
    process.stdout.write(`${lines.join('\n')}\n`);
    if (o.json) writeFileSync(o.json, `${JSON.stringify({ date, machine, results, cut, big }, null, 2)}\n`);
    const failed = results.some((r) => r.failed) || typeof cut === 'string' || typeof big === 'string';
    return failed ? 1 : 0;
  } finally {
    await proxy?.close();
    await sshd?.stop();
    if (o.keep) log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}
