// `mailbag lmtpd`: the LMTP listener MTAs deliver to (Postfix `lmtp:unix:…`, an Exim
// lmtp transport, OpenSMTPD `action … lmtp`). Runs in the foreground until SIGTERM or
// SIGINT, then stops accepting, lets transactions in progress finish and removes its
// socket. With lmtp.workers (--workers) above 1 the listening sockets are shared by that
// many worker processes (node:cluster; connections handed out in turn by this, the
// primary process), so an MTA's parallel deliveries use every core; the primary runs the
// ledger's start-up recovery before any worker listens, and a worker that dies stops
// the whole service (exit 75), so that recovery runs again before mail is taken again.
// Manual: docs/mailbag-lmtpd.md.

import cluster, { type Worker } from 'node:cluster';
import { lstatSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { Command, CommanderError } from 'commander';
import { isLoopbackHost, LISTEN_NOT_LOOPBACK, loadConfig } from '../config/index.js';
import { asMailbagError, MailbagError } from '../errors.js';
import { EX_TEMPFAIL } from '../exit.js';
import { buildRouter } from '../lmtp/route.js';
import { checkSocketDir, FD_HEADROOM, LmtpServer, openFiles, removeStaleSocket, socketUmask } from '../lmtp/server.js';
import { SpoolLedger } from '../lmtp/ledger.js';
import { SpoolJobStore } from '../lmtp/spool-store.js';
import { LmtpJournal, replayJournals, setJobFilesAtOnce, type JournalStats } from '../lmtp/journal.js';
import { PipeLog } from '../lmtp/log-pipe.js';
import { GroupCommit } from '../spool/commit.js';
import { faultPoint } from '../spool/fault.js';
import { Spool } from '../spool/spool.js';
import type { CliIo } from './io.js';
import type { Config } from '../config/types.js';
import type { Router } from '../lmtp/route.js';

const PRUNE_EVERY_MS = 60 * 60 * 1000;
/** sun_path on Linux */
const MAX_SOCKET_PATH = 108;
/**
 * Node's thread pool for lmtpd (docs/lmtp.md): every job's fsync, every batch's directory
 * fsync and every job file's create wait there, and with the default 4 threads a batch's
 * fsyncs went to the disk four at a time. libuv reads UV_THREADPOOL_SIZE once, before this
 * module is loaded (the ES module loader reads files through the pool), so the process
 * itself cannot take it: its environment must (the systemd unit of docs/lmtp.md), or the
 * installed bin dist/bin/mailbag.cjs, which sets it for lmtpd before loading this; the
 * workers of lmtp.workers get it from the primary.
 */
const THREAD_POOL = '64';

function parseHostPort(text: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new MailbagError('usage', `--listen ${text}: write HOST:PORT, like 127.0.0.1:2424`);
  const host = m[1]!.replace(/^\[|\]$/g, '');
  // as lmtp.listen (lib/config/index.ts): no authentication, so loopback only
  if (!isLoopbackHost(host)) throw new MailbagError('usage', `--listen "${text}" ${LISTEN_NOT_LOOPBACK}`);
  return { host, port };
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  const program = new Command('mailbag lmtpd')
    .description('Accept mail over LMTP from the local MTA and queue it as BSMTP jobs, one per peer.')
    .option('--config <file>', 'configuration file (default: $MAILBAG_CONFIG, then /etc/mailbag/mailbag.toml)')
    .option('--socket <path>', 'unix socket to listen on (default: lmtp.socket, <spool>/lmtp.sock)')
    .option('--no-socket', 'no unix socket (needs --listen or lmtp.listen)')
    .option('--listen <host:port>', 'also listen on TCP (default: lmtp.listen; port 0 picks one)')
    .option('--workers <n>', 'listener processes sharing the sockets (default: lmtp.workers, else 1)')
    .exitOverride()
    // errors leave as one `4.3.5 …` line from run.ts, not commander's own
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s), outputError: () => undefined });
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return 0;
      throw new MailbagError('usage', err.message.replace(/^error: /, ''));
    }
    throw err;
  }
  const o = program.opts<{ config?: string; socket?: string | false; listen?: string; workers?: string }>();
  // a unix socket's path holds at most 108 bytes: Node would listen on the first 108 and
  // say it listens on the whole (lmtp.socket gets the same check in the configuration)
  if (typeof o.socket === 'string' && Buffer.byteLength(o.socket) > MAX_SOCKET_PATH) {
    throw new MailbagError('usage', `--socket ${o.socket} is ${Buffer.byteLength(o.socket)} bytes, and a unix socket's path holds at most ${MAX_SOCKET_PATH}: give a shorter path`);
  }
  const config = loadConfig({ path: o.config, env: io.env, cwd: io.cwd });
  const router = buildRouter({ peers: config.peers, defaultPeer: config.lmtp.defaultPeer, file: config.file });
  const socketPath = o.socket === false ? undefined : o.socket ?? config.lmtp.socket;
  const listen = o.listen !== undefined ? parseHostPort(o.listen) : config.lmtp.listen;
  if (socketPath === undefined && listen === undefined) {
    throw new MailbagError('usage', '--no-socket needs --listen HOST:PORT (or lmtp.listen in the configuration)');
  }

  let workers = config.lmtp.workers ?? 1;
  if (o.workers !== undefined) {
    if (!/^\d{1,3}$/.test(o.workers) || Number(o.workers) < 1 || Number(o.workers) > 256) {
      throw new MailbagError('usage', `--workers ${o.workers}: write a number from 1 to 256`);
    }
    workers = Number(o.workers);
  }
  const worker = cluster.isWorker ? io.env.MAILBAG_LMTPD_WORKER : undefined;
  // a worker's lines say which one it is
  const who = worker ? `lmtpd worker ${worker}: ` : 'lmtpd: ';
  // The lines of one turn of the event loop leave in one write: a write(2) to the log's
  // pipe for each job's line was 2-4 % of lmtpd's event loop per message (session 9's
  // profiles). A line waits at most for the end of its turn (SIGKILL loses that turn's
  // lines, never an earlier one's); the last ones are written before lmtpd returns.
  // With several processes on one log (lmtp.workers > 1) each write is cut at line ends
  // into writes of at most PIPE_BUF bytes, which a pipe never splits (lib/lmtp/log-pipe.ts):
  // Node's stream writes what fits of a longer one and another process's lines could
  // land in the middle of a line when the log's reader lags.
  const shared = (cluster.isWorker || workers > 1) && io.stderr === process.stderr ? new PipeLog(2) : undefined;
  let pending = '';
  const flush = (): void => {
    if (pending === '') return;
    const text = pending;
    pending = '';
    if (shared) shared.write(text);
    else io.stderr.write(text);
  };
  const log = (line: string): void => {
    if (pending === '') setImmediate(flush);
    pending += `${new Date().toISOString()} ${line.startsWith('lmtpd: ') ? who + line.slice(7) : line}\n`;
    if (pending.length > 64 * 1024) flush();
  };
  const ctx: Setup = { config, router, socketPath, listen, workers, log };
  // an exit through Node that never comes back here (run.ts's last line of defence for an
  // error that escapes: process.exit(75); node:cluster's exit of a worker whose primary
  // died) writes the turn's lines too: only a SIGKILL loses them
  process.on('exit', flush);
  // after flush (exit listeners run in order): what the exit's flush hands PipeLog is drained too
  if (shared) process.on('exit', () => shared.drainSync());
  try {
    return await (worker ? runWorker(ctx) : runMain(ctx));
  } finally {
    process.off('exit', flush);
    flush();
  }
}

