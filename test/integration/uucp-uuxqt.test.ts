// Taylor UUCP (Debian's uucp) as a real peer: its uuxqt finds X. files that a remote
// system "hub" left in the spool (as uucico would after receiving them: formats.md
// §1.5) and runs our rmail and rsmtp through its `commands` whitelist; the mail lands
// in a real Postfix's Maildir with the right envelope. A temporary failure (75) keeps
// the X. file for uuxqt's next run, as checklist 15 asks.
//
// uuxqt runs commands as the uucp user, and Postfix's postdrop refuses a private
// configuration directory to any caller but root unless the system main.cf lists it
// (alternate_config_directories). The private test instance is therefore reached the
// other way our tools offer, delivery.method = "smtp" to its smtpd on 127.0.0.1.

import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { haveCorpus } from '../helpers/corpus.js';
import { bodyOf, readMaildir, waitMaildir } from '../helpers/maildir.js';
import { makeSharedTempDir, removeTempDir, repoRoot, run } from '../helpers/mta-common.js';
import { need } from '../helpers/need.js';
import { Spool } from '../../lib/spool/index.js';
import { havePostfix, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { plainCorpus, stuff } from './deliver-helpers.js';

const rmailBin = join(repoRoot, 'dist/bin/rmail.js');
const rsmtpBin = join(repoRoot, 'dist/bin/rsmtp.js');
const ready =
  havePostfix() &&
  haveCorpus() &&
  need('Taylor UUCP', ['/usr/sbin/uuxqt'], 'apt-get install uucp (see .ci/run)') &&
  need('the built rmail and rsmtp', [rmailBin, rsmtpBin], 'run npm run build (npm test does it first)');

function uucpIds(): { uid: number; gid: number } {
  const passwd = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('uucp:'));
  const f = passwd!.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

function chownTree(path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid);
  for (const name of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, name.name);
    if (name.isDirectory()) chownTree(p, uid, gid);
    else chownSync(p, uid, gid);
  }
}

