// `mailbag lmtpd`: the LMTP listener MTAs deliver to (Postfix `lmtp:unix:…`, an Exim
// lmtp transport, OpenSMTPD `action … lmtp`). Runs in the foreground until SIGTERM or
// SIGINT, then stops accepting, lets transactions in progress finish and removes its
// socket. Manual: docs/mailbag-lmtpd.md.

import { hostname } from 'node:os';
import { Command, CommanderError } from 'commander';
import { loadConfig } from '../config/index.js';
import { asMailbagError, MailbagError } from '../errors.js';
import { buildRouter } from '../lmtp/route.js';
import { LmtpServer } from '../lmtp/server.js';
import { SpoolLedger } from '../lmtp/ledger.js';
import { SpoolJobStore } from '../lmtp/spool-store.js';
import { GroupCommit } from '../spool/commit.js';
import { faultPoint } from '../spool/fault.js';
import { Spool } from '../spool/spool.js';
import type { CliIo } from './io.js';

const PRUNE_EVERY_MS = 60 * 60 * 1000;

function parseHostPort(text: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new MailbagError('usage', `--listen ${text}: write HOST:PORT, like 127.0.0.1:2424`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  const program = new Command('mailbag lmtpd')
    .description('Accept mail over LMTP from the local MTA and queue it as BSMTP jobs, one per peer.')
    .option('--config <file>', 'configuration file (default: $MAILBAG_CONFIG, then /etc/mailbag/mailbag.toml)')
    .option('--socket <path>', 'unix socket to listen on (default: lmtp.socket, <spool>/lmtp.sock)')
    .option('--no-socket', 'no unix socket (needs --listen or lmtp.listen)')
    .option('--listen <host:port>', 'also listen on TCP (default: lmtp.listen; port 0 picks one)')
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
  const o = program.opts<{ config?: string; socket?: string | false; listen?: string }>();
  const config = loadConfig({ path: o.config, env: io.env, cwd: io.cwd });
  const router = buildRouter({ peers: config.peers, defaultPeer: config.lmtp.defaultPeer, file: config.file });
  const socketPath = o.socket === false ? undefined : o.socket ?? config.lmtp.socket;
  const listen = o.listen !== undefined ? parseHostPort(o.listen) : config.lmtp.listen;
  if (socketPath === undefined && listen === undefined) {
    throw new MailbagError('usage', '--no-socket needs --listen HOST:PORT (or lmtp.listen in the configuration)');
  }

  const spool = await Spool.open(config.spool, { create: true });
  const ledger = await SpoolLedger.open(spool);
  const log = (line: string): void => {
    io.stderr.write(`${new Date().toISOString()} ${line}\n`);
  };
  const prune = (): void => {
    ledger.prune(config.ledgerRetentionMs).then(
      (n) => n && log(`lmtpd: pruned ${n} LMTP ledger entr${n === 1 ? 'y' : 'ies'}`),
      (err: unknown) => log(`lmtpd: pruning the LMTP ledger failed: ${asMailbagError(err).message}`),
    );
  };
  if (ledger.migrated) log(`lmtpd: moved ${ledger.migrated} LMTP ledger entr${ledger.migrated === 1 ? 'y' : 'ies'} of the earlier format (a file each) into day files`);
  const recovered = await ledger.recover(config.site);
  if (recovered) log(`lmtpd: recorded ${recovered} job(s) committed just before a crash in the LMTP ledger`);
  prune();
  const pruner = setInterval(prune, PRUNE_EVERY_MS);
  pruner.unref();

  // a batch takes every job in flight (one per connection and peer), up to 256 or a job per connection
  const committer = new GroupCommit({ maxBatch: Math.max(256, config.lmtp.maxConnections) });
  const server = new LmtpServer({
    router,
    store: new SpoolJobStore(spool, config.site, committer),
    ledger,
    hostname: hostname() || config.site,
    maxMessageSize: config.limits.maxMessageSize,
    maxRecipients: Math.min(config.lmtp.maxRecipients, config.limits.maxRecipients),
    maxConnections: config.lmtp.maxConnections,
    faultPoint,
    log,
  });

  const stopped = new Promise<string>((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => resolve(sig);
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  try {
    if (socketPath !== undefined) {
      await server.listenUnix(socketPath, config.lmtp.socketMode);
      log(`lmtpd: listening on ${socketPath} (mode ${config.lmtp.socketMode.toString(8).padStart(4, '0')})`);
    }
    if (listen !== undefined) {
      const port = await server.listenTcp(listen.host, listen.port);
      log(`lmtpd: listening on ${listen.host}:${port}`);
    }
  } catch (err) {
    await server.close(0);
    clearInterval(pruner);
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'ENOENT') {
      throw new MailbagError('config', `cannot listen: ${e.message}`, { cause: err });
    }
    throw err;
  }
  log(`lmtpd: spool ${spool.root}, site ${config.site}, ready`);
  const sig = await stopped;
  log(`lmtpd: ${sig}: stopping (transactions in progress may finish within 30 s)`);
  await server.close(30_000);
  clearInterval(pruner);
  ledger.close();
  const { batches, files, largest, waitMs } = committer.stats;
  log(`lmtpd: group commit: ${files} job(s) in ${batches} batch(es), ${batches ? (files / batches).toFixed(1) : '0'} per batch, largest ${largest}, ${files ? (waitMs / files).toFixed(1) : '0'} ms from commit to durable on average`);
  log('lmtpd: stopped');
  return 0;
}