interface Setup {
  config: Config;
  router: Router;
  socketPath: string | undefined;
  listen: { host: string; port: number } | undefined;
  workers: number;
  log: (line: string) => void;
}

interface CommitStats {
  batches: number;
  files: number;
  largest: number;
  waitMs: number;
  queueMs: number;
  fsyncMs: number;
}

/** the messages a worker sends its primary */
type WorkerMessage = { lmtpd: 'listening'; port?: number } | { lmtpd: 'stats'; stats: CommitStats };

function commitLine(s: CommitStats): string {
  const { batches, files, largest, waitMs, queueMs, fsyncMs } = s;
  const avg = (ms: number): string => (files ? (ms / files).toFixed(1) : '0');
  return `lmtpd: group commit: ${files} job(s) in ${batches} batch(es), ${batches ? (files / batches).toFixed(1) : '0'} per batch, largest ${largest}, ${avg(waitMs)} ms from commit to durable on average (${avg(queueMs)} waiting for the batch in progress, ${avg(fsyncMs)} in its batch's flush, ${avg(waitMs - queueMs - fsyncMs)} placing, directory fsync and answering)`;
}

/** the two committers' figures as one (the journal's jobs, and the larger ones staged in tmp/) */
function sumStats(g: CommitStats, j: JournalStats | undefined): CommitStats {
  if (!j) return { ...g };
  return { batches: g.batches + j.batches, files: g.files + j.files, largest: Math.max(g.largest, j.largest), waitMs: g.waitMs + j.waitMs, queueMs: g.queueMs + j.queueMs, fsyncMs: g.fsyncMs + j.fsyncMs };
}

