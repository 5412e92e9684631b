// A private, real Postfix (Debian's package) for integration tests: its own
// config_directory, queue, data dir and log file in a temp dir, loopback only, started
// as root with `postfix -c DIR start` and stopped by `postfix -c DIR stop`, then by the
// master's PID. It coexists with the system install (left stopped, "No configuration").
//
// Usage (root; skip with havePostfix() first):
//   const pf = await startPostfix({
//     masterCf: [`mailbag unix - n n - - pipe flags=q null_sender= user=mailbag-test argv=${mailbagBin} enqueue $nexthop -f $sender -- $recipient`],
//     transports: { 'uucp.test': 'mailbag:hub' },      // transport_maps entries
//     mainCf: ['mailbag_destination_recipient_limit = 50'],
//     environment: { MAILBAG_CONFIG: '/tmp/…/mailbag.toml' },  // exported to pipe commands
//     smtp: true,                                     // smtpd on pf.smtpPort (127.0.0.1)
//   });
//   await pf.sendmail(['-f', 'a@x.test', '--', 'user@maildir.test'], message);
//   await pf.waitQueueEmpty();                        // or pf.waitLog(/status=deferred/)
//   readMaildir(pf.maildir('user'));                  // from ./maildir.js
//   await pf.stop();
//
// Local mail: `LOCALPART@maildir.test` is delivered by virtual(8) into the Maildir
// pf.maildir(LOCALPART), owned by the test user, for each name in `mailboxes`.

import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { need } from './need.js';
import {
  ensureTestUser,
  freePort,
  isRoot,
  makeOwnedDir,
  makeSharedTempDir,
  processAlive,
  removeTempDir,
  run,
  waitFor,
  type RunResult,
  type TestUser,
} from './mta-common.js';

export const POSTFIX_BIN = '/usr/sbin/postfix';
export const POSTFIX_SENDMAIL = '/usr/sbin/sendmail';
export const MAILDIR_DOMAIN = 'maildir.test';

/** true when Postfix can be run here (as root); false with a SKIP line; throws under CI */
export function havePostfix(): boolean {
  if (!need('Postfix', [POSTFIX_BIN, POSTFIX_SENDMAIL, '/usr/lib/postfix/sbin/master'], 'apt-get install postfix (see .ci/run)')) {
    return false;
  }
  return need('root (the private Postfix is started as root)', isRoot ? [] : ['uid 0'], 'run the integration tests as root');
}

export interface PostfixOptions {
  /** extra main.cf lines, appended after the harness's own (later lines win) */
  mainCf?: string[];
  /** extra master.cf lines (services such as pipe transports) */
  masterCf?: string[];
  /** transport_maps entries: domain or address → "transport:nexthop" (texthash, no postmap) */
  transports?: Record<string, string>;
  /** local parts given a Maildir under maildir.test (default ['user']) */
  mailboxes?: string[];
  /** environment exported to pipe(8) commands (import_environment + export_environment) */
  environment?: Record<string, string>;
  /** start smtpd on a free 127.0.0.1 port (pf.smtpPort) */
  smtp?: boolean;
  /** user owning the Maildirs (default: ensureTestUser()) */
  user?: TestUser;
}

export interface PostfixInstance {
  /** the temp dir holding everything below; removed by stop() */
  dir: string;
  configDir: string;
  queueDir: string;
  logFile: string;
  user: TestUser;
  smtpPort?: number;
  /** the Maildir of LOCALPART@maildir.test */
  maildir(localPart: string): string;
  /** run Postfix's sendmail with `-C configDir` and these arguments, message on stdin */
  sendmail(args: string[], message: Buffer | string, timeoutMs?: number): Promise<RunResult>;
  /** queue file names still in maildrop/incoming/active/deferred/hold */
  queued(): string[];
  /** wait until nothing is queued (bounded; default 30 s) */
  waitQueueEmpty(timeoutMs?: number): Promise<void>;
  /** the whole log so far */
  log(): string;
  /** wait until the log matches; returns the first matching line */
  waitLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** ask Postfix to retry deferred mail now */
  flush(): Promise<void>;
  /** delete every queued message (postsuper -d ALL) */
  deleteQueued(): Promise<void>;
  /** stop Postfix (postfix stop, then the master's PID) and remove the temp dir */
  stop(opts?: { keep?: boolean }): Promise<void>;
}

