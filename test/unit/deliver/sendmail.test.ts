import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { classifyExit, deliverWithSendmail, eximBadRecipients, sendmailArgv, sizeRefusal, mtaTakesDsnFlags } from '../../../lib/deliver/sendmail.js';
import { classifyVersionProbe, detectMta } from '../../../lib/deliver/mta.js';
import { permanentExit } from '../../../lib/deliver/result.js';
import { FAKE_SENDMAIL } from '../runner/helpers.js';

describe('sendmail argv', () => {
  const dsn = { sender: 's@x', recipients: ['-r@y', 'q@z'], ret: 'HDRS', envid: 'e1', notify: 'SUCCESS,DELAY' };
  it('is -oi -f SENDER [DSN] -- RCPT…; never -oee; <> for the null sender', () => {
    expect(sendmailArgv(dsn, 'postfix')).toEqual(['-oi', '-f', 's@x', '-N', 'success,delay', '-R', 'hdrs', '-V', 'e1', '--', '-r@y', 'q@z']);
    expect(sendmailArgv({ sender: '', recipients: ['a@b'] }, 'postfix')).toEqual(['-oi', '-f', '<>', '--', 'a@b']);
    for (const mta of ['postfix', 'exim', 'sendmail', 'unknown'] as const) expect(sendmailArgv(dsn, mta)).not.toContain('-oee');
  });
  it('gives DSN flags only to Postfix and sendmail 8, never to Exim or an unknown MTA', () => {
    expect(sendmailArgv(dsn, 'exim')).toEqual(['-oi', '-f', 's@x', '--', '-r@y', 'q@z']);
    expect(sendmailArgv(dsn, 'unknown')).toEqual(['-oi', '-f', 's@x', '--', '-r@y', 'q@z']);
    expect(sendmailArgv(dsn, 'sendmail')).toContain('-N');
    expect([mtaTakesDsnFlags('exim'), mtaTakesDsnFlags('postfix')]).toEqual([false, true]);
  });
  it('asks Exim alone for errors on stderr (-oep) when told, so that it mails no error of its own', () => {
    expect(sendmailArgv({ ...dsn, errorsToStderr: true }, 'exim')).toEqual(['-oi', '-oep', '-f', 's@x', '--', '-r@y', 'q@z']);
    expect(sendmailArgv({ ...dsn, errorsToStderr: true }, 'postfix')).not.toContain('-oep');
  });
  it('reads the recipients Exim refused as unparsable, only among those given', () => {
    const out = 'exim: bad recipient address "bad@@x.test": domain missing or malformed\nexim: bad recipient address "a@b>c": malformed address: >c may not follow a@b\nexim: bad recipient address "not-ours": x\n';
    expect([...eximBadRecipients(out, ['ok@x.test', 'bad@@x.test', 'a@b>c']).keys()]).toEqual(['bad@@x.test', 'a@b>c']);
    expect(eximBadRecipients('exim: message too big\n', ['a@b']).size).toBe(0);
  });
  it('takes Postfix\'s "message file too big" (exit 75) as final 5.3.4, and nothing else', () => {
    const out = { code: 75, signal: null, output: 'postdrop: warning: uid=0: File too large\nsendmail: warning: mail_stream_cleanup: close error\nsendmail: fatal: s@x(0): message file too big\n' };
    expect(sizeRefusal(classifyExit(out, 'sendmail'), out, 'postfix')).toMatchObject({ kind: 'permanent', status: '5.3.4' });
    expect(sizeRefusal(classifyExit(out, 'sendmail'), out, 'exim').kind).toBe('temporary');
    const other = { ...out, output: 'sendmail: fatal: s@x(0): queue file write error\n' };
    expect(sizeRefusal(classifyExit(other, 'sendmail'), other, 'postfix').kind).toBe('temporary');
  });
  it('drops an ENVID that would not survive a command line', () => {
    expect(sendmailArgv({ ...dsn, envid: 'a b' }, 'postfix')).not.toContain('-V');
  });
});

describe('exit status of sendmail', () => {
  const o = (code: number | null, output = '', signal: NodeJS.Signals | null = null) => ({ code, signal, output });
  it('0 accepted; 75, 74, 71, signals and spawn failures temporary; the rest permanent', () => {
    expect(classifyExit(o(0), 'sendmail').kind).toBe('accepted');
    for (const c of [75, 74, 71]) expect(classifyExit(o(c), 'sendmail').kind).toBe('temporary');
    expect(classifyExit(o(null, '', 'SIGKILL'), 'sendmail').kind).toBe('temporary');
    expect(classifyExit({ ...o(null), spawnError: new Error('ENOENT') }, 'sendmail').kind).toBe('temporary');
    for (const c of [1, 64, 65, 67, 68, 69, 70, 73, 77, 78]) expect(classifyExit(o(c), 'sendmail').kind).toBe('permanent');
  });
  it('maps codes to enhanced status as Postfix does, and prefers a status the program printed', () => {
    expect(classifyExit(o(67), 's').status).toBe('5.1.1');
    expect(classifyExit(o(68), 's').status).toBe('5.1.2');
    expect(classifyExit(o(77), 's').status).toBe('5.7.0');
    expect(classifyExit(o(69), 's').status).toBe('5.3.0');
    expect(classifyExit(o(69, '5.2.2 mailbox full'), 's').status).toBe('5.2.2');
    expect(classifyExit(o(75, '4.3.1 queue file write error'), 's').status).toBe('4.3.1');
  });
  it('passes on only the permanent exits checklist 14 allows', () => {
    expect([65, 67, 68, 69, 77, 78].map(permanentExit)).toEqual([65, 67, 68, 69, 77, 78]);
    expect([1, 64, 70, 73, 74, null].map(permanentExit)).toEqual([69, 69, 69, 69, 69, 69]);
  });
});

