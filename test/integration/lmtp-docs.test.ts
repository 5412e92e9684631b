// Every snippet of docs/lmtp.md, read from the page itself, used as written except for
// the paths, domains and user names of this test: lmtpd runs with the page's
// mailbag.toml as the user and group its systemd unit names; real Postfix delivers with
// the page's transport map and main.cf lines; real Exim with its router and both
// transports; OpenSMTPD's smtpd.conf passes `smtpd -n` (its Debian package unpacked).

import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { havePostfix, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { haveExim, startExim, type EximInstance } from '../helpers/exim.js';
import { ensureTestUser, freePort, makeOwnedDir, makeSharedTempDir, removeTempDir, run } from '../helpers/mta-common.js';
import { need } from '../helpers/need.js';
import { LmtpClient } from '../unit/lmtp/lmtp-client.js';
import { readJobs, startLmtpd, type Lmtpd } from '../unit/lmtp/lmtpd-process.js';
import { lmtpdEnvironment, lmtpPage, lmtpTomlNumber, postfixRecommendation, snippet as snippetOf } from '../unit/lmtp/docs-snippets.js';

const page = lmtpPage();
const snippet = (name: string): string => snippetOf(name, page);

interface World {
  dir: string;
  spool: string;
  run: string;
  user: string;
}

/** the page's names → this test's */
function localise(text: string, w: World): string {
  return text
    .replaceAll('/var/spool/mailbag', w.spool)
    .replaceAll('/run/mailbag', w.run)
    .replaceAll('example.org', 'a.test')
    .replaceAll('example.net', 'b.test')
    .replace(/^(\s*user\s*=\s*)mailbag$/m, `$1${w.user}`)
    .replace('"@" = "mailbag"', `"@" = "${w.user}"`);
}

function unitValue(unit: string, key: string): string {
  const m = new RegExp(`^${key}=(.*)$`, 'm').exec(unit);
  if (!m) throw new Error(`systemd snippet has no ${key}=`);
  return m[1]!.trim();
}

const message = (subject: string): string => `From: s@src.test\nSubject: ${subject}\nMessage-ID: <${subject}@src.test>\n\nbody\n`;

describe.skipIf(!havePostfix())('docs/lmtp.md: mailbag.toml, systemd unit and Postfix snippets', () => {
  let w: World;
  let lmtpd: Lmtpd;
  let pf: PostfixInstance;

  beforeAll(async () => {
    const user = ensureTestUser();
    const dir = makeSharedTempDir('lmtp-docs-pf');
    const home = makeOwnedDir(join(dir, 'home'), user, 0o700);
    w = { dir, spool: join(home, 'spool'), run: join(dir, 'run'), user: user.name };
    // what systemd does for the unit: RuntimeDirectory owned by User:Group with its mode
    const unit = snippet('systemd');
    expect(unitValue(unit, 'User')).toBe('mailbag');
    const group = unitValue(unit, 'Group');
    const gid = Number(execFileSync('getent', ['group', group], { encoding: 'utf8' }).split(':')[2]);
    makeOwnedDir(w.run, { name: user.name, uid: user.uid, gid }, parseInt(unitValue(unit, 'RuntimeDirectoryMode'), 8));
    // the program where npm install -g puts it, as every other page writes it (docs/setup.md)
    expect(unitValue(unit, 'ExecStart')).toMatch(/^\/usr\/local\/bin\/mailbag lmtpd --config /);
    // a worker's death ends lmtpd with 75 (lmtp-workers.test.ts), and only a supervisor
    // brings it back: the unit restarts it on a non-zero exit or a kill, not on a stop's 0
    expect(unitValue(unit, 'Restart')).toBe('on-failure');
    expect(unit).not.toMatch(/^(SuccessExitStatus|RestartPreventExitStatus)=.*\b75\b/m);
    const configText = localise(snippet('mailbag.toml'), w);
    // the unit's Environment= lines, as systemd passes them
    const unitEnv = lmtpdEnvironment(page);
    expect(unitEnv).toEqual({ UV_THREADPOOL_SIZE: '64' });
    lmtpd = await startLmtpd({ dir: home, configText, spool: w.spool, socket: join(w.run, 'lmtp.sock'), uid: user.uid, gid, peers: {}, env: unitEnv });
    // it took effect: the pool's 64 threads are there (beside the main thread and V8's),
    // and lmtpd does not ask for the variable
    expect(readdirSync(`/proc/${lmtpd.pid}/task`).length).toBeGreaterThan(64);
    expect(lmtpd.log()).not.toMatch(/UV_THREADPOOL_SIZE is not set/);
    chownSync(join(home, 'mailbag.toml'), user.uid, user.gid);

    const transports = Object.fromEntries(localise(snippet('postfix-transport'), w).trim().split('\n').map((l) => l.trim().split(/\s+/) as [string, string]));
    const mainCf = snippet('postfix-main.cf').split('\n').filter((l) => l.trim() && !l.startsWith('#'));
    // the harness keeps its own texthash transport_maps (no postmap); the rest as written
    expect(mainCf.find((l) => l.startsWith('transport_maps'))).toBe('transport_maps = hash:/etc/postfix/transport');
    const rec = postfixRecommendation(page);
    pf = await startPostfix({ transports, mainCf: rec.mainCf, masterCf: rec.masterCf });
  });

  afterAll(async () => {
    await pf?.stop();
    await lmtpd?.stop();
    if (w?.dir) removeTempDir(w.dir);
  });

  it('the Postfix snippets fit together and fit lmtpd\'s limits', () => {
    const rec = postfixRecommendation(page);
    const param = (name: string): number => Number(new RegExp(`^${rec.transport}_${name}\\s*=\\s*(\\d+)`, 'm').exec(rec.mainCf.join('\n'))?.[1]);
    // every transport map entry names the page's own service
    for (const line of snippet('postfix-transport').trim().split('\n')) expect(line.split(/\s+/)[1]).toMatch(new RegExp(`^${rec.transport}:unix:`));
    // as many deliveries as the service may run, from the start; one per process
    expect(param('destination_concurrency_limit')).toBe(rec.processLimit);
    expect(param('initial_destination_concurrency')).toBe(rec.processLimit);
    // lmtpd takes those and the idle connections Postfix's connection cache holds
    expect(lmtpTomlNumber('max_connections', page)).toBeGreaterThanOrEqual(2 * rec.processLimit);
    expect(param('destination_recipient_limit')).toBeLessThanOrEqual(lmtpTomlNumber('max_recipients', page));
  });

  it('the socket has the page\'s mode and group; Postfix delivers both domains through it', async () => {
    const { statSync } = await import('node:fs');
    const st = statSync(lmtpd.socket);
    expect(st.mode & 0o777).toBe(0o660);
    expect(st.gid).toBe(Number(execFileSync('getent', ['group', 'postfix'], { encoding: 'utf8' }).split(':')[2]));
    const r = await pf.sendmail(['-f', 's@src.test', '-N', 'failure', '--', 'x@a.test', 'y@b.test'], message('docs-postfix'));
    expect(r.code).toBe(0);
    await pf.waitQueueEmpty();
    const [hub] = readJobs(w.spool, 'hub');
    const [backup] = readJobs(w.spool, 'backup');
    expect(hub!.header.recipients).toEqual(['x@a.test']);
    expect(backup!.header.recipients).toEqual(['y@b.test']);
    expect(hub!.rcpts[0]).toMatch(/NOTIFY=FAILURE/);
    // (through the page's own service: the transport map names it, and Postfix defers
    // mail for a transport master.cf does not define)
  });
});

describe.skipIf(!haveExim())('docs/lmtp.md: Exim snippets', () => {
  let w: World;
  let lmtpd: Lmtpd;
  let ex: EximInstance;
  let port: number;

  beforeAll(async () => {
    const user = ensureTestUser();
    const dir = makeSharedTempDir('lmtp-docs-exim');
    const home = makeOwnedDir(join(dir, 'home'), user, 0o700);
    w = { dir, spool: join(home, 'spool'), run: join(dir, 'run'), user: user.name };
    port = await freePort();
    // the page's mailbag.toml without its socket line (the default, inside the spool),
    // plus the TCP listener the smtp-transport variant needs
    const configText = localise(snippet('mailbag.toml'), w)
      .replace(/^socket = .*\n/m, '')
      .replace('[lmtp]\n', `[lmtp]\nlisten = "127.0.0.1:${port}"\n`);
    writeFileSync(join(home, 'mailbag.toml'), configText);
    chownSync(join(home, 'mailbag.toml'), user.uid, user.gid);
    lmtpd = await startLmtpd({ dir: home, configText, spool: w.spool, uid: user.uid, gid: user.gid, peers: {} });
    chmodSync(home, 0o700);
    const router = localise(snippet('exim-router'), w);
    // the same router once more, for the local part "dsn" only, to the TCP transport
    const tcpRouter = router.replace(/^mailbag:/m, 'mailbag_tcp:').replace('transport = mailbag_lmtp', 'local_parts = dsn\n  transport = mailbag_lmtp_tcp');
    const tcp = localise(snippet('exim-transport-tcp'), w).replace(/^mailbag_lmtp:/m, 'mailbag_lmtp_tcp:').replace('port = 2424', `port = ${port}`);
    ex = await startExim({
      routers: `${tcpRouter}\n${router}`,
      transports: `${localise(snippet('exim-transport'), w)}\n${tcp}`,
      main: ['dsn_advertise_hosts = *'],
    });
  });

  afterAll(async () => {
    ex?.stop();
    await lmtpd?.stop();
    if (w?.dir) removeTempDir(w.dir);
  });

  it('the lmtp transport delivers through the default socket inside the spool', async () => {
    expect(lmtpd.socket).toBe(join(w.spool, 'lmtp.sock'));
    const r = await ex.submit('s@src.test', ['x@a.test', 'y@b.test'], message('docs-exim'));
    expect(r.code).toBe(0);
    await ex.waitLog(/[-=]> y <y@b\.test> .*T=mailbag_lmtp/);
    expect(readJobs(w.spool, 'hub').map((j) => j.header.recipients)).toEqual([['x@a.test']]);
    expect(readJobs(w.spool, 'backup').map((j) => j.header.recipients)).toEqual([['y@b.test']]);
  });

  it('the smtp transport with protocol = lmtp keeps the DSN parameters', async () => {
    const script = ['EHLO c.test', 'MAIL FROM:<s@src.test> RET=HDRS ENVID=docs-1', 'RCPT TO:<dsn@a.test> NOTIFY=SUCCESS', 'DATA',
      'Subject: docs-exim-dsn', '', 'body', '.', 'QUIT', ''].join('\r\n');
    const r = await ex.smtp(script);
    expect(r.stdout.toString()).toMatch(/250 OK id=/);
    await ex.waitLog(/=> dsn@a\.test .*T=mailbag_lmtp_tcp/);
    const job = readJobs(w.spool, 'hub').find((j) => j.message.includes('Subject: docs-exim-dsn'));
    expect(job).toBeDefined();
    expect(job!.mail).toMatch(/^MAIL FROM:<s@src\.test> SIZE=\d+ RET=HDRS ENVID=docs-1$/);
    expect(job!.rcpts).toEqual(['RCPT TO:<dsn@a.test> NOTIFY=SUCCESS']);
  });
});

const OSMTPD_ROOT = '/opt/mailbag-test/opensmtpd';
const SMTPD = `${OSMTPD_ROOT}/usr/sbin/smtpd`;
const haveSmtpd = need('OpenSMTPD (unpacked opensmtpd .deb)', [SMTPD], 'apt-get download opensmtpd && dpkg -x opensmtpd_*.deb /opt/mailbag-test/opensmtpd (see .ci/run)')
  && need('root (OpenSMTPD runs as root)', process.getuid?.() === 0 ? [] : ['uid 0'], 'run as root');

/**
 * What the Debian package's postinst would have done for the unpacked binary: its two
 * users with their chroot home, and its lmtp helper where the binary looks for it.
 */
function prepareOpenSmtpd(): void {
  const empty = '/var/lib/opensmtpd/empty';
  mkdirSync(empty, { recursive: true });
  for (const name of ['opensmtpd', 'opensmtpq']) {
    ensureTestUser(name, true);
    execFileSync('usermod', ['-d', empty, name]);
  }
  mkdirSync('/usr/libexec/opensmtpd', { recursive: true });
  const helper = '/usr/libexec/opensmtpd/mail.lmtp';
  if (!existsSync(helper)) symlinkSync(`${OSMTPD_ROOT}/usr/libexec/opensmtpd/mail.lmtp`, helper);
}

describe.skipIf(!haveSmtpd)('docs/lmtp.md: OpenSMTPD snippet', () => {
  let w: World;
  let lmtpd: Lmtpd;
  let smtpd: ChildProcess | undefined;
  let port: number;
  let smtpdLog = '';

  beforeAll(async () => {
    prepareOpenSmtpd();
    const user = ensureTestUser();
    const dir = makeSharedTempDir('lmtp-docs-smtpd');
    const home = makeOwnedDir(join(dir, 'home'), user, 0o700);
    w = { dir, spool: join(home, 'spool'), run: join(dir, 'run'), user: user.name };
    const configText = localise(snippet('mailbag.toml'), w).replace(/^socket = .*\n/m, '');
    writeFileSync(join(home, 'mailbag.toml'), configText);
    chownSync(join(home, 'mailbag.toml'), user.uid, user.gid);
    lmtpd = await startLmtpd({ dir: home, configText, spool: w.spool, uid: user.uid, gid: user.gid, peers: {} });
    port = await freePort();
    const conf = join(dir, 'smtpd.conf');
    writeFileSync(conf, `listen on 127.0.0.1 port ${port}\n${localise(snippet('smtpd.conf'), w)}`);
    const check = await run(SMTPD, ['-n', '-f', conf]);
    expect(`${check.stdout.toString()}${check.stderr}`).toMatch(/configuration OK/);
    smtpd = spawn(SMTPD, ['-d', '-f', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    smtpd.stdout!.on('data', (b: Buffer) => (smtpdLog += b.toString()));
    smtpd.stderr!.on('data', (b: Buffer) => (smtpdLog += b.toString()));
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        const c = await LmtpClient.connect(port);
        c.destroy();
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`OpenSMTPD did not listen on ${port}:\n${smtpdLog}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  });

  afterAll(async () => {
    if (smtpd?.pid && smtpd.exitCode === null) {
      const gone = new Promise((r) => smtpd!.once('exit', r));
      process.kill(smtpd.pid, 'SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 10_000))]);
    }
    await lmtpd?.stop();
    if (w?.dir) removeTempDir(w.dir);
  });

  it('OpenSMTPD delivers through the default socket: one job per recipient, routed per peer', async () => {
    const c = await LmtpClient.connect(port);
    try {
      expect((await c.read()).code).toBe(220);
      expect((await c.cmd('EHLO client.test')).code).toBe(250);
      await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<x@a.test>', 'RCPT TO:<y@b.test>', 'RCPT TO:<z@a.test>']);
      const [r] = await c.data(message('docs-opensmtpd'), 1);
      expect(r!.code).toBe(250);
    } finally {
      c.destroy();
    }
    const deadline = Date.now() + 30_000;
    while (readJobs(w.spool, 'hub').length + readJobs(w.spool, 'backup').length < 3) {
      if (Date.now() > deadline) throw new Error(`no jobs after 30 s:\n${smtpdLog}\n${lmtpd.log()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const hub = readJobs(w.spool, 'hub');
    expect(hub.map((j) => j.header.recipients[0]).sort()).toEqual(['x@a.test', 'z@a.test']);
    expect(readJobs(w.spool, 'backup').map((j) => j.header.recipients)).toEqual([['y@b.test']]);
    for (const j of hub) {
      expect(j.mail).toBe('MAIL FROM:<s@src.test>');
      expect(j.message).toContain('Subject: docs-opensmtpd\n');
    }
  });

  it('the parser is not a rubber stamp', async () => {
    const conf = join(w.dir, 'bad.conf');
    writeFileSync(conf, 'action "mailbag" lmtp\n');
    expect((await run(SMTPD, ['-n', '-f', conf])).code).not.toBe(0);
  });
});
