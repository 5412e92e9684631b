// A private, real Exim 4 for integration tests. Exim and Postfix conflict as Debian
// packages, so Exim is never installed: its binary is unpacked with `dpkg -x` into
// /opt/mailbag-test/exim (MAILBAG_TEST_EXIM names the exim4 binary; .ci/run does the
// unpacking) and run as root with `-C CONFIG`, its spool and logs in a temp dir. No
// daemon is started. Submission queues (-odq) and then runs the queue as root (-qff):
// with -C, an -odi/-odf delivery re-execs Exim as the exim user, which loses its
// privilege for -C ("exim user lost privilege for using -C option") and cannot switch
// to the delivery user, so every helper here delivers through a queue run instead.
//
// Usage (root; skip with haveExim() first):
//   const ex = await startExim({
//     routers: 'to_mailbag:\n  driver = manualroute\n  domains = uucp.test\n  route_data = hub\n  transport = mailbag_bsmtp',
//     transports: `mailbag_bsmtp:\n  driver = pipe\n  use_bsmtp\n  batch_max = 50\n  user = mailbag-test\n  command = ${mailbagBin} enqueue hub --bsmtp`,
//   });
//   await ex.submit('a@x.test', ['b@uucp.test', 'c@uucp.test'], message);   // -odq -f a@x.test -- …; -qff
//   await ex.submitBsmtp('MAIL FROM:<>\nRCPT TO:<b@uucp.test>\nDATA\n…\n.\n');  // -bS
//   ex.mainlog(); await ex.waitLog(/Completed/); ex.queue(); readMaildir(ex.maildir('user'));
//   ex.stop();
//
// Delivery runs as the unprivileged test user (Exim refuses root); that user and root
// are trusted_users, so our tools may set any sender. `LOCALPART@maildir.test` for each
// name in `mailboxes` is delivered into ex.maildir(LOCALPART) (Return-Path, Envelope-to
// and Delivery-date added). Router and transport texts given by the caller come first.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { need } from './need.js';
import {
  ensureTestUser,
  isRoot,
  makeOwnedDir,
  makeSharedTempDir,
  removeTempDir,
  run,
  waitFor,
  type RunOptions,
  type RunResult,
  type TestUser,
} from './mta-common.js';

export const EXIM_UNPACK_DIR = '/opt/mailbag-test/exim';
const EXIM_DEBS = '/opt/exim';
export const MAILDIR_DOMAIN = 'maildir.test';

/** The exim4 binary: MAILBAG_TEST_EXIM, else the unpacked one under /opt/mailbag-test/exim. */
export function eximBinary(): string {
  return process.env.MAILBAG_TEST_EXIM ?? join(EXIM_UNPACK_DIR, 'usr/sbin/exim4');
}