describe('MTA detection', () => {
  it('only Exim answers -bV with its version', () => {
    expect(classifyVersionProbe(0, 'Exim version 4.96 #2 built', '/usr/sbin/exim4')).toBe('exim');
    expect(classifyVersionProbe(75, 'sendmail: fatal: open /etc/postfix/main.cf: No such file', '/usr/sbin/sendmail')).toBe('postfix');
    expect(classifyVersionProbe(null, '', '/usr/lib/sendmail')).toBe('unknown');
    // what a configured Postfix 3.7 answers (its sendmail is not a symlink): taken for sendmail 8
    // before, so BSMTP jobs never went through -bs and ORCPT was lost (fidelity10-end-to-end)
    expect(classifyVersionProbe(75, 'sendmail: fatal: unsupported: -bV\n', '/usr/sbin/sendmail')).toBe('postfix');
  });
  it('probes the program, or believes the configuration', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailbag-mta-'));
    try {
      expect(await detectMta(FAKE_SENDMAIL, 'auto', { ...process.env, FAKE_SENDMAIL_DIR: dir, FAKE_SENDMAIL_FLAVOUR: 'exim', MAIL_CONFIG: 'a' })).toBe('exim');
      expect(await detectMta(FAKE_SENDMAIL, 'auto', { ...process.env, FAKE_SENDMAIL_DIR: dir, FAKE_SENDMAIL_FLAVOUR: 'postfix', MAIL_CONFIG: 'b' })).toBe('postfix');
      expect(await detectMta('/nonexistent/sendmail', 'auto', process.env)).toBe('unknown');
      expect(await detectMta('/nonexistent/sendmail', 'exim', process.env)).toBe('exim');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deliverWithSendmail', () => {
  it('splits recipients by NOTIFY (one -N per call) and skips those already settled', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailbag-sm-'));
    try {
      const body = join(dir, 'body');
      writeFileSync(body, 'x\n..dot\n');
      const tx = {
        index: 0, sender: 's@x', mailParams: [], line: 1,
        recipients: [{ address: 'a@y', params: ['NOTIFY=NEVER'] }, { address: 'b@y', params: [] }, { address: 'c@y', params: ['NOTIFY=NEVER'] }, { address: 'd@y', params: [] }],
        body: { path: body, start: 0, end: undefined, stuffed: true },
      };
      const res = await deliverWithSendmail(tx, new Set(['d@y']), { program: FAKE_SENDMAIL, mta: 'postfix', env: { ...process.env, FAKE_SENDMAIL_DIR: dir, FAKE_SENDMAIL_EXITS: '0,67' } });
      expect(res.map((r) => [r.address, r.kind])).toEqual([['a@y', 'accepted'], ['c@y', 'accepted'], ['b@y', 'permanent']]);
      expect(readFileSync(join(dir, '1.argv'), 'utf8')).toBe('-oi\n-f\ns@x\n-N\nnever\n--\na@y\nc@y\n');
      expect(readFileSync(join(dir, '2.argv'), 'utf8')).toBe('-oi\n-f\ns@x\n--\nb@y\n');
      expect(readFileSync(join(dir, '1.stdin'), 'utf8')).toBe('x\n.dot\n'); // un-stuffed
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('runChild and a command that leaves a process behind', () => {
  it('returns the exit status once the command has exited, not when what it started lets go of its stdout', async () => {
    const { runChild } = await import('../../../lib/deliver/sendmail.js');
    const dir = mkdtempSync(join(tmpdir(), 'mailbag-runchild-'));
    const pidFile = join(dir, 'pid');
    const doneFile = join(dir, 'done');
    try {
      // a sendmail that hands the message to a background process (it keeps our pipes) and exits 0
      const program = join(dir, 'sendmail');
      writeFileSync(program, `#!/bin/sh\ncat > /dev/null\necho queued\n(sleep 20; : > ${JSON.stringify(doneFile)}) &\necho $! > ${JSON.stringify(pidFile)}\nexit 0\n`, { mode: 0o755 });
      const out = await runChild(program, ['-oi', '--', 'r@y'], Buffer.from('Subject: x\n\nbody\n'), process.env);
      expect(out).toMatchObject({ code: 0, signal: null });
      expect(out.output).toContain('queued');
      // answered while the process left behind still runs (before: only once it had ended)
      expect(existsSync(doneFile)).toBe(false);
    } finally {
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('runChild and a command that hangs', () => {
  it('is killed at the time limit, and its diagnostic says so (temporary), not a bare "killed by SIGKILL" an admin reads as the OOM killer', async () => {
    const { runChild } = await import('../../../lib/deliver/sendmail.js');
    const out = await runChild('/bin/sleep', ['30'], undefined, process.env, 300);
    expect(out).toMatchObject({ code: null, signal: 'SIGKILL' });
    expect(classifyExit(out, 'sendmail')).toEqual({ kind: 'temporary', status: '4.3.0', diagnostic: 'x-unix; sendmail killed by SIGKILL: still running after the 0.3 s time limit' });
    // a signal from elsewhere is said as it was
    expect(classifyExit({ code: null, signal: 'SIGTERM', output: '' }, 'sendmail')).toEqual({ kind: 'temporary', status: '4.3.0', diagnostic: 'x-unix; sendmail killed by SIGTERM' });
  }, 10_000);
});
