// Per-message cost of getting mail from a real Postfix into a spool, three ways in one
// run: LMTP to `mailbag lmtpd` (one long-running process), Postfix's pipe transport
// running `mailbag enqueue` per message, and the pipe transport running Taylor UUCP's
// `uux` per message (Debian's master.cf line). The same N corpus messages are submitted
// for each over SMTP into Postfix's hold queue; each method's messages are then released
// together (postsuper -H, then postqueue -f) and timed from the moment postsuper -H has
// moved them out of the hold queue until the last one is in its spool (postsuper -H's own
// time, the bench's device and no part of delivering, is printed apart, and the figure
// with it as it was counted until session 5). Every message must arrive. A second end
// point, the same for every method: when Postfix had had its answer for every message
// (its N-th `status=sent` log line for the method: lmtpd's `250`, the pipe command's exit).
// That is the issue's "per message" (what the MTA waits for; lmtpd answers once the job is
// durable in its journal); the spool end point comes after it for lmtp (its jobs are
// written into out/ after their answer) and before it for the pipes.
// Postfix's LMTP service and lmtpd's limits are the ones docs/lmtp.md recommends, read
// from the page's snippets.
// Besides, LMTP listeners that store nothing (bench/lmtp-sink.ts), delivered to by the
// same Postfix service with the same settings and timed the same way (until the N-th
// transaction is answered): `sink` (a minimal hand-written server), `smtp-server` (the
// library lmtpd uses, draining each message), `lmtp-server` (lmtpd's listener code with a
// store that discards). uux ÷ sink is the best ratio any LMTP listener could reach with
// this Postfix on this machine.

import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, readSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { taylorConfig } from './taylor.js';
import { SINK_KINDS, type SinkKind } from './lmtp-sink.js';
import { fileURLToPath } from 'node:url';
import { corpusFiles, haveCorpus } from '../test/helpers/corpus.js';
import { ensureTestUser, makeOwnedDir, makeSharedTempDir, removeTempDir, run } from '../test/helpers/mta-common.js';
import { havePostfix, startPostfix, type PostfixInstance } from '../test/helpers/postfix.js';
import { LmtpClient, stuff } from '../test/unit/lmtp/lmtp-client.js';
import { childPids, startLmtpd, type Lmtpd } from '../test/unit/lmtp/lmtpd-process.js';
import { lmtpdEnvironment, lmtpTomlNumber, postfixRecommendation } from '../test/unit/lmtp/docs-snippets.js';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const TAYLOR_UUX = '/usr/bin/uux';
const METHODS = ['lmtp', 'enqueue', 'uux', ...SINK_KINDS] as const;
type Method = (typeof METHODS)[number];
/** what runs unless --methods says otherwise */
const DEFAULT_METHODS: Method[] = ['lmtp', 'enqueue', 'uux', 'sink'];
const isSink = (m: Method): m is SinkKind => (SINK_KINDS as readonly string[]).includes(m);

const USAGE = `usage: npm run bench -- lmtp [options]
  --messages N           measured messages per method (default 1000)
  --methods A,B,…        in the order released (default ${DEFAULT_METHODS.join(',')}); of:
                           lmtp         Postfix → mailbag lmtpd (docs/lmtp.md's service)
                           enqueue      Postfix's pipe → mailbag enqueue, one process per message
                           uux          Postfix's pipe → Taylor uux (Debian's master.cf line)
                           sink         Postfix → a minimal LMTP server that stores nothing
                           smtp-server  Postfix → the smtp-server library, draining each message
                           lmtp-server  Postfix → lmtpd's listener code, its store discarding
                         (the three sinks: the same Postfix service and settings as lmtp,
                         bench/lmtp-sink.ts; uux ÷ sink is the best any listener could do)
  --warm-up N            per method, N messages delivered through Postfix first (not measured)
  --lmtpd-warm-up N      N messages fed straight over its socket to lmtpd and to each sink
                         before the submission (not measured)
  --postconf 'K = V'     an extra main.cf line (experiments; the recorded figures use none)
  --lmtpd-workers N      lmtp.workers for lmtpd
  --postfix-log FILE     keep Postfix's log (delays=, conn_use= per delivery)
  --json FILE            the figures as JSON
Needs root, the shared corpus, Postfix and Taylor UUCP. Postfix's queue and the spools
are made under TMPDIR: for repeatable figures point it at a freshly made file system for
each run (bench/README.md, lmtp).`;

interface Options {
  messages: number;
  json?: string;
  methods: Method[];
  /** extra main.cf lines (experiments; the recorded figures use none) */
  postconf: string[];
  /** lmtp.workers for lmtpd (unset: its default, 1) */
  workers?: number;
  /** messages per method delivered (and not measured) before the measured release */
  warmUp: number;
  /** messages fed straight to lmtpd over its socket before the submission (not measured) */
  lmtpdWarmUp: number;
  /** write Postfix's log here at the end (its per-delivery delays, conn_use) */
  postfixLog?: string;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { messages: 1000, methods: [...DEFAULT_METHODS], postconf: [], warmUp: 0, lmtpdWarmUp: 0 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--messages' && v !== undefined && /^\d+$/.test(v) && Number(v) > 0) {
      o.messages = Number(v);
      i++;
    } else if (a === '--json' && v !== undefined) {
      o.json = v;
      i++;
    } else if (a === '--methods' && v !== undefined && v.split(',').every((m) => (METHODS as readonly string[]).includes(m))) {
      // in the order given: each method is released in turn, and the first one follows the submission
      o.methods = [...new Set(v.split(','))] as Method[];
      i++;
    } else if (a === '--postconf' && v !== undefined && /^[\w-]+\s*=/.test(v)) {
      o.postconf.push(v);
      i++;
    } else if (a === '--warm-up' && v !== undefined && /^\d+$/.test(v)) {
      o.warmUp = Number(v);
      i++;
    } else if (a === '--lmtpd-warm-up' && v !== undefined && /^\d+$/.test(v)) {
      o.lmtpdWarmUp = Number(v);
      i++;
    } else if (a === '--postfix-log' && v !== undefined) {
      o.postfixLog = v;
      i++;
    } else if (a === '--lmtpd-workers' && v !== undefined && /^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= 256) {
      o.workers = Number(v);
      i++;
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new Error(`unknown option ${a}\n${USAGE}`);
  }
  return o;
}