function journalLine(journal: LmtpJournal, staged: number): string {
  const j: JournalStats = journal.stats;
  const f = journal.flushGate;
  const w = journal.writeGate;
  return `lmtpd: journal: ${j.files} job(s) in ${j.batches} flush(es), written into out/ ${j.materialized ? (j.lagMs / j.materialized).toFixed(1) : '0'} ms after their answer on average, ${j.resets} reset(s); ${staged} larger job(s) staged in tmp/${j.direct ? `, ${j.direct} written straight into out/ (journal full or out/ failing)` : ''}; on the event loop: ${f.sync} of ${f.sync + f.async} flush(es), ${w.sync} of ${w.sync + w.async} write-out batch(es)`;
}

/**
 * Apply ledger_retention now and every hour. Every process with a ledger does: the one
 * that removes a day file first logs it, and each rebuilds its own filter without the
 * removed days (a worker's would otherwise keep every entry it ever read, filling up).
 */
function startPruning(ledger: SpoolLedger, config: Config, log: (line: string) => void): NodeJS.Timeout {
  const prune = (): void => {
    ledger.prune(config.ledgerRetentionMs).then(
      (n) => n && log(`lmtpd: pruned ${n} LMTP ledger entr${n === 1 ? 'y' : 'ies'}`),
      (err: unknown) => log(`lmtpd: pruning the LMTP ledger failed: ${asMailbagError(err).message}`),
    );
  };
  prune();
  const pruner = setInterval(prune, PRUNE_EVERY_MS);
  pruner.unref();
  return pruner;
}

/**
 * SIGTERM or SIGINT, once. `keep`: stay subscribed, so that a second one is ignored, not
 * fatal (a worker: systemd's stop signals every process of the unit and the primary then
 * signals its workers too; a worker killed by that second SIGTERM cut its transactions
 * inside DATA and made the primary exit 75. The primary SIGKILLs a worker that outlives
 * the grace.)
 */
function stopSignal(keep = false): Promise<string> {
  return new Promise<string>((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => resolve(sig);
    const on = keep ? process.on.bind(process) : process.once.bind(process);
    on('SIGTERM', onSignal);
    on('SIGINT', onSignal);
  });
}

/**
 * The job files a write into out/ (the journal's write-out, a replay) may hold open at
 * once: what the open-file limit leaves beside `connections` connections (two
 * descriptors each, LmtpServer.fitOpenFiles) and half of FD_HEADROOM for the rest.
 */
function fitJobFiles(connections: number): void {
  const limits = openFiles();
  if (limits) setJobFilesAtOnce(limits.soft - limits.inUse - 2 * connections - FD_HEADROOM / 2);
}

/** A listener on this process: the whole service (one worker), or one worker of several. */
async function openListener(ctx: Setup, spool: Spool, maxConnections: number, opened?: SpoolLedger, maxConnectionsText?: string): Promise<{ server: LmtpServer; committer: GroupCommit; journal: LmtpJournal | undefined; ledger: SpoolLedger }> {
  const { config } = ctx;
  const ledger = opened ?? await SpoolLedger.open(spool);
  // a batch takes every job in flight (one per connection and peer), up to 256 or a job per connection
  const maxBatch = Math.max(256, maxConnections);
  const committer = new GroupCommit({ maxBatch });
  // this process's own journal (a journal no running lmtpd holds is replayed first)
  const { journal, replayed, unavailable } = await LmtpJournal.open(spool, { fallback: committer, log: ctx.log, maxBatch });
  if (replayed) ctx.log(`lmtpd: wrote ${replayed} job(s) from the LMTP journal into out/`);
  if (unavailable) ctx.log(`lmtpd: no LMTP journal (${unavailable}): every job is made durable with its own fsync, as for a large message`);
  const server = new LmtpServer({
    router: ctx.router,
    store: new SpoolJobStore(spool, config.site, committer, Date.now, journal),
    ledger,
    hostname: hostname() || config.site,
    maxMessageSize: config.limits.maxMessageSize,
    maxRecipients: Math.min(config.lmtp.maxRecipients, config.limits.maxRecipients),
    maxConnections,
    maxConnectionsText,
    faultPoint,
    log: ctx.log,
  });
  return { server, committer, journal, ledger };
}