/** Unpack exim4-daemon-light from /opt/exim/*.deb when the binary is missing (root only). */
function unpackIfPossible(bin: string): void {
  if (existsSync(bin) || !isRoot || !existsSync(EXIM_DEBS)) return;
  const deb = readdirSync(EXIM_DEBS).find((n) => /^exim4-daemon-light_.*\.deb$/.test(n));
  if (!deb) return;
  mkdirSync(EXIM_UNPACK_DIR, { recursive: true });
  execFileSync('dpkg', ['-x', join(EXIM_DEBS, deb), EXIM_UNPACK_DIR], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** Libraries the binary needs that the dynamic loader cannot find (from ldd). */
export function missingLibraries(bin = eximBinary()): string[] {
  try {
    const out = execFileSync('ldd', [bin], { encoding: 'utf8' });
    return out
      .split('\n')
      .filter((l) => /not found/.test(l))
      .map((l) => l.trim().split(/\s+/)[0]!);
  } catch {
    return [];
  }
}

/** true when Exim can be run here; false with a SKIP line; throws under CI */
export function haveExim(): boolean {
  const bin = eximBinary();
  unpackIfPossible(bin);
  if (!need('Exim (unpacked exim4-daemon-light)', [bin], 'see .ci/run: apt-get download exim4-daemon-light; dpkg -x it into /opt/mailbag-test/exim')) {
    return false;
  }
  if (!need('root (Exim -C with delivery as another user)', isRoot ? [] : ['uid 0'], 'run the integration tests as root')) return false;
  const missing = missingLibraries(bin);
  return need('Exim shared libraries', missing.map((l) => `/nonexistent/${l}`), `apt-get install the packages providing ${missing.join(', ')} (see .ci/run)`);
}

export interface EximOptions {
  /** extra main-section lines (after the harness's own) */
  main?: string[];
  /** router definitions, placed before the harness's Maildir router */
  routers?: string;
  /** transport definitions, placed before the harness's Maildir transport */
  transports?: string;
  /** local parts given a Maildir under maildir.test (default ['user']) */
  mailboxes?: string[];
  /** owner of the Maildirs and usual pipe user (default: ensureTestUser()) */
  user?: TestUser;
}

export interface EximInstance {
  dir: string;
  configFile: string;
  spoolDir: string;
  logDir: string;
  user: TestUser;
  /** the Maildir of LOCALPART@maildir.test */
  maildir(localPart: string): string;
  /** run `exim4 -C configFile ...args` */
  exim(args: string[], input?: Buffer | string, opts?: RunOptions): Promise<RunResult>;
  /** submit one message (`-odq -oi -f SENDER -- RCPT…`), then deliver it with a queue run; the result is the submission's */
  submit(sender: string, recipients: string[], message: Buffer | string): Promise<RunResult>;
  /** feed a BSMTP stream to `-bS` (exit 0 all accepted, 1 some, 2 none), then deliver the queue */
  submitBsmtp(stream: Buffer | string): Promise<RunResult>;
  /** run an SMTP dialogue on stdin through `-bs` (replies on stdout; sync checks are off), then a queue run */
  smtp(script: Buffer | string): Promise<RunResult>;
  /** ids of queued messages (from `-bp`), sorted */
  queue(): Promise<string[]>;
  /** forced queue runs (`-qff`, retrying deferred and frozen mail) until the queue stops changing (at most 6) */
  runQueue(): Promise<RunResult>;
  mainlog(): string;
  paniclog(): string;
  /** wait (bounded) until the mainlog matches; returns the first matching line */
  waitLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** remove the temp dir (there is no daemon to stop) */
  stop(opts?: { keep?: boolean }): void;
}

export async function startExim(opts: EximOptions = {}): Promise<EximInstance> {
  const bin = eximBinary();
  const user = opts.user ?? ensureTestUser();
  // The Debian binary looks its compiled-in exim user up by name at start-up.
  const eximUser = ensureTestUser('Debian-exim', true);
  const dir = makeSharedTempDir('exim');
  const spoolDir = makeOwnedDir(join(dir, 'spool'), eximUser, 0o750);
  const logDir = makeOwnedDir(join(dir, 'log'), eximUser, 0o750);
  const mailRoot = makeOwnedDir(join(dir, 'mail'), user, 0o755);
  const configFile = join(dir, 'exim.conf');
  const mailboxes = opts.mailboxes ?? ['user'];
  const mailboxFile = join(dir, 'mailboxes');
  writeFileSync(mailboxFile, mailboxes.map((m) => `${m}: ${m}\n`).join(''));

  const conf = [
    'primary_hostname = exim.mailbag.test',
    'qualify_domain = exim.mailbag.test',
    `exim_path = ${bin}`,
    `spool_directory = ${spoolDir}`,
    `log_file_path = ${logDir}/%slog`,
    'log_selector = +received_recipients +delivery_size +return_path_on_delivery',
    `trusted_users = root : ${user.name}`,
    `domainlist local_domains = ${MAILDIR_DOMAIN}`,
    'acl_smtp_rcpt = acl_rcpt',
    'smtp_enforce_sync = false',
    'host_lookup =',
    'rfc1413_hosts =',
    'keep_environment =',
    'daemon_smtp_ports = 0',
    'message_size_limit = 100M',
    // Only root keeps its privilege with -C: every delivery happens in a root queue
    // run, and messages Exim makes itself (bounces, made by a child running as the
    // exim user) wait in the queue for the next one instead of failing to deliver.
    'queue_only',
    ...(opts.main ?? []),
    '',
    'begin acl',
    'acl_rcpt:',
    '  accept',
    '',
    'begin routers',
    opts.routers ?? '',
    'local_maildir:',
    '  driver = accept',
    '  domains = +local_domains',
    `  local_parts = lsearch;${mailboxFile}`,
    '  transport = local_maildir',
    '',
    'begin transports',
    opts.transports ?? '',
    'local_maildir:',
    '  driver = appendfile',
    '  maildir_format',
    `  directory = ${mailRoot}/$local_part_data`,
    '  create_directory',
    `  user = ${user.name}`,
    `  group = ${user.name}`,
    '  mode = 0600',
    '  delivery_date_add',
    '  envelope_to_add',
    '  return_path_add',
    '',
    'begin retry',
    '*  *  F,1h,1m',
    '',
  ];
  writeFileSync(configFile, conf.join('\n'));

  const logPath = (name: string) => join(logDir, `${name}log`);
  const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');
  const exim = (args: string[], input?: Buffer | string, runOpts: RunOptions = {}) =>
    run(bin, ['-C', configFile, ...args], { timeoutMs: 60_000, ...runOpts, input });

  const ex: EximInstance = {
    dir,
    configFile,
    spoolDir,
    logDir,
    user,
    maildir: (localPart) => join(mailRoot, localPart),
    exim,
    async submit(sender, recipients, message) {
      const r = await exim(['-odq', '-oi', '-f', sender, '--', ...recipients], message);
      await ex.runQueue();
      return r;
    },
    async submitBsmtp(stream) {
      const r = await exim(['-bS', '-odq'], stream);
      await ex.runQueue();
      return r;
    },
    async smtp(script) {
      const r = await exim(['-bs', '-odq'], script);
      await ex.runQueue();
      return r;
    },
    async queue() {
      const r = await exim(['-bp']);
      const ids = r.stdout.toString('utf8').match(/\b[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}\b/g);
      return [...new Set(ids ?? [])].sort();
    },
    async runQueue() {
      // a run can queue new messages (bounces): run again until the queue stops changing
      let r = await exim(['-qff']);
      for (let i = 0, before = ''; i < 5; i++) {
        const now = (await ex.queue()).join(' ');
        if (now === '' || now === before) break;
        before = now;
        r = await exim(['-qff']);
      }
      return r;
    },
    mainlog: () => read(logPath('main')),
    paniclog: () => read(logPath('panic')),
    async waitLog(pattern, timeoutMs = 30_000) {
      try {
        return await waitFor(() => ex.mainlog().split('\n').find((l) => pattern.test(l)), timeoutMs, `an Exim mainlog line matching ${pattern}`, 200);
      } catch (e) {
        throw new Error(`${(e as Error).message}\n--- mainlog ---\n${ex.mainlog()}\n--- paniclog ---\n${ex.paniclog()}`, { cause: e });
      }
    },
    stop(stopOpts = {}) {
      if (!stopOpts.keep) removeTempDir(dir);
    },
  };

  // Fail early with Exim's own words if the config does not parse.
  const check = await exim(['-bV']);
  if (check.code !== 0) {
    const out = `${check.stdout.toString('utf8')}${check.stderr}`;
    removeTempDir(dir);
    throw new Error(`exim -C ${configFile} -bV exited ${check.code}:\n${out}`);
  }
  return ex;
}