const SERVICES = [
  // service  type  private unpriv chroot wakeup maxproc command
  'pickup    unix  n       -       n       60      1       pickup',
  'cleanup   unix  n       -       n       -       0       cleanup',
  'qmgr      unix  n       -       n       300     1       qmgr',
  'rewrite   unix  -       -       n       -       -       trivial-rewrite',
  'bounce    unix  -       -       n       -       0       bounce',
  'defer     unix  -       -       n       -       0       bounce',
  'trace     unix  -       -       n       -       0       bounce',
  'verify    unix  -       -       n       -       1       verify',
  'flush     unix  n       -       n       1000?   0       flush',
  'proxymap  unix  -       -       n       -       -       proxymap',
  'proxywrite unix -       -       n       -       1       proxymap',
  'smtp      unix  -       -       n       -       -       smtp',
  'relay     unix  -       -       n       -       -       smtp',
  'showq     unix  n       -       n       -       -       showq',
  'error     unix  -       -       n       -       -       error',
  'retry     unix  -       -       n       -       -       error',
  'discard   unix  -       -       n       -       -       discard',
  'local     unix  -       n       n       -       -       local',
  'virtual   unix  -       n       n       -       -       virtual',
  'lmtp      unix  -       -       n       -       -       lmtp',
  'anvil     unix  -       -       n       -       1       anvil',
  'scache    unix  -       -       n       -       1       scache',
  'postlog   unix-dgram n  -       n       -       1       postlogd',
];

const QUEUES = ['maildrop', 'incoming', 'active', 'deferred', 'hold'];

function listFilesDeep(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: string[] = [];
  for (const name of names) {
    const p = join(dir, name);
    // Postfix moves queue files (incoming -> active -> gone) while we look: a file that
    // vanished between readdir and stat has simply moved on
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    if (isDir) out.push(...listFilesDeep(p));
    else out.push(name);
  }
  return out;
}