function countFiles(dir: string, match: (name: string) => boolean): number {
  if (!existsSync(dir)) return 0;
  if (!statSync(dir, { throwIfNoEntry: false })) return 0;
  let n = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      continue; // a tmp file that went away meanwhile
    }
    if (isDir) n += countFiles(p, match);
    else if (match(name)) n++;
  }
  return n;
}


/** utime+stime (+ reaped children's with `children`) of a process, in ms; 0 when it is gone */
function cpuMs(pid: number, children: boolean): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields after the name: state(3) … utime(14) stime(15) cutime(16) cstime(17), 1-based in proc(5)
    const ticks = Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0);
    return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return 0;
  }
}

/** utime+stime of one thread of a process, in ms; 0 when it is gone */
function threadCpuMs(pid: number, tid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}

/** system (kernel) CPU of a process, stime, in ms; 0 when it is gone */
function sysMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[12]) * 1000) / 100;
  } catch {
    return 0;
  }
}

/** CPU of lmtpd: its own and its live workers' (lmtp.workers above 1), in ms */
function lmtpdCpuMs(pid: number): number {
  return cpuMs(pid, false) + childPids(pid).reduce((n, c) => n + cpuMs(c, false), 0);
}

/** the system (kernel) part of lmtpdCpuMs */
function lmtpdSysMs(pid: number): number {
  return sysMs(pid) + childPids(pid).reduce((n, c) => n + sysMs(c), 0);
}

/**
 * CPU spent by a Postfix instance and everything it runs: its master's reaped children
 * (processes that exited) plus each live child with its own reaped children (a pipe
 * daemon reaps the uux or mailbag it ran), and lmtpd when given.
 */
function treeCpuMs(masterPid: number, extraPids: number[]): number {
  let total = cpuMs(masterPid, true);
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === masterPid) total += cpuMs(Number(name), true);
    } catch {
      // gone meanwhile
    }
  }
  for (const pid of extraPids) total += lmtpdCpuMs(pid);
  return total;
}

interface TreeSnapshot {
  /** the master's own CPU, and its reaped children's */
  master: number;
  reaped: number;
  /** each live child: its name (comm) and CPU with its own reaped children's */
  procs: Map<number, { comm: string; cpu: number }>;
}

/** The CPU of a Postfix instance's processes, by pid (see postfixCpuBy). */
function treeSnapshot(masterPid: number): TreeSnapshot {
  const procs = new Map<number, { comm: string; cpu: number }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== masterPid) continue;
      procs.set(Number(name), { comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), cpu: cpuMs(Number(name), true) });
    } catch {
      // gone meanwhile
    }
  }
  return { master: cpuMs(masterPid, false), reaped: cpuMs(masterPid, true) - cpuMs(masterPid, false), procs };
}

/**
 * The CPU a Postfix instance spent between two snapshots by process name (qmgr, lmtp,
 * scache, pipe, …; names are the kernel's, comm), in ms, so a run says which of Postfix's
 * processes the chain's CPU goes to. `exited`: processes that exited meanwhile (their
 * CPU since the first snapshot, from the master's reaped total: Postfix ends idle or
 * well-used delivery agents, max_idle and max_use), whatever their name.
 */
function postfixCpuBy(a: TreeSnapshot, b: TreeSnapshot): Map<string, number> {
  const out = new Map<string, number>([['master', b.master - a.master]]);
  let vanished = 0;
  for (const [pid, p] of a.procs) if (!b.procs.has(pid)) vanished += p.cpu;
  out.set('exited', b.reaped - a.reaped - vanished);
  for (const [pid, p] of b.procs) out.set(p.comm, (out.get(p.comm) ?? 0) + p.cpu - (a.procs.get(pid)?.cpu ?? 0));
  return out;
}

/** Submit every message once per method over one SMTP connection; Postfix holds them all. */
/**
 * Feed `count` messages (the sample, round and round) straight to lmtpd over its socket,
 * the way Postfix's lmtp client does (50 connections; MAIL, RCPT and DATA pipelined,
 * RSET between messages), so the measured release meets a listener that has run for a
 * while (V8 has compiled its hot paths), not a freshly started one.
 */
async function feedLmtpd(socket: string, messages: string[], count: number): Promise<void> {
  const bodies = messages.map((m) => readFileSync(m));
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(50, count) }, async () => {
    const c = await LmtpClient.connect(socket, 60_000);
    try {
      const greeting = await c.read();
      if (greeting.code !== 220) throw new Error(`lmtpd warm-up: ${greeting.raw}`);
      const lhlo = await c.cmd('LHLO bench.test');
      if (lhlo.code !== 250) throw new Error(`lmtpd warm-up: ${lhlo.raw}`);
      while (next < count) {
        const j = next++;
        const body = bodies[j % bodies.length]!;
        c.write(`MAIL FROM:<sender@bench.test> SIZE=${body.length}\r\nRCPT TO:<lwarm${j}@lmtp.test>\r\nDATA\r\n`);
        const replies = [await c.read(), await c.read(), await c.read()];
        if (replies[2]!.code !== 354) throw new Error(`lmtpd warm-up: ${replies.map((r) => r.raw).join(' | ')}`);
        c.write(stuff(body));
        c.write('.\r\n');
        const done = await c.read();
        if (done.code !== 250) throw new Error(`lmtpd warm-up: ${done.raw}`);
        const rset = await c.cmd('RSET');
        if (rset.code !== 250) throw new Error(`lmtpd warm-up: ${rset.raw}`);
      }
      await c.cmd('QUIT');
    } finally {
      c.destroy();
    }
  }));
}

