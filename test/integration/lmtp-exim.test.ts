// Real Exim (Debian's exim4-daemon-light, unpacked) delivering through `mailbag lmtpd`
// with an lmtp transport (the snippet of docs/lmtp.md): lmtpd runs as an unprivileged
// user with the default socket inside its spool (0660), Exim's transport runs as that
// user. Several recipients for two peers, a bounce with <>, DSN parameters from an SMTP
// submission: the jobs hold that envelope.

import { chownSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveExim, startExim, type EximInstance } from '../helpers/exim.js';
import { ensureTestUser, freePort, makeOwnedDir, makeSharedTempDir, removeTempDir } from '../helpers/mta-common.js';
import { readJobs, startLmtpd, writeLmtpdConfig, type Lmtpd } from '../unit/lmtp/lmtpd-process.js';

const enabled = haveExim();

/**
 * The docs' Exim snippets with this test's paths: the lmtp transport on the unix socket
 * (a.test, b.test), and the smtp transport speaking LMTP over TCP (c.test, d.test),
 * which is the one that passes DSN parameters on (Exim's lmtp transport sends none).
 */
function eximLmtpSnippet(socket: string, user: string, port: number): { routers: string; transports: string } {
  return {
    routers: [
      'mailbag:',
      '  driver = accept',
      '  domains = a.test : b.test',
      '  transport = mailbag_lmtp',
      '',
      'mailbag_dsn:',
      '  driver = accept',
      '  domains = c.test : d.test',
      '  transport = mailbag_lmtp_tcp',
      '',
    ].join('\n'),
    transports: [
      'mailbag_lmtp:',
      '  driver = lmtp',
      `  socket = ${socket}`,
      '  batch_max = 100',
      `  user = ${user}`,
      '',
      'mailbag_lmtp_tcp:',
      '  driver = smtp',
      '  protocol = lmtp',
      '  hosts = 127.0.0.1',
      `  port = ${port}`,
      '  hosts_override',
      '  allow_localhost',
      '  max_rcpt = 100',
      '',
    ].join('\n'),
  };
}

describe.skipIf(!enabled)('Exim → mailbag lmtpd', () => {
  let dir: string;
  let lmtpd: Lmtpd;
  let ex: EximInstance;

  beforeAll(async () => {
    const user = ensureTestUser();
    dir = makeSharedTempDir('lmtp-exim');
    const home = makeOwnedDir(join(dir, 'mailbag'), user, 0o700);
    // the default socket: <spool>/lmtp.sock
    const socket = join(home, 'spool', 'lmtp.sock');
    const port = await freePort();
    const o = { dir: home, peers: { hub: ['a.test', 'c.test'], mx2: ['b.test', 'd.test'] }, socket, listen: `127.0.0.1:${port}`, uid: user.uid, gid: user.gid };
    chownSync(writeLmtpdConfig(o).config, user.uid, user.gid);
    lmtpd = await startLmtpd(o);
    const snippet = eximLmtpSnippet(socket, user.name, port);
    ex = await startExim({ ...snippet, main: ['dsn_advertise_hosts = *'] });
  });

  afterAll(async () => {
    ex?.stop();
    await lmtpd?.stop();
    if (dir) removeTempDir(dir);
  });

  const message = (subject: string): string =>
    `From: Sender <s@src.test>\nSubject: ${subject}\nMessage-ID: <${subject}@src.test>\n\n.dot line\nbody of ${subject}\n`;
  const dsnScript = (subject: string, d1: string, d2: string): string => [
    'EHLO client.test',
    'MAIL FROM:<s@src.test> RET=HDRS ENVID=exim-env-1',
    `RCPT TO:<x@${d1}> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig@elsewhere.test`,
    `RCPT TO:<y@${d2}> NOTIFY=NEVER`,
    'DATA',
    ...message(subject).split('\n').slice(0, -1),
    '.',
    'QUIT',
    '',
  ].join('\r\n');
  const jobsWith = (peer: string, subject: string) =>
    readJobs(lmtpd.spool, peer).filter((j) => j.message.includes(`Subject: ${subject}\n`));

  it('several recipients for two peers: one job per peer', async () => {
    const r = await ex.submit('s@src.test', ['x@a.test', 'y@b.test', 'z@a.test'], message('exim-two'));
    expect(r.code).toBe(0);
    await ex.waitLog(/[-=]> z <z@a\.test> .*T=mailbag_lmtp/);
    expect(await ex.queue()).toEqual([]);
    const [hub] = jobsWith('hub', 'exim-two');
    const [mx2] = jobsWith('mx2', 'exim-two');
    expect(hub!.header).toMatchObject({ to: 'hub', command: 'rsmtp', sender: 's@src.test' });
    expect([...hub!.header.recipients].sort()).toEqual(['x@a.test', 'z@a.test']);
    expect(mx2!.header.recipients).toEqual(['y@b.test']);
    expect(hub!.message).toContain('\n.dot line\nbody of exim-two\n');
    expect(hub!.mail).toMatch(/^MAIL FROM:<s@src\.test>/);
  });

  it('a bounce with <> keeps the null sender', async () => {
    const r = await ex.submit('<>', ['x@a.test'], message('exim-bounce'));
    expect(r.code).toBe(0);
    await ex.waitLog(/[-=]> x <x@a\.test> .*P=<> .*T=mailbag_lmtp/);
    const [job] = jobsWith('hub', 'exim-bounce');
    expect(job!.header.sender).toBe('');
    expect(job!.mail).toMatch(/^MAIL FROM:<>/);
  });

  it('the lmtp transport passes no ESMTP parameters: the job has the plain envelope', async () => {
    const r = await ex.smtp(dsnScript('exim-lmtp-nodsn', 'a.test', 'b.test'));
    expect(r.stdout.toString()).toMatch(/250 OK id=/);
    await ex.waitLog(/[-=]> y <y@b\.test> .*T=mailbag_lmtp /);
    const [hub] = jobsWith('hub', 'exim-lmtp-nodsn');
    expect(hub!.mail).toBe('MAIL FROM:<s@src.test>');
    expect(hub!.rcpts).toEqual(['RCPT TO:<x@a.test>']);
  });

  it('DSN parameters of an SMTP submission reach the jobs through the smtp transport with protocol = lmtp', async () => {
    const r = await ex.smtp(dsnScript('exim-dsn', 'c.test', 'd.test'));
    expect(r.stdout.toString()).toMatch(/250 OK id=/);
    await ex.waitLog(/[-=]> y@d\.test .*T=mailbag_lmtp_tcp/);
    const [hub] = jobsWith('hub', 'exim-dsn');
    const [mx2] = jobsWith('mx2', 'exim-dsn');
    // exactly the submitter's envelope (SIZE is Exim's own)
    expect(hub!.mail).toMatch(/^MAIL FROM:<s@src\.test> SIZE=\d+ RET=HDRS ENVID=exim-env-1$/);
    expect(hub!.rcpts).toEqual(['RCPT TO:<x@c.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig@elsewhere.test']);
    expect(mx2!.mail).toBe(hub!.mail);
    expect(mx2!.rcpts).toEqual(['RCPT TO:<y@d.test> NOTIFY=NEVER']);
  });
});