describe.skipIf(!ready)('Taylor uuxqt runs our rmail and rsmtp into Postfix', () => {
  let pf: PostfixInstance;
  let dir: string;
  let seq = 0;
  const ids = ready ? uucpIds() : { uid: 0, gid: 0 };

  beforeAll(async () => {
    pf = await startPostfix({ mailboxes: ['user', 'other'], smtp: true });
    dir = makeSharedTempDir('uuxqt');
    for (const d of ['spool', 'pub', 'lock', 'bin', 'mbspool']) mkdirSync(join(dir, d));
    writeFileSync(join(dir, 'config'), [
      'nodename home',
      `spool ${dir}/spool`, `pubdir ${dir}/pub`, `lockdir ${dir}/lock`,
      `logfile ${dir}/Log`, `statfile ${dir}/Stats`, `debugfile ${dir}/Debug`,
      `sysfile ${dir}/sys`, `portfile ${dir}/port`, '',
    ].join('\n'));
    // what checklist 18 says: rsmtp added to `commands` (the default is rnews rmail)
    writeFileSync(join(dir, 'sys'), ['system hub', 'time never', 'commands rmail rsmtp', `command-path ${dir}/bin`, ''].join('\n'));
    writeFileSync(join(dir, 'port'), '');
    writeFileSync(join(dir, 'mailbag.toml'), ['site = "home"', `spool = "${dir}/mbspool"`, '[delivery]', 'method = "smtp"', `smtp = "127.0.0.1:${pf.smtpPort}"`, ''].join('\n'));
    // uuxqt runs commands with an empty environment: the admin's wrapper says where
    // our configuration is (a stderr log keeps the tools' one-line reasons)
    for (const [name, bin] of [['rmail', rmailBin], ['rsmtp', rsmtpBin]] as const) {
      writeFileSync(join(dir, 'bin', name), `#!/bin/sh\nMAILBAG_CONFIG=${dir}/mailbag.toml PATH=/usr/sbin:/usr/bin:/bin\nexport MAILBAG_CONFIG PATH\nexec ${process.execPath} ${bin} "$@" 2>>${dir}/stderr.log\n`);
      chmodSync(join(dir, 'bin', name), 0o755);
    }
    // the site's spool, where rsmtp keeps its progress across the caller's retries
    await Spool.open(join(dir, 'mbspool'), { create: true });
    chownTree(dir, ids.uid, ids.gid);
  }, 120_000);

  afterAll(async () => {
    await pf?.stop();
    if (dir) removeTempDir(dir);
  });

  /** Leave an execution request from hub in the spool, as uucico does on receipt. */
  function arrive(command: string, data: Buffer, requestor = 'postmaster@hub.test'): string {
    seq++;
    const name = `hubN${String(seq).padStart(4, '0')}`;
    for (const sub of ['X.', 'D.']) mkdirSync(join(dir, 'spool', 'hub', sub), { recursive: true });
    writeFileSync(join(dir, 'spool', 'hub', 'D.', `D.${name}`), data);
    writeFileSync(join(dir, 'spool', 'hub', 'X.', `X.${name}`), ['U uucp hub', `F D.${name}`, `I D.${name}`, `R ${requestor}`, 'N', `C ${command}`, ''].join('\n'));
    chownTree(join(dir, 'spool'), ids.uid, ids.gid);
    return name;
  }

  async function uuxqt(): Promise<string> {
    const r = await run('/usr/sbin/uuxqt', ['-I', join(dir, 'config'), '-s', 'hub'], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    return existsSync(join(dir, 'Log')) ? readFileSync(join(dir, 'Log'), 'utf8') : '';
  }

  test('rmail: From_ envelope to Return-Path, recipients from the command line, body byte-identical', async () => {
    const [m1, m2] = plainCorpus(2);
    arrive('rmail user@maildir.test other@maildir.test', Buffer.concat([Buffer.from('From alice  Sun Nov 22 04:10:00 2026 remote from hub\n'), m1!]));
    arrive('rmail user@maildir.test', Buffer.concat([Buffer.from('From bob@far.test  Sun Nov 22 04:10:00 2026\n'), m2!]));
    const log = await uuxqt();
    expect(log).not.toMatch(/Execution failed/);
    const user = await waitMaildir(pf.maildir('user'), 2, 30_000);
    const other = await waitMaildir(pf.maildir('other'), 1, 30_000);
    // our rmail hands over `hub!alice` (sendmail rmail's bang path); Postfix's address
    // rewriting (swap_bangpath, on by default) turns a bang path into alice@hub
    const a = user.find((m) => m.body.equals(bodyOf(m1!)));
    expect(a?.returnPath).toBe('alice@hub');
    expect(other.find((m) => m.body.equals(bodyOf(m1!)))?.returnPath).toBe('alice@hub');
    expect(user.find((m) => m.body.equals(bodyOf(m2!)))?.returnPath).toBe('bob@far.test');
    // nothing left for uuxqt
    expect(readdirSync(join(dir, 'spool', 'hub', 'X.'))).toEqual([]);
  });

  test('rsmtp: a BSMTP batch (null sender kept, ESMTP parameters carried) delivered transaction by transaction', async () => {
    const [m1, m2] = plainCorpus(4).slice(2);
    const seen = new Set(readMaildir(pf.maildir('other')).map((m) => m.path));
    const batch = [
      'HELO hub.test',
      'MAIL FROM:<>',
      'RCPT TO:<other@maildir.test>',
      'DATA', stuff(m1!) + '.',
      'MAIL FROM:<carol@far.test> RET=HDRS',
      'RCPT TO:<other@maildir.test> NOTIFY=NEVER',
      'DATA', stuff(m2!) + '.',
      'QUIT', '',
    ].join('\n');
    arrive('rsmtp', Buffer.from(batch, 'latin1'));
    const log = await uuxqt();
    expect(log).not.toMatch(/Execution failed/);
    // new messages by path: Maildir names sort by second, not by arrival within one
    const got = (await waitMaildir(pf.maildir('other'), seen.size + 2, 30_000)).filter((m) => !seen.has(m.path));
    expect(got).toHaveLength(2);
    expect(got.find((m) => m.body.equals(bodyOf(m1!)))?.returnPath).toBe('');
    expect(got.find((m) => m.body.equals(bodyOf(m2!)))?.returnPath).toBe('carol@far.test');
  });

  test('MTA unreachable: exit 75, uuxqt keeps the X. file and delivers it on a later run', async () => {
    const [m] = plainCorpus(5).slice(4);
    const toml = join(dir, 'mailbag.toml');
    const good = readFileSync(toml, 'utf8');
    writeFileSync(toml, good.replace(`127.0.0.1:${pf.smtpPort}`, '127.0.0.1:1'));
    const seenUser = new Set(readMaildir(pf.maildir('user')).map((x) => x.path));
    const name = arrive('rmail user@maildir.test', Buffer.concat([Buffer.from('From dave@far.test  Sun Nov 22 04:10:00 2026\n'), m!]));
    const log = await uuxqt();
    expect(log).toMatch(new RegExp(`Will retry later \\(X\\.${name}\\)`));
    expect(readdirSync(join(dir, 'spool', 'hub', 'X.'))).toEqual([`X.${name}`]);
    expect(readFileSync(join(dir, 'stderr.log'), 'utf8')).toMatch(/^4\.4\.1 rmail: /m);
    writeFileSync(toml, good);
    await uuxqt();
    const got = (await waitMaildir(pf.maildir('user'), seenUser.size + 1, 30_000)).filter((x) => !seenUser.has(x.path));
    expect(got.map((x) => [x.returnPath, x.body.equals(bodyOf(m!))])).toEqual([['dave@far.test', true]]);
    expect(readdirSync(join(dir, 'spool', 'hub', 'X.'))).toEqual([]);
  });

  test('rsmtp on a batch cut short: the whole transactions delivered, exit 65, uuxqt does not run it again; the whole batch later: nothing twice', async () => {
    const [m1, m2] = plainCorpus(7).slice(5);
    const seen = new Set(readMaildir(pf.maildir('other')).map((m) => m.path));
    const tx1 = ['MAIL FROM:<erin@far.test>', 'RCPT TO:<other@maildir.test>', 'DATA', stuff(m1!) + '.', ''].join('\n');
    const tx2 = ['MAIL FROM:<erin@far.test>', 'RCPT TO:<other@maildir.test>', 'DATA', stuff(m2!) + '.', ''].join('\n');
    const whole = Buffer.from(tx1 + tx2, 'latin1');
    const name = arrive('rsmtp', whole.subarray(0, Buffer.byteLength(tx1, 'latin1') + 60));
    const log = await uuxqt();
    expect(log).toMatch(/Exit status 65/);
    // the same file could never do better: uuxqt removed it instead of retrying for ever
    expect(readdirSync(join(dir, 'spool', 'hub', 'X.'))).not.toContain(`X.${name}`);
    await uuxqt();
    const first = (await waitMaildir(pf.maildir('other'), seen.size + 1, 30_000)).filter((m) => !seen.has(m.path));
    expect(first.map((m) => m.body.equals(bodyOf(m1!)))).toEqual([true]);
    // the sender's side runs the whole batch again (its writer had died mid-stream)
    const before = readFileSync(join(dir, 'Log'), 'utf8').length;
    arrive('rsmtp', whole);
    const after = await uuxqt();
    expect(after.slice(before)).not.toMatch(/Exit status/);
    const got = (await waitMaildir(pf.maildir('other'), seen.size + 2, 30_000)).filter((m) => !seen.has(m.path));
    await new Promise((r) => setTimeout(r, 1000));
    const all = readMaildir(pf.maildir('other')).filter((m) => !seen.has(m.path));
    expect(got).toHaveLength(2);
    expect(all.filter((m) => m.body.equals(bodyOf(m1!)))).toHaveLength(1);
    expect(all.filter((m) => m.body.equals(bodyOf(m2!)))).toHaveLength(1);
  });

  test('a bad envelope fails the execution (65), uuxqt reports it; the MTA never sees a message', async () => {
    const before = readMaildir(pf.maildir('user')).length;
    arrive('rmail user@maildir.test', Buffer.from('Subject: no envelope\n\nbody\n'));
    const log = await uuxqt();
    expect(log).toMatch(/Exit status 65/);
    await new Promise((r) => setTimeout(r, 1000));
    expect(readMaildir(pf.maildir('user')).length).toBe(before);
  });
});