/** listen on the socket and TCP as configured; resolves with the TCP port */
async function listenAll(ctx: Setup, server: LmtpServer, shared: boolean): Promise<number | undefined> {
  const { config, socketPath, listen } = ctx;
  try {
    if (socketPath !== undefined) await server.listenUnix(socketPath, config.lmtp.socketMode, { shared });
    return listen !== undefined ? await server.listenTcp(listen.host, listen.port) : undefined;
  } catch (err) {
    await server.close(0);
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'ENOENT') {
      throw new MailbagError('config', `cannot listen: ${e.message}`, { cause: err });
    }
    throw err;
  }
}

/** The service: recovery and retention here, then the listener itself or its workers. */
async function runMain(ctx: Setup): Promise<number> {
  const { config, socketPath, listen, log } = ctx;
  const stopped = stopSignal();
  const spool = await Spool.open(config.spool, { create: true });
  const ledger = await SpoolLedger.open(spool);
  if (ledger.migrated) log(`lmtpd: moved ${ledger.migrated} LMTP ledger entr${ledger.migrated === 1 ? 'y' : 'ies'} of the earlier format (a file each) into day files`);
  if (!process.env.UV_THREADPOOL_SIZE && ctx.workers === 1) {
    log(`lmtpd: UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE === undefined ? "is not set: Node's thread pool has 4 threads" : "is empty: Node's thread pool has 1 thread"}, and the fsyncs of concurrent deliveries wait for each other there; set UV_THREADPOOL_SIZE=${THREAD_POOL} in lmtpd's environment, or start it as the installed \`mailbag\` command (dist/bin/mailbag.cjs), which does (docs/lmtp.md)`);
  }
  // jobs answered 250 that a crash left in a journal go into out/ first, so that the
  // ledger's recovery below sees them (docs/spool.md, L7)
  fitJobFiles(0);
  const replayed = await replayJournals(spool, log);
  if (replayed) log(`lmtpd: wrote ${replayed} job(s) from the LMTP journal into out/`);
  const recovered = await ledger.recover(config.site, config.ledgerRetentionMs);
  if (recovered) log(`lmtpd: recorded ${recovered} job(s) committed just before a crash in the LMTP ledger`);
  const pruner = startPruning(ledger, config, log);
  const listening = (port: number | undefined): void => {
    if (socketPath !== undefined) log(`lmtpd: listening on ${socketPath} (mode ${config.lmtp.socketMode.toString(8).padStart(4, '0')})`);
    if (listen !== undefined) log(`lmtpd: listening on ${listen.host}:${port ?? listen.port}`);
  };

  if (ctx.workers === 1) {
    // one process: this one listens, its ledger the one the recovery filled
    const { server, committer, journal } = await openListener(ctx, spool, config.lmtp.maxConnections, ledger);
    try {
      listening(await listenAll(ctx, server, false));
      fitJobFiles(server.fitOpenFiles() ?? config.lmtp.maxConnections);
    } catch (err) {
      clearInterval(pruner);
      throw err;
    }
    log(`lmtpd: spool ${spool.root}, site ${config.site}, ready`);
    const sig = await stopped;
    log(`lmtpd: ${sig}: stopping (transactions in progress may finish within 30 s)`);
    await server.close(STOP_GRACE_MS);
    await journal?.close(STOP_GRACE_MS);
    clearInterval(pruner);
    ledger.close();
    log(commitLine(sumStats(committer.stats, journal?.stats)));
    if (journal) log(journalLine(journal, committer.stats.files));
    log('lmtpd: stopped');
    return 0;
  }

  try {
    return await runWorkers(ctx, spool, stopped);
  } finally {
    clearInterval(pruner);
    ledger.close();
  }
}

/** grace for transactions in progress at a stop, then the workers' own exit */
const STOP_GRACE_MS = 30_000;
const START_TIMEOUT_MS = 60_000;

/**
 * The primary of `--workers N`: binds the sockets (through node:cluster, as the workers
 * ask for them) and hands each new connection to the next worker in turn. Stops them on
 * SIGTERM/SIGINT; a worker that dies stops them all and ends the service with 75, so no
 * worker takes mail before the start-up recovery has run again (docs/spool.md, L-states).
 */
