// Real Postfix delivering through `mailbag lmtpd`: transport_maps `lmtp:unix:SOCKET`
// (the snippet of docs/lmtp.md), several recipients for two peers in one transaction,
// a bounce with the null sender, and DSN parameters set by the submitter both with
// sendmail -N/-R/-V and over SMTP (NOTIFY, RET, ENVID, ORCPT): the jobs in the spool
// hold exactly that envelope.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { havePostfix, POSTFIX_SENDMAIL, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { makeSharedTempDir, removeTempDir } from '../helpers/mta-common.js';
import { LmtpClient } from '../unit/lmtp/lmtp-client.js';
import { readJobs, startLmtpd, tmpLeftovers, type Lmtpd } from '../unit/lmtp/lmtpd-process.js';

const enabled = havePostfix();

describe.skipIf(!enabled)('Postfix → mailbag lmtpd', () => {
  let dir: string;
  let lmtpd: Lmtpd;
  let pf: PostfixInstance;

  beforeAll(async () => {
    dir = makeSharedTempDir('lmtp-postfix');
    // Postfix's lmtp(8) client runs as the postfix user: the socket must be open to it
    // (docs: a group the postfix user is in with 0660, or 0666 in a private directory)
    lmtpd = await startLmtpd({ dir, peers: { hub: ['a.test'], mx2: ['b.test'] }, socketMode: '0666' });
    pf = await startPostfix({
      smtp: true,
      transports: { 'a.test': `lmtp:unix:${lmtpd.socket}`, 'b.test': `lmtp:unix:${lmtpd.socket}`, 'nowhere.test': `lmtp:unix:${lmtpd.socket}` },
    });
  });

  afterAll(async () => {
    await pf?.stop();
    await lmtpd?.stop();
    if (dir) removeTempDir(dir);
  });

  const message = (subject: string): string =>
    `From: Sender <s@src.test>\nTo: several\nSubject: ${subject}\nMessage-ID: <${subject}@src.test>\n\n.a line with a leading dot\nbody of ${subject}\n`;

  const jobsWith = (peer: string, subject: string) =>
    readJobs(lmtpd.spool, peer).filter((j) => j.message.includes(`Subject: ${subject}\n`));

  it('several recipients for two peers: one job per peer, recipients together, message intact', async () => {
    const r = await pf.sendmail(['-f', 's@src.test', '--', 'x@a.test', 'y@b.test', 'z@a.test', 'w@b.test'], message('two-peers'));
    expect(r.code).toBe(0);
    await pf.waitQueueEmpty();
    const hub = jobsWith('hub', 'two-peers');
    const mx2 = jobsWith('mx2', 'two-peers');
    expect(hub).toHaveLength(1);
    expect(mx2).toHaveLength(1);
    expect(hub[0]!.header).toMatchObject({ from: 'home', to: 'hub', command: 'rsmtp', args: [], sender: 's@src.test' });
    expect([...hub[0]!.header.recipients].sort()).toEqual(['x@a.test', 'z@a.test']);
    expect([...mx2[0]!.header.recipients].sort()).toEqual(['w@b.test', 'y@b.test']);
    expect(hub[0]!.mail).toMatch(/^MAIL FROM:<s@src\.test>( |$)/);
    expect(hub[0]!.rcpts.map((l) => /^RCPT TO:<([^>]*)>/.exec(l)![1]).sort()).toEqual(['x@a.test', 'z@a.test']);
    // Postfix adds its Received header on top; the rest is the message as submitted
    expect(hub[0]!.message).toContain('\n.a line with a leading dot\nbody of two-peers\n');
    expect(hub[0]!.payload).toContain('\n..a line with a leading dot\n');
    expect(mx2[0]!.message).toBe(hub[0]!.message);
    expect(pf.log()).toMatch(/to=<x@a\.test>, relay=[^,]*lmtp\.sock[^,]*,.*status=sent \(250 2\.6\.0 queued for hub as job/);
  });

  it('a bounce with the null sender keeps <>', async () => {
    const r = await pf.sendmail(['-f', '<>', '--', 'x@a.test'], message('bounce'));
    expect(r.code).toBe(0);
    await pf.waitQueueEmpty();
    const [job] = jobsWith('hub', 'bounce');
    expect(job!.header.sender).toBe('');
    expect(job!.mail).toMatch(/^MAIL FROM:<> SIZE=\d+$/);
  });

  it('DSN from sendmail -N -R -V reaches the job', async () => {
    const r = await pf.sendmail(['-f', 's@src.test', '-N', 'success,delay', '-R', 'hdrs', '-V', 'env-42', '--', 'x@a.test', 'y@b.test'], message('dsn-sendmail'));
    expect(r.code).toBe(0);
    await pf.waitQueueEmpty();
    for (const peer of ['hub', 'mx2']) {
      const [job] = jobsWith(peer, 'dsn-sendmail');
      expect(job!.mail).toMatch(/^MAIL FROM:<s@src\.test> SIZE=\d+ ENVID=env-42 RET=HDRS$/);
      const rcpt = peer === 'hub' ? 'x@a.test' : 'y@b.test';
      expect(job!.rcpts).toEqual([`RCPT TO:<${rcpt}> ORCPT=rfc822;${rcpt} NOTIFY=SUCCESS,DELAY`]);
    }
  });

  it('DSN over SMTP submission (NOTIFY, RET, ENVID, ORCPT) reaches the job exactly', async () => {
    const c = await LmtpClient.connect(pf.smtpPort!);
    try {
      expect((await c.read()).code).toBe(220);
      expect((await c.cmd('EHLO client.test')).code).toBe(250);
      expect((await c.cmd('MAIL FROM:<s@src.test> RET=FULL ENVID=Q+2B1+3Dx')).code).toBe(250);
      expect((await c.cmd('RCPT TO:<x@a.test> NOTIFY=FAILURE ORCPT=rfc822;orig-x@elsewhere.test')).code).toBe(250);
      expect((await c.cmd('RCPT TO:<y@b.test> NOTIFY=NEVER')).code).toBe(250);
      const [ok] = await c.data(message('dsn-smtp'), 1);
      expect(ok!.code).toBe(250);
      await c.cmd('QUIT');
    } finally {
      c.destroy();
    }
    await pf.waitQueueEmpty();
    const [hub] = jobsWith('hub', 'dsn-smtp');
    const [mx2] = jobsWith('mx2', 'dsn-smtp');
    // exactly the submitter's envelope; SIZE is Postfix's own, as on any LMTP delivery
    expect(hub!.mail).toMatch(/^MAIL FROM:<s@src\.test> SIZE=\d+ ENVID=Q\+2B1\+3Dx RET=FULL$/);
    expect(hub!.rcpts).toEqual(['RCPT TO:<x@a.test> ORCPT=rfc822;orig-x@elsewhere.test NOTIFY=FAILURE']);
    expect(mx2!.rcpts).toEqual(['RCPT TO:<y@b.test> ORCPT=rfc822;y@b.test NOTIFY=NEVER']);
    expect(hub!.header.recipients).toEqual(['x@a.test']);
    expect(mx2!.mail).toBe(hub!.mail);
  });

  it('8-bit and SMTPUTF8: BODY=8BITMIME, SMTPUTF8 and a UTF-8 recipient kept, message bytes intact', async () => {
    const body = 'Grüße aus Köln — ünïcödé\n';
    const c = await LmtpClient.connect(pf.smtpPort!);
    try {
      expect((await c.read()).code).toBe(220);
      expect((await c.cmd('EHLO client.test')).lines).toContain('SMTPUTF8');
      expect((await c.cmd('MAIL FROM:<s@src.test> BODY=8BITMIME SMTPUTF8')).code).toBe(250);
      expect((await c.cmd('RCPT TO:<jörg@a.test>')).code).toBe(250);
      const [ok] = await c.data(`${message('utf8').replace('\n\n', '\nContent-Type: text/plain; charset=utf-8\n\n')}${body}`, 1);
      expect(ok!.code).toBe(250);
      await c.cmd('QUIT');
    } finally {
      c.destroy();
    }
    await pf.waitQueueEmpty();
    const [job] = jobsWith('hub', 'utf8');
    expect(job!.mail).toMatch(/^MAIL FROM:<s@src\.test> SIZE=\d+ BODY=8BITMIME SMTPUTF8$/);
    // the file holds UTF-8 bytes; readJobs reads latin1, so compare the bytes
    expect(Buffer.from(job!.rcpts[0]!, 'latin1').toString('utf8')).toMatch(/^RCPT TO:<jörg@a\.test>/);
    expect(job!.header.recipients).toEqual(['jörg@a.test']);
    expect(Buffer.from(job!.message, 'latin1').toString('utf8').endsWith(`\n\n.a line with a leading dot\nbody of utf8\n${body}`)).toBe(true);
  });

  // lmtpd refuses such an address itself (553 5.1.3, test/unit/lmtp/server.test.ts) for
  // LMTP clients that pass raw bytes on; this Postfix never gets that far
  it('a recipient in Latin-1 bytes (not UTF-8): Postfix refuses it itself, over SMTP and from its sendmail; nothing reaches the spool', async () => {
    const c = await LmtpClient.connect(pf.smtpPort!);
    try {
      expect((await c.read()).code).toBe(220);
      expect((await c.cmd('EHLO client.test')).code).toBe(250);
      expect((await c.cmd('MAIL FROM:<s@src.test>')).code).toBe(250);
      // "jörg" with ö as the one byte 0xF6
      c.write(Buffer.concat([Buffer.from('RCPT TO:<j'), Buffer.from([0xf6]), Buffer.from('rg@a.test>\r\n')]));
      expect((await c.read()).raw).toMatch(/^5\d\d .*UTF-8/);
      await c.cmd('QUIT');
    } finally {
      c.destroy();
    }
    // argv in raw bytes (node would write the string as UTF-8): through a shell's printf
    const r = spawnSync('/bin/sh', ['-c', `${POSTFIX_SENDMAIL} -C '${pf.configDir}' -f s@src.test -- "$(printf 'j\\366rg@a.test')"`], { input: message('latin1-rcpt'), timeout: 30_000 });
    expect(r.status, r.stderr.toString()).toBe(0);
    await pf.waitLog(/to=<j.rg@a\.test>.*dsn=5\.1\.3, status=bounced \(bad address syntax\)/);
    await pf.waitQueueEmpty();
    expect(jobsWith('hub', 'latin1-rcpt')).toEqual([]);
    expect(tmpLeftovers(lmtpd.spool)).toEqual([]);
  });

  it('a recipient no peer takes is refused at RCPT: Postfix bounces it with our text', async () => {
    const r = await pf.sendmail(['-f', 's@src.test', '--', 'nobody@nowhere.test'], message('unroutable'));
    expect(r.code).toBe(0);
    await pf.waitLog(/to=<nobody@nowhere\.test>.*status=bounced.*no peer takes mail for nowhere\.test/);
    expect(tmpLeftovers(lmtpd.spool)).toEqual([]);
  });
});