async function submitAll(pf: PostfixInstance, messages: string[], methods: Method[], warmUp: number): Promise<void> {
  const c = await LmtpClient.connect(pf.smtpPort!, 60_000);
  try {
    if ((await c.read()).code !== 220) throw new Error('no SMTP greeting from Postfix');
    await c.cmd('EHLO bench.test');
    for (const method of methods) {
      // the warm-up's messages (the first of the sample) go to warmI@, the measured ones to rcptI@
      for (let j = 0; j < warmUp + messages.length; j++) {
        const i = j < warmUp ? j % messages.length : j - warmUp;
        const from = await c.cmd('MAIL FROM:<sender@bench.test>');
        const rcpt = await c.cmd(`RCPT TO:<${j < warmUp ? 'warm' : 'rcpt'}${i}@${method}.test>`);
        if (from.code !== 250 || rcpt.code !== 250) throw new Error(`Postfix refused ${method} #${i}: ${from.raw} / ${rcpt.raw}`);
        const [r] = await c.data(readFileSync(messages[i]!), 1);
        if (r!.code !== 250) throw new Error(`Postfix refused ${messages[i]}: ${r!.raw}`);
      }
    }
    await c.cmd('QUIT');
  } finally {
    c.destroy();
  }
}

/** queue ids in the hold queue whose recipient is in DOMAIN (postqueue -j) and starts with PREFIX */
async function heldFor(pf: PostfixInstance, domain: string, prefix: string): Promise<string[]> {
  const r = await run('/usr/sbin/postqueue', ['-c', pf.configDir, '-j'], { timeoutMs: 60_000 });
  return r.stdout.toString('utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { queue_name: string; queue_id: string; recipients: { address: string }[] })
    .filter((m) => m.queue_name === 'hold' && m.recipients.some((x) => x.address.endsWith(`@${domain}`) && x.address.startsWith(prefix)))
    .map((m) => m.queue_id);
}

/**
 * wait until `count` reaches `want`; a deferred or bounced delivery in the log since
 * `logFrom` ends the wait; `base` jobs were there before the release (the warm-up's). Resolves with the time (process.hrtime, ns) the first one came.
 */
async function waitCount(pf: PostfixInstance, logFrom: number, count: () => number, base: number, want: number, what: string, timeoutMs: number): Promise<bigint> {
  const deadline = Date.now() + timeoutMs;
  let checked = Date.now();
  let first: bigint | undefined;
  for (;;) {
    const n = count() - base;
    if (n > 0 && first === undefined) first = process.hrtime.bigint();
    if (n >= want) return first!;
    if (Date.now() > deadline) throw new Error(`${what}: ${count()} of ${want} after ${timeoutMs} ms`);
    if (Date.now() - checked > 1000) {
      checked = Date.now();
      const bad = pf.log().slice(logFrom).split('\n').find((l) => /status=(deferred|bounced)/.test(l));
      if (bad) throw new Error(`${what}: a delivery failed: ${bad}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Counts the measured deliveries Postfix has had its answer for: its log's `status=sent`
 * lines for `rcpt…@DOMAIN` written since `from` (read as the file grows). A delivery is
 * logged so once its agent has the answer: the LMTP client its `250`, the pipe daemon the
 * command's exit 0; the line then goes through postlogd to the file, the same way for
 * every method.
 */
class SentCounter {
  private pos: number;
  private rest = '';
  private n = 0;
  private readonly re: RegExp;
  constructor(private readonly file: string, from: number, domain: string) {
    this.pos = from;
    this.re = new RegExp(` to=<rcpt[^@>]*@${domain.replace(/\./g, '\\.')}>, .*status=sent`);
  }

  count(): number {
    let fd: number;
    try {
      fd = openSync(this.file, 'r');
    } catch {
      return this.n;
    }
    try {
      const buf = Buffer.alloc(1 << 20);
      for (;;) {
        const got = readSync(fd, buf, 0, buf.length, this.pos);
        if (got <= 0) break;
        this.pos += got;
        const text = this.rest + buf.toString('latin1', 0, got);
        const lines = text.split('\n');
        this.rest = lines.pop()!;
        for (const l of lines) if (this.re.test(l)) this.n++;
      }
    } finally {
      closeSync(fd);
    }
    return this.n;
  }
}

/**
 * wait until both the method's count (its spool's end point) and Postfix's count of
 * answered deliveries reach `want`; resolves with when each did (process.hrtime, ns),
 * and when the first job came. A deferred or bounced delivery ends the wait.
 */
async function waitBoth(pf: PostfixInstance, logFrom: number, count: () => number, base: number, answered: SentCounter, want: number, what: string, timeoutMs: number): Promise<{ first: bigint; stored: bigint; answered: bigint }> {
  const deadline = Date.now() + timeoutMs;
  let checked = Date.now();
  let first: bigint | undefined;
  let stored: bigint | undefined;
  let told: bigint | undefined;
  for (;;) {
    const n = count() - base;
    const now = process.hrtime.bigint();
    if (n > 0 && first === undefined) first = now;
    if (n >= want && stored === undefined) stored = now;
    if (told === undefined && answered.count() >= want) told = process.hrtime.bigint();
    if (stored !== undefined && told !== undefined) return { first: first!, stored, answered: told };
    if (Date.now() > deadline) throw new Error(`${what}: ${count()} of ${want} stored, ${answered.count()} answered after ${timeoutMs} ms`);
    if (Date.now() - checked > 1000) {
      checked = Date.now();
      const bad = pf.log().slice(logFrom).split('\n').find((l) => /status=(deferred|bounced)/.test(l));
      if (bad) throw new Error(`${what}: a delivery failed: ${bad}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** one of bench/lmtp-sink.ts's listeners, forked; its count of answered transactions comes over IPC */
interface Sink {
  kind: SinkKind;
  child: ChildProcess;
  pid: number;
  socket: string;
  /** transactions answered so far (as last reported: at most 10 ms old, exact at a target) */
  answered(): number;
  /** ask for a report at once when the count reaches n (and for the first one after this) */
  target(n: number): void;
  stop(): Promise<void>;
}

async function startSink(kind: SinkKind, socket: string, env: NodeJS.ProcessEnv): Promise<Sink> {
  const child = fork(join(repoRoot, 'dist/bench/lmtp-sink.js'), [kind, socket], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let n = 0;
  let ready = false;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.on('message', (m: { n?: number; ready?: boolean }) => {
    if (m.ready) ready = true;
    if (typeof m.n === 'number') n = m.n;
  });
  const deadline = Date.now() + 20_000;
  while (!ready) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`LMTP sink ${kind} exited before it was ready`);
    if (Date.now() > deadline) {
      process.kill(child.pid!, 'SIGKILL');
      throw new Error(`LMTP sink ${kind} not ready within 20 s`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    kind,
    child,
    pid: child.pid!,
    socket,
    answered: () => n,
    target: (t) => child.send({ target: t }),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const t = setTimeout(() => process.kill(child.pid!, 'SIGKILL'), 5000);
      child.send({ stop: true });
      await exited;
      clearTimeout(t);
    },
  };
}

/** peak resident set of a process (VmHWM), MB; 0 when it is gone */
function peakRssMb(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

export async function main(argv: string[]): Promise<number> {
  const o = parseArgs(argv);
  // the helpers find the corpus relative to their own file, which is under dist/ here
  process.env.MAILBAG_CORPUS ??= resolve(repoRoot, '../shared/corpus');
  if (!havePostfix() || !haveCorpus()) return 69;
  if (!existsSync(TAYLOR_UUX)) throw new Error(`${TAYLOR_UUX} is missing (apt-get install uucp)`);
  const mailbag = join(repoRoot, 'dist/bin/mailbag.js');
  const all = corpusFiles('bulk');
  const step = Math.max(1, Math.floor(all.length / o.messages));
  const messages = all.filter((_, i) => i % step === 0).slice(0, o.messages);
  const bytes = messages.reduce((n, m) => n + statSync(m).size, 0);

  const user = ensureTestUser();
  const dir = makeSharedTempDir('bench-lmtp');
  let pf: PostfixInstance | undefined;
  let lmtpd: Lmtpd | undefined;
  const sinks = new Map<SinkKind, Sink>();
  // an interrupted bench must not leave its Postfix, lmtpd and sinks running
  const onSignal = (): void => {
    void Promise.allSettled([pf?.stop(), lmtpd?.stop(), ...[...sinks.values()].map((k) => k.stop())]).then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    // the Postfix service and lmtpd limits docs/lmtp.md recommends, from the page itself
    const rec = postfixRecommendation();
    const maxConnections = lmtpTomlNumber('max_connections');
    const maxRecipients = lmtpTomlNumber('max_recipients');
    // the environment docs/lmtp.md's systemd unit gives lmtpd (UV_THREADPOOL_SIZE), unless
    // the bench's own environment sets it (experiments)
    const unitEnv = Object.fromEntries(Object.entries(lmtpdEnvironment()).filter(([k]) => process.env[k] === undefined));
    lmtpd = await startLmtpd({
      env: unitEnv,
      dir: makeOwnedDir(join(dir, 'lmtpd'), { name: 'root', uid: 0, gid: 0 }, 0o755),
      peers: { hub: ['lmtp.test'] },
      socketMode: '0666',
      extraToml: `max_connections = ${maxConnections}\nmax_recipients = ${maxRecipients}${o.workers !== undefined ? `\nworkers = ${o.workers}` : ''}`,
    });
    // the sinks asked for, each on its own socket (Postfix's lmtp client runs as postfix)
    const sinkDir = makeOwnedDir(join(dir, 'sinks'), { name: 'root', uid: 0, gid: 0 }, 0o755);
    for (const m of o.methods) if (isSink(m)) sinks.set(m, await startSink(m, join(sinkDir, `${m}.sock`), unitEnv));
    // mailbag enqueue runs as the test user (Postfix's pipe refuses root): its own spool
    const home = makeOwnedDir(join(dir, 'enqueue'), user, 0o755);
    const enqueueConfig = join(home, 'mailbag.toml');
    writeFileSync(enqueueConfig, `site = "home"\nspool = "${join(home, 'spool')}"\n\n[peers.hub]\nhost = "hub.invalid"\n`);
    // with -I a non-root caller loses uux's set-uid uucp: the spool belongs to the pipe's user
    const uucp = taylorConfig(dir, 'home', { uid: user.uid, gid: user.gid });
    const access = join(dir, 'hold-all');
    writeFileSync(access, METHODS.map((m) => `${m}.test HOLD\n`).join(''));

    pf = await startPostfix({
      smtp: true,
      masterCf: [
        `mailbag unix - n n - - pipe flags=q null_sender= user=${user.name} argv=${process.execPath} ${mailbag} enqueue $nexthop -f $sender -- $recipient`,
        // Debian's master.cf uucp line, with a private Taylor config
        `uucp unix - n n - - pipe flags=Fqhu user=${user.name} argv=${TAYLOR_UUX} -I ${uucp.config} -r -n -z -a$sender - $nexthop!rmail ($recipient)`,
        ...rec.masterCf,
      ],
      // the sinks through the very service lmtpd gets (its master.cf line and concurrency)
      transports: { 'lmtp.test': `${rec.transport}:unix:${lmtpd.socket}`, 'enqueue.test': 'mailbag:hub', 'uux.test': 'uucp:hub', ...Object.fromEntries([...sinks].map(([k, v]) => [`${k}.test`, `${rec.transport}:unix:${v.socket}`])) },
      mainCf: [
        `smtpd_recipient_restrictions = check_recipient_access texthash:${access}, permit_mynetworks, reject`,
        'mailbag_destination_recipient_limit = 1',
        'uucp_destination_recipient_limit = 1',
        'smtpd_client_connection_count_limit = 0',
        'message_size_limit = 0',
        ...rec.mainCf,
        ...o.postconf,
      ],
      environment: { MAILBAG_CONFIG: enqueueConfig },
    });

    const t0 = Date.now();
    if (o.lmtpdWarmUp > 0 && o.methods.includes('lmtp')) {
      const t1 = Date.now();
      await feedLmtpd(lmtpd.socket, messages, o.lmtpdWarmUp);
      process.stderr.write(`bench lmtp: ${o.lmtpdWarmUp} messages fed straight to lmtpd in ${((Date.now() - t1) / 1000).toFixed(1)} s (warm-up, not measured)\n`);
    }
    for (const sink of sinks.values()) {
      if (o.lmtpdWarmUp === 0) break;
      const t1 = Date.now();
      await feedLmtpd(sink.socket, messages, o.lmtpdWarmUp);
      process.stderr.write(`bench lmtp: ${o.lmtpdWarmUp} messages fed straight to the sink '${sink.kind}' in ${((Date.now() - t1) / 1000).toFixed(1)} s (warm-up, not measured)\n`);
    }
    await submitAll(pf, messages, o.methods, o.warmUp);
    process.stderr.write(`bench lmtp: submitted ${o.methods.length} × ${o.warmUp ? `(${o.warmUp} warm-up + ${messages.length})` : messages.length} messages in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);

    // the spool end point: lmtp and enqueue, the N-th job in out/hub (lmtp: written there
    // after its answer, from the journal; a job over 128 KiB linked just before it); uux,
    // its N-th C. file; a sink, its N-th transaction answered. The other end point, when
    // Postfix had every answer, is counted from its log (SentCounter)
    const sinkCount = (k: SinkKind) => (): number => sinks.get(k)?.answered() ?? 0;
    const done: Record<Method, () => number> = {
      lmtp: () => countFiles(join(lmtpd!.spool, 'out', 'hub'), () => true),
      enqueue: () => countFiles(join(home, 'spool', 'out', 'hub'), () => true),
      uux: () => countFiles(uucp.spool, (n) => n.startsWith('C.')),
      sink: sinkCount('sink'),
      'smtp-server': sinkCount('smtp-server'),
      'lmtp-server': sinkCount('lmtp-server'),
    };
    // every listener's CPU is in every method's figure (an idle one adds nothing)
    const listenerPids = [lmtpd.pid, ...[...sinks.values()].map((k) => k.pid)];
    const listenerPid = (m: Method): number | undefined => (m === 'lmtp' ? lmtpd!.pid : isSink(m) ? sinks.get(m)!.pid : undefined);
    // each LMTP listener's own CPU: total, kernel, event-loop thread, ms / message
    const listenerBy: Partial<Record<Method, { cpu: number; sys: number; main: number }>> = {};
    // deliveries on a reused connection / all, per LMTP method
    const reuseBy: Partial<Record<Method, string>> = {};
    const masterPid = Number(readFileSync(join(pf.queueDir, 'pid/master.pid'), 'latin1').trim());
    const results: { method: Method; ms: number; perMessage: number; perSecond: number; cpuPerMessage: number }[] = [];
    let lmtpdCpuPerMessage = 0;
    let lmtpdSysPerMessage = 0;
    let lmtpdMainPerMessage = 0;
    let lmtpReuse = '';
    const delaysBy: Partial<Record<Method, string>> = {};
    const postfixBy: Partial<Record<Method, string>> = {};
    const firstMs: Partial<Record<Method, number>> = {};
    // when Postfix had had its answer for every measured message, ms after postsuper -H returned
    const answeredMs: Partial<Record<Method, number>> = {};
    // the wall time from before postsuper -H (the definition until session 5)
    const withHoldMs: Partial<Record<Method, number>> = {};
    // how long the release itself took: postsuper -H (moving the held queue files) and postqueue -f
    // lmtp: when the 1st, 10th and 50th measured transactions began their DATA, ms after postsuper -H returned
    let dataMs: number[] = [];
    // lmtp: per job, from its id and its file's mtime and ctime (median / 90th percentile, ms)
    let jobSpans = '';
    const releaseMs: Partial<Record<Method, { postsuper: number; postqueue: number; jobsBeforeFlush: number; activeBeforeFlush: number }>> = {};
    // the queue manager's active queue (flat, unlike deferred): a message there has been taken for delivery
    const activeQueue = (): string[] => readdirSync(join(pf!.queueDir, 'active'));
    for (const method of o.methods) {
      if (o.warmUp > 0) {
        // not measured: the method's first messages (lmtpd's JIT compiles its hot paths on them)
        const warm = await heldFor(pf, `${method}.test`, 'warm');
        if (warm.length !== o.warmUp) throw new Error(`${method}: ${warm.length} warm-up messages on hold, expected ${o.warmUp}`);
        const wFrom = pf.log().length;
        const wBase = done[method]();
        const wr = await run('/usr/sbin/postsuper', ['-c', pf.configDir, '-H', '-'], { input: `${warm.join('\n')}\n`, timeoutMs: 60_000 });
        if (wr.code !== 0) throw new Error(`postsuper -H: ${wr.stderr}`);
        await run('/usr/sbin/postqueue', ['-c', pf.configDir, '-f'], { timeoutMs: 60_000 });
        await waitCount(pf, wFrom, done[method], wBase, o.warmUp, `${method} warm-up`, 10 * 60_000);
        await new Promise((r) => setTimeout(r, 1000));
        process.stderr.write(`bench lmtp: ${method}: ${o.warmUp} warm-up messages delivered\n`);
      }
      // the disk as quiet as we can make it before the clock starts: the submission (Postfix's
      // queue files) and the method before (uux does not fsync) leave dirty pages whose
      // writeback the next method's fsyncs would wait behind (commit to durable 67-70 ms
      // for LMTP released right after the submission, 30 ms after uux)
      await run('/bin/sync', [], { timeoutMs: 120_000 });
      await new Promise((r) => setTimeout(r, 1000));
      const ids = await heldFor(pf, `${method}.test`, 'rcpt');
      if (ids.length !== messages.length) throw new Error(`${method}: ${ids.length} messages on hold, expected ${messages.length}`);
      const logFrom = pf.log().length;
      const sentCounter = new SentCounter(pf.logFile, statSync(pf.logFile).size, `${method}.test`);
      const base = done[method]();
      if (isSink(method)) sinks.get(method)!.target(base + messages.length);
      const cpu0 = treeCpuMs(masterPid, listenerPids);
      const tree0 = treeSnapshot(masterPid);
      // the method's listener (lmtpd or a sink): its CPU, kernel part, and its event-loop
      // thread alone (against the wall per message: is it the serial part?)
      const lPid = listenerPid(method);
      const listenerNow = (): { cpu: number; sys: number; main: number } =>
        lPid === undefined ? { cpu: 0, sys: 0, main: 0 } : { cpu: lmtpdCpuMs(lPid), sys: lmtpdSysMs(lPid), main: threadCpuMs(lPid, lPid) };
      const listener0 = listenerNow();
      const activeBefore = new Set(activeQueue());
      const start = process.hrtime.bigint();
      const startWall = Date.now();
      const rel = await run('/usr/sbin/postsuper', ['-c', pf.configDir, '-H', '-'], { input: `${ids.join('\n')}\n`, timeoutMs: 60_000 });
      if (rel.code !== 0) throw new Error(`postsuper -H: ${rel.stderr}`);
      const released = process.hrtime.bigint();
      // work done before the clock starts, left out of the figure: postsuper -H moves the
      // messages to the deferred queue, which this Postfix's queue manager also scans on its
      // own every queue_run_delay (2 s here), so a scan during postsuper -H (52-695 ms) takes
      // some for delivery early. Jobs already in the spool, and messages in the active queue
      // (taken for delivery, not finished: a delivery under way, which a count of jobs misses)
      const jobsAtFlush = done[method]() - base;
      const activeAtFlush = activeQueue().filter((n) => !activeBefore.has(n)).length;
      await run('/usr/sbin/postqueue', ['-c', pf.configDir, '-f'], { timeoutMs: 60_000 });
      const flushed = process.hrtime.bigint();
      const waited = await waitBoth(pf, logFrom, done[method], base, sentCounter, messages.length, method, 30 * 60_000);
      const first = waited.first;
      const end = waited.stored;
      answeredMs[method] = Number(waited.answered - released) / 1e6;
      // the clock runs from the moment the messages may be delivered: postsuper -H has moved
      // them out of the hold queue (the bench's own device, no part of delivering mail: 52-695 ms
      // for 1,000 files in session 6), and postqueue -f asks the queue manager for them.
      // Until session 5 it also counted postsuper -H: that figure is printed beside it.
      const ms = Number(end - released) / 1e6;
      withHoldMs[method] = Number(end - start) / 1e6;
      firstMs[method] = Number(first - released) / 1e6;
      if (method === 'lmtp') {
        // a job's id holds the time its DATA began at lmtpd: when the first deliveries got that far
        const hub = join(lmtpd.spool, 'out', 'hub');
        const jobs = readdirSync(hub).map((n) => ({ n, t: parseInt(n.slice(0, 12), 16) })).filter((j) => j.t >= startWall).sort((a, b) => a.t - b.t);
        const flushWall = startWall + Number(released - start) / 1e6;
        dataMs = [jobs[0]?.t, jobs[9]?.t, jobs[49]?.t].map((t) => (t === undefined ? NaN : t - flushWall));
        // and from each job file's times: DATA begun → its last write (the message received),
        // last write → linked into out/hub (link(2) sets the ctime; after the job's fsync)
        const spans = jobs.map((j) => {
          const st = statSync(join(hub, j.n));
          return { receive: st.mtimeMs - j.t, commit: st.ctimeMs - st.mtimeMs };
        });
        const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] ?? NaN;
        const p90 = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length * 0.9)] ?? NaN;
        const show = (part: typeof spans): string =>
          `receiving ${median(part.map((x) => x.receive)).toFixed(1)} / ${p90(part.map((x) => x.receive)).toFixed(1)}, written → linked ${median(part.map((x) => x.commit)).toFixed(1)} / ${p90(part.map((x) => x.commit)).toFixed(1)}`;
        jobSpans = `first 50 jobs: ${show(spans.slice(0, 50))}; all: ${show(spans)}`;
      }
      releaseMs[method] = { postsuper: Number(released - start) / 1e6, postqueue: Number(flushed - released) / 1e6, jobsBeforeFlush: jobsAtFlush, activeBeforeFlush: activeAtFlush };
      // let the last pipe daemons reap their children before the CPU is read
      await new Promise((r) => setTimeout(r, 500));
      const cpu = treeCpuMs(masterPid, listenerPids) - cpu0;
      // Postfix's part by process (processes that exited meanwhile: `exited`)
      postfixBy[method] = [...postfixCpuBy(tree0, treeSnapshot(masterPid))].map(([n, v]) => [n, v / messages.length] as const)
        .filter(([, v]) => Math.abs(v) >= 0.005).sort((a, b) => b[1] - a[1]).map(([n, v]) => `${n} ${v.toFixed(2)}`).join(', ');
      if (lPid !== undefined) {
        const l1 = listenerNow();
        listenerBy[method] = { cpu: (l1.cpu - listener0.cpu) / messages.length, sys: (l1.sys - listener0.sys) / messages.length, main: (l1.main - listener0.main) / messages.length };
      }
      if (method === 'lmtp') {
        lmtpdCpuPerMessage = listenerBy.lmtp!.cpu;
        lmtpdSysPerMessage = listenerBy.lmtp!.sys;
        lmtpdMainPerMessage = listenerBy.lmtp!.main;
      }
      const sent = pf.log().slice(logFrom).split('\n').filter((l) => / to=<.*status=sent/.test(l));
      if (method === 'lmtp') {
        // how Postfix's lmtp client used its connections: conn_use=N marks a reused one
        lmtpReuse = `${sent.filter((l) => /conn_use=\d+/.test(l)).length} of ${sent.length} deliveries on a reused connection`;
      }
      if (lPid !== undefined) reuseBy[method] = `${sent.filter((l) => /conn_use=\d+/.test(l)).length}/${sent.length}`;
      // Postfix's delays=a/b/c/d per delivery (before qmgr, in qmgr, connection set-up, transmission), averaged
      const delays = [0, 0, 0, 0];
      for (const l of sent) (/delays=([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(l) ?? []).slice(1).forEach((v, i) => (delays[i]! += Number(v)));
      delaysBy[method] = delays.map((d) => ((d / Math.max(1, sent.length)) * 1000).toFixed(0)).join('/');
      results.push({ method, ms, perMessage: ms / messages.length, perSecond: messages.length / (ms / 1000), cpuPerMessage: cpu / messages.length });
      process.stderr.write(`bench lmtp: ${method}: ${messages.length} in ${(ms / 1000).toFixed(2)} s\n`);
    }
    await pf.waitQueueEmpty(120_000);
    if (o.postfixLog) writeFileSync(o.postfixLog, pf.log());
    // a sink's count comes at most 10 ms late: let its last report in
    if (sinks.size) await new Promise((r) => setTimeout(r, 100));
    const expected = (m: Method): number => o.warmUp + messages.length + (m === 'lmtp' || isSink(m) ? o.lmtpdWarmUp : 0);
    if (o.methods.some((m) => done[m]() !== expected(m))) {
      throw new Error(`each spool must hold exactly the messages sent to it: ${o.methods.map((m) => `${m} ${done[m]()} of ${expected(m)}`).join(', ')}`);
    }

    const byName = Object.fromEntries(results.map((r) => [r.method, r])) as Partial<Record<Method, (typeof results)[number]>>;
    const ratio = (a: number | undefined, b: number): string => (a === undefined ? '–' : (a / b).toFixed(2));
    // with workers: the primary's and each worker's peak, summed (an upper bound of the whole)
    const workerPids = childPids(lmtpd.pid);
    const lmtpdPeakMb = [lmtpd.pid, ...workerPids].reduce((n, p) => n + peakRssMb(p), 0);
    const lmtpdWorkers = /(\d+) workers \(/.exec(lmtpd.log())?.[1] ?? '1';
    // lmtpd says how many jobs it committed in how many batches when it stops
    await lmtpd.stop();
    const groupCommit = /group commit: (.*)/.exec(lmtpd.log())?.[1] ?? 'not reported';
    // its journal (docs/spool.md, "The LMTP journal"): with workers, one line each
    const journalLines = [...lmtpd.log().matchAll(/(lmtpd(?: worker \d+)?): journal: (.*)/g)].map((m) => `${m[1]}'s journal: ${m[2]}`);
    const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const machine = `${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${cpus().length} cores, node ${process.version}`;
    const label: Record<Method, string> = {
      lmtp: 'LMTP → mailbag lmtpd',
      enqueue: 'pipe → mailbag enqueue',
      uux: 'pipe → Taylor uux',
      sink: 'LMTP → minimal sink (stores nothing)',
      'smtp-server': 'LMTP → smtp-server draining (stores nothing)',
      'lmtp-server': "LMTP → lmtpd's listener, store discarding",
    };
    const sinkLines = o.methods.filter(isSink).map((m) => {
      const l = listenerBy[m];
      return `of ${m}'s CPU, the sink itself: ${l?.cpu.toFixed(2)} ms / message, of it ${l?.sys.toFixed(2)} in the kernel, ${l?.main.toFixed(2)} on its event-loop thread; ${reuseBy[m]} deliveries on a reused connection`;
    });
    const best = byName.sink ?? byName['smtp-server'] ?? byName['lmtp-server'];
    const lines = [
      `${date} — ${machine}`,
      `${messages.length} corpus (bulk) messages, ${(bytes / 1024 / 1024).toFixed(1)} MiB, released from Postfix's hold queue per method${o.warmUp ? `, each after ${o.warmUp} warm-up messages of its own (not measured)` : ''}${o.lmtpdWarmUp && (o.methods.includes('lmtp') || sinks.size) ? `; lmtpd${sinks.size ? ' and each sink' : ''} fed ${o.lmtpdWarmUp} messages straight over its socket before the submission (not measured)` : ''}`,
      `LMTP as docs/lmtp.md recommends: master.cf \`${rec.masterCf.join(' / ').replace(/\s+/g, ' ')}\`; main.cf ${rec.mainCf.map((l) => `\`${l}\``).join(', ')}; lmtpd lmtp.max_connections = ${maxConnections}, ${lmtpdWorkers} process(es), UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? unitEnv.UV_THREADPOOL_SIZE ?? 'unset (4)'} (lmtp.workers${o.workers !== undefined ? ' = ' + String(o.workers) : ' unset'})${o.postconf.length ? `; changed for this run: ${o.postconf.map((l) => `\`${l}\``).join(', ')}` : ''}`,
      '',
      `load average at the end: ${readFileSync('/proc/loadavg', 'latin1').split(' ').slice(0, 3).join(' ')}`,
      '',
      '| method | total s | wall ms / message | messages / s | wall: uux ÷ this | CPU ms / message (Postfix + tool) | CPU: uux ÷ this |',
      '|---|---:|---:|---:|---:|---:|---:|',
      ...results.map((r) => `| ${label[r.method]} | ${(r.ms / 1000).toFixed(2)} | ${r.perMessage.toFixed(2)} | ${r.perSecond.toFixed(0)} | ${ratio(byName.uux?.perMessage, r.perMessage)} | ${r.cpuPerMessage.toFixed(2)} | ${ratio(byName.uux?.cpuPerMessage, r.cpuPerMessage)} |`),
      '',
      `**answered** (the issue's "per message": the time until Postfix had its answer for every message, its ${messages.length}-th \`status=sent\` for the method, the same end point for every method): ${o.methods.map((m) => `${m} ${((answeredMs[m] ?? NaN) / messages.length).toFixed(2)} ms / message`).join(', ')}${answeredMs.lmtp !== undefined && answeredMs.uux !== undefined ? ` — wall: uux ÷ LMTP ${(answeredMs.uux / answeredMs.lmtp).toFixed(2)} ×` : ''} (the table's wall ends at each method's spool end point: lmtp's N-th job file in out/, after its journal's write-out; enqueue's N-th job; uux's N-th C. file; a sink's N-th answer)`,
      `Postfix's mean delays=a/b/c/d per delivery, ms (before the queue manager / in it / connection set-up / transmission): ${o.methods.map((m) => `${m} ${delaysBy[m]}`).join(', ')}`,
      `Postfix's CPU by process, ms / message: ${o.methods.map((m) => `${m}: ${postfixBy[m]}`).join('; ')}`,
      `first job in the spool, ms after postsuper -H returned: ${o.methods.map((m) => `${m} ${firstMs[m]?.toFixed(0)}`).join(', ')}${dataMs.length ? `; lmtpd: the 1st, 10th and 50th DATA began at ${dataMs.map((t) => t.toFixed(0)).join(', ')} ms` : ''}`,
      `the release (not in the wall figures above): postsuper -H ${o.methods.map((m) => `${m} ${releaseMs[m]?.postsuper.toFixed(0)} ms`).join(', ')}; then postqueue -f ${o.methods.map((m) => `${m} ${releaseMs[m]?.postqueue.toFixed(0)} ms`).join(', ')}${o.methods.some((m) => releaseMs[m]?.jobsBeforeFlush || releaseMs[m]?.activeBeforeFlush) ? ` — WARNING: the queue manager began delivering before postsuper -H returned (jobs in the spool / messages in Postfix's active queue then: ${o.methods.map((m) => `${m} ${releaseMs[m]?.jobsBeforeFlush} / ${releaseMs[m]?.activeBeforeFlush}`).join(', ')}): the figure from the flush is too low for that method; compare the figure counted from before postsuper -H` : ''}`,
      `wall ms / message counted from before postsuper -H, as until session 5: ${o.methods.map((m) => `${m} ${((withHoldMs[m] ?? NaN) / messages.length).toFixed(2)}`).join(', ')}${withHoldMs.lmtp !== undefined && withHoldMs.uux !== undefined ? ` (wall: uux ÷ LMTP ${(withHoldMs.uux / withHoldMs.lmtp).toFixed(2)} ×)` : ''}`,
      ...(byName.lmtp
        ? [
            `of LMTP's CPU, mailbag lmtpd itself: ${lmtpdCpuPerMessage.toFixed(2)} ms / message, of it ${lmtpdSysPerMessage.toFixed(2)} ms in the kernel, ${lmtpdMainPerMessage.toFixed(2)} ms on its event-loop thread (the rest of LMTP's CPU is Postfix: qmgr and its lmtp client)`,
            `lmtpd, per job (median / 90th percentile, ms; from its id, mtime and ctime): ${jobSpans}`,
            `lmtpd's group commit: ${groupCommit}; Postfix: ${lmtpReuse}; lmtpd's peak RSS ${lmtpdPeakMb.toFixed(0)} MB${workerPids.length ? ` (its ${workerPids.length + 1} processes' peaks summed)` : ''}`,
            ...journalLines,
            `target: LMTP at least 3 × faster per message than uux — answered ${answeredMs.lmtp !== undefined && answeredMs.uux !== undefined ? (answeredMs.uux / answeredMs.lmtp).toFixed(2) : '–'} ×, wall to the last job file ${ratio(byName.uux?.perMessage, byName.lmtp.perMessage)} ×, CPU ${ratio(byName.uux?.cpuPerMessage, byName.lmtp.cpuPerMessage)} ×`,
          ]
        : []),
      ...sinkLines,
      ...(best && byName.uux
        ? [`the best any LMTP listener could do with this Postfix here (uux ÷ ${best.method}, a listener that stores nothing): wall ${ratio(byName.uux.perMessage, best.perMessage)} ×, CPU ${ratio(byName.uux.cpuPerMessage, best.cpuPerMessage)} ×${best.perMessage * 3 > byName.uux.perMessage ? ' — below 3 ×: no listener can meet the target by wall time in this run' : ''}`]
        : []),
    ];
    process.stdout.write(lines.join('\n') + '\n');
    if (o.json) writeFileSync(o.json, JSON.stringify({ date, machine, messages: messages.length, bytes, results, lmtpdCpuPerMessage, lmtpdSysPerMessage, lmtpdMainPerMessage, lmtpdPeakMb, lmtpdWorkers: Number(lmtpdWorkers), answeredMs, postfixBy, listenerBy, reuseBy, delaysBy, warmUp: o.warmUp, lmtpdWarmUp: o.lmtpdWarmUp, firstMs, releaseMs, dataMs, jobSpans, withHoldMs, postconf: o.postconf }, null, 2) + '\n');
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await pf?.stop();
    await lmtpd?.stop(); // a second stop of a stopped lmtpd returns at once
    for (const sink of sinks.values()) await sink.stop();
    removeTempDir(dir);
  }
}