async function runWorkers(ctx: Setup, spool: Spool, stopped: Promise<string>): Promise<number> {
  const { config, socketPath, log, workers: n } = ctx;
  if (socketPath !== undefined) {
    checkSocketDir(socketPath);
    await removeStaleSocket(socketPath);
  }
  cluster.schedulingPolicy = cluster.SCHED_RR;
  cluster.setupPrimary({ exec: process.argv[1], args: process.argv.slice(2) });
  const alive = new Map<number, Worker>();
  const total: CommitStats = { batches: 0, files: 0, largest: 0, waitMs: 0, queueMs: 0, fsyncMs: 0 };
  const orderly = new Set<number>();
  let stopping = false;
  let started = 0;
  let port: number | undefined;
  let onStarted: () => void = () => undefined;
  let onFailure: (why: string) => void = () => undefined;
  let onAllGone: () => void = () => undefined;
  const failure = new Promise<string>((resolve) => (onFailure = resolve));
  const allGone = new Promise<void>((resolve) => (onAllGone = resolve));
  const allStarted = new Promise<void>((resolve) => (onStarted = resolve));

  const onMessage = (w: Worker, m: WorkerMessage): void => {
    if (m?.lmtpd === 'listening') {
      port ??= m.port;
      if (++started === n) onStarted();
    } else if (m?.lmtpd === 'stats') {
      orderly.add(w.id);
      total.batches += m.stats.batches;
      total.files += m.stats.files;
      total.largest = Math.max(total.largest, m.stats.largest);
      total.waitMs += m.stats.waitMs;
      total.queueMs += m.stats.queueMs;
      total.fsyncMs += m.stats.fsyncMs;
    }
  };
  // workers that died while the service was stopping (not the orderly way: stats, then 0)
  const diedStopping: string[] = [];
  const onExit = (w: Worker, code: number | null, signal: string | null): void => {
    const judge = (): void => {
      alive.delete(w.id);
      const how = `worker ${w.id} (pid ${w.process.pid}) ${signal ? `was killed by ${signal}` : `exited with code ${code}`}`;
      // its stats came (sent once its transactions were done and its ledger closed): a
      // stop signal that reached it after that, while it exited (systemd's own SIGTERM and
      // the primary's), cut nothing
      const clean = orderly.has(w.id) && (signal === null ? code === 0 : signal === 'SIGTERM' || signal === 'SIGINT');
      if (stopping) {
        // it may have died between a commit and its ledger entry, like one that dies while
        // serving: the next start must know (75), not take it for a clean stop
        if (!clean) diedStopping.push(how);
      } else if (!orderly.has(w.id)) {
        onFailure(how);
      } else {
        onFailure(''); // stopped on its own signal (SIGINT from a terminal reaches every process)
      }
      if (alive.size === 0) onAllGone();
    };
    // the exit can be seen before the channel's last message (its stats) is read: judge
    // once the channel is closed
    if (w.isConnected()) w.once('disconnect', judge);
    else judge();
  };
  cluster.on('message', onMessage);
  cluster.on('exit', onExit);

  for (let i = 0; i < n; i++) {
    const w = cluster.fork({ MAILBAG_LMTPD_WORKER: String(i + 1), UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE || THREAD_POOL });
    alive.set(w.id, w);
  }
  // the socket appears with the mode bits of the primary's umask: made with its mode, never
  // chmod'ed by path (a chmod follows a link put in its place). Set after the forks (each
  // spawned at once, inheriting the umask then), before the workers' requests to bind
  // (messages, handled after this): a worker under 0177 made every directory 0600, not
  // searchable, while the other linked into it
  const umask = process.umask(socketUmask(config.lmtp.socketMode));
  let timer: NodeJS.Timeout | undefined;
  const first = await Promise.race([
    allStarted.then(() => 'started'),
    failure.then((why) => `failed: ${why || 'a worker stopped'}`),
    stopped.then((sig) => `signal: ${sig}`),
    new Promise<string>((resolve) => (timer = setTimeout(() => resolve(`failed: the workers were not listening after ${START_TIMEOUT_MS / 1000} s`), START_TIMEOUT_MS))),
  ]);
  clearTimeout(timer);
  process.umask(umask);

  const stopAll = async (): Promise<void> => {
    stopping = true;
    for (const w of alive.values()) w.process.kill('SIGTERM');
    let kill: NodeJS.Timeout | undefined;
    await Promise.race([allGone, new Promise<void>((resolve) => (kill = setTimeout(resolve, STOP_GRACE_MS + 10_000)))]);
    clearTimeout(kill);
    if (alive.size > 0) {
      log(`lmtpd: ${alive.size} worker(s) still running ${(STOP_GRACE_MS + 10_000) / 1000} s after SIGTERM: SIGKILL`);
      for (const w of alive.values()) w.process.kill('SIGKILL');
      await Promise.race([allGone, new Promise<void>((resolve) => (kill = setTimeout(resolve, 5_000)))]);
      clearTimeout(kill);
    }
    cluster.off('message', onMessage);
    cluster.off('exit', onExit);
    if (socketPath !== undefined) {
      try {
        if (lstatSync(socketPath).isSocket()) unlinkSync(socketPath);
      } catch {
        // gone with the handle
      }
    }
  };

  if (first !== 'started') {
    await stopAll();
    if (first.startsWith('signal: ')) {
      log(`lmtpd: ${first.slice(8)} while starting: stopped`);
      return 0;
    }
    throw new MailbagError('internal', `lmtpd: ${first.slice(8)} while starting (see the lines above)`);
  }
  const perWorker = Math.ceil(config.lmtp.maxConnections / n);
  if (socketPath !== undefined) log(`lmtpd: listening on ${socketPath} (mode ${config.lmtp.socketMode.toString(8).padStart(4, '0')})`);
  if (ctx.listen !== undefined) log(`lmtpd: listening on ${ctx.listen.host}:${port ?? ctx.listen.port}`);
  log(`lmtpd: spool ${spool.root}, site ${config.site}, ${n} workers (up to ${perWorker} connection(s) each), ready`);

  const outcome = await Promise.race([stopped.then((sig) => ({ sig })), failure.then((why) => ({ why }))]);
  let code = 0;
  if ('sig' in outcome) {
    log(`lmtpd: ${outcome.sig}: stopping (transactions in progress may finish within ${STOP_GRACE_MS / 1000} s)`);
  } else if (outcome.why) {
    code = EX_TEMPFAIL;
    log(`lmtpd: ${outcome.why}: stopping every worker (transactions in progress may finish within ${STOP_GRACE_MS / 1000} s); start lmtpd again: its start-up recovery records the jobs that worker committed last before mail is taken again`);
  } else {
    log('lmtpd: a worker stopped on a signal: stopping the others');
  }
  await stopAll();
  if (diedStopping.length > 0) {
    code = EX_TEMPFAIL;
    for (const how of diedStopping) log(`lmtpd: ${how} while stopping; start lmtpd again: its start-up recovery records the jobs that worker committed last before mail is taken again`);
  }
  log(commitLine(total));
  log(code ? 'lmtpd: stopped after a worker failed' : 'lmtpd: stopped');
  return code;
}