/** Start a private Postfix. Throws (with the log) if it does not come up within 30 s. */
export async function startPostfix(opts: PostfixOptions = {}): Promise<PostfixInstance> {
  const user = opts.user ?? ensureTestUser();
  const dir = makeSharedTempDir('postfix');
  const configDir = join(dir, 'etc');
  const queueDir = join(dir, 'queue');
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'maillog');
  const mailRoot = join(dir, 'mail');
  makeOwnedDir(configDir, { name: 'root', uid: 0, gid: 0 }, 0o755);
  makeOwnedDir(queueDir, { name: 'root', uid: 0, gid: 0 }, 0o755);
  makeOwnedDir(mailRoot, user, 0o755);

  const mailboxes = opts.mailboxes ?? ['user'];
  const smtpPort = opts.smtp ? await freePort() : undefined;

  const transports = Object.entries(opts.transports ?? {}).map(([k, v]) => `${k} ${v}\n`).join('');
  writeFileSync(join(configDir, 'transport'), transports);
  writeFileSync(join(configDir, 'vmailbox'), mailboxes.map((m) => `${m}@${MAILDIR_DOMAIN} ${m}/\n`).join(''));

  const env = opts.environment ?? {};
  const importEnv = ['MAIL_CONFIG', 'MAIL_DEBUG', 'MAIL_LOGTAG', 'TZ', 'LANG=C', ...Object.entries(env).map(([k, v]) => `${k}=${v}`)];
  const exportEnv = ['TZ', 'MAIL_CONFIG', 'LANG', ...Object.keys(env)];

  const main = [
    'compatibility_level = 3.6',
    `queue_directory = ${queueDir}`,
    `data_directory = ${dataDir}`,
    'mail_owner = postfix',
    'setgid_group = postdrop',
    `maillog_file = ${logFile}`,
    `maillog_file_prefixes = ${dir}`,
    'inet_interfaces = loopback-only',
    'inet_protocols = ipv4',
    'myhostname = postfix.mailbag.test',
    'mydomain = mailbag.test',
    'myorigin = $myhostname',
    'mydestination =',
    'local_recipient_maps =',
    'relayhost =',
    'mynetworks = 127.0.0.0/8',
    'alias_maps =',
    'alias_database =',
    'smtputf8_enable = yes',
    'biff = no',
    'smtp_dns_support_level = disabled',
    'disable_dns_lookups = yes',
    'default_transport = error:outside the test world',
    `transport_maps = texthash:${join(configDir, 'transport')}`,
    `virtual_mailbox_domains = ${MAILDIR_DOMAIN}`,
    `virtual_mailbox_base = ${mailRoot}`,
    `virtual_mailbox_maps = texthash:${join(configDir, 'vmailbox')}`,
    `virtual_uid_maps = static:${user.uid}`,
    `virtual_gid_maps = static:${user.gid}`,
    `import_environment = ${importEnv.join(' ')}`,
    `export_environment = ${exportEnv.join(' ')}`,
    // a test wants to see a retry soon, and a stopped instance to stop fast
    'queue_run_delay = 2s',
    'minimal_backoff_time = 2s',
    'maximal_backoff_time = 4s',
    'daemon_timeout = 60s',
    ...(opts.mainCf ?? []),
  ];
  writeFileSync(join(configDir, 'main.cf'), main.join('\n') + '\n');
  const master = [...SERVICES];
  if (smtpPort !== undefined) master.push(`127.0.0.1:${smtpPort} inet n - n - - smtpd`);
  master.push(...(opts.masterCf ?? []));
  writeFileSync(join(configDir, 'master.cf'), master.join('\n') + '\n');

  const pf: PostfixInstance = {
    dir,
    configDir,
    queueDir,
    logFile,
    user,
    smtpPort,
    maildir: (localPart) => join(mailRoot, localPart),
    sendmail: (args, message, timeoutMs = 30_000) =>
      run(POSTFIX_SENDMAIL, ['-C', configDir, ...args], { input: message, timeoutMs }),
    queued: () => QUEUES.flatMap((q) => listFilesDeep(join(queueDir, q))),
    async waitQueueEmpty(timeoutMs = 30_000) {
      try {
        await waitFor(() => pf.queued().length === 0, timeoutMs, 'the Postfix queue to empty', 200);
      } catch (e) {
        throw new Error(`${(e as Error).message}; still queued: ${pf.queued().join(' ')}\n--- maillog ---\n${pf.log()}`, { cause: e });
      }
    },
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    async waitLog(pattern, timeoutMs = 30_000) {
      try {
        return await waitFor(() => pf.log().split('\n').find((l) => pattern.test(l)), timeoutMs, `a maillog line matching ${pattern}`, 200);
      } catch (e) {
        throw new Error(`${(e as Error).message}\n--- maillog ---\n${pf.log()}`, { cause: e });
      }
    },
    async flush() {
      await run(POSTFIX_BIN, ['-c', configDir, 'flush'], { timeoutMs: 30_000 });
    },
    async deleteQueued() {
      await run('/usr/sbin/postsuper', ['-c', configDir, '-d', 'ALL'], { timeoutMs: 30_000 });
    },
    async stop(stopOpts = {}) {
      const pidFile = join(queueDir, 'pid/master.pid');
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : NaN;
      await run(POSTFIX_BIN, ['-c', configDir, 'stop'], { timeoutMs: 30_000 });
      if (Number.isInteger(pid) && pid > 0) {
        try {
          await waitFor(() => !processAlive(pid), 10_000, `Postfix master ${pid} to exit`);
        } catch {
          process.kill(pid, 'SIGKILL');
          await waitFor(() => !processAlive(pid), 5_000, `Postfix master ${pid} to die`);
        }
      }
      if (!stopOpts.keep) removeTempDir(dir);
    },
  };

  const started = await run(POSTFIX_BIN, ['-c', configDir, 'start'], { timeoutMs: 60_000 });
  if (started.code !== 0) {
    const log = pf.log();
    removeTempDir(dir);
    throw new Error(`postfix -c ${configDir} start exited ${started.code}: ${started.stderr}\n${log}`);
  }
  try {
    await waitFor(() => existsSync(join(queueDir, 'pid/master.pid')), 30_000, 'the Postfix master pid file');
    await waitFor(() => existsSync(join(queueDir, 'public/pickup')) && existsSync(join(queueDir, 'public/qmgr')), 30_000, 'Postfix services');
    if (smtpPort !== undefined) {
      await waitFor(() => /daemon started/.test(pf.log()), 30_000, 'the Postfix log');
    }
  } catch (e) {
    await pf.stop({ keep: true });
    throw new Error(`${(e as Error).message}\n--- maillog ---\n${pf.log()}\n(kept ${dir})`, { cause: e });
  }
  return pf;
}