/** One worker of `--workers N`: its own spool handles, ledger reader and group commit. */
async function runWorker(ctx: Setup): Promise<number> {
  try {
    return await serveAsWorker(ctx);
  } finally {
    // the channel to the primary would keep this process alive (also after a failure,
    // which run.ts reports on stderr): let go of it
    if (cluster.worker?.isConnected()) cluster.worker.disconnect();
  }
}

async function serveAsWorker(ctx: Setup): Promise<number> {
  const { config } = ctx;
  const stopped = stopSignal(true);
  const spool = await Spool.open(config.spool, { create: false });
  // the connection limit is split between the workers (connections come to them in turn)
  const share = Math.ceil(config.lmtp.maxConnections / ctx.workers);
  const { server, committer, journal, ledger } = await openListener(ctx, spool, share, undefined, `lmtp.max_connections = ${config.lmtp.maxConnections}, ${share} per worker`);
  const pruner = startPruning(ledger, config, ctx.log);
  let port: number | undefined;
  try {
    port = await listenAll(ctx, server, true);
    fitJobFiles(server.fitOpenFiles() ?? share);
  } catch (err) {
    clearInterval(pruner);
    throw err;
  }
  const send = (m: WorkerMessage): Promise<void> => new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(m, undefined, {}, () => resolve());
  });
  await send({ lmtpd: 'listening', port });
  await stopped;
  await server.close(STOP_GRACE_MS);
  await journal?.close(STOP_GRACE_MS);
  clearInterval(pruner);
  ledger.close();
  if (journal) ctx.log(journalLine(journal, committer.stats.files));
  await send({ lmtpd: 'stats', stats: sumStats(committer.stats, journal?.stats) });
  return 0;
}
