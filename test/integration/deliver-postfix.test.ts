// The runner into a real Postfix (Debian's package, a private instance delivering to a
// Maildir): corpus messages as rmail jobs arrive with their bodies byte-identical and
// Return-Path equal to the envelope sender; a BSMTP bounce keeps `<>`; DSN parameters
// of a BSMTP job reach Postfix (it honours NOTIFY=SUCCESS and ENVID in its own success
// report); a permanent RCPT rejection gives one RFC 3464 notice and no retry; a
// temporary one is retried and then delivered; accepted-for-two-of-three is never
// delivered twice to those two — by the sendmail method (-bs for BSMTP) and by smtp.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig, type Config } from '../../lib/config/index.js';
import { newJobId, type JobHeader } from '../../lib/job/index.js';
import { runJobs } from '../../lib/runner/runner.js';
import { Spool } from '../../lib/spool/index.js';
import { corpusFiles, haveCorpus } from '../helpers/corpus.js';
import { plainCorpus, stuff } from './deliver-helpers.js';
import { bodyOf, readMaildir, waitMaildir } from '../helpers/maildir.js';
import { run } from '../helpers/mta-common.js';
import { havePostfix, startPostfix, type PostfixInstance } from '../helpers/postfix.js';

const ready = havePostfix() && haveCorpus();


interface Site {
  dir: string;
  config: Config;
  spool: Spool;
  env: NodeJS.ProcessEnv;
  receive(h: Partial<JobHeader> & { command: string }, payload: Buffer | string): Promise<string>;
  run(force?: boolean): ReturnType<typeof runJobs>;
}

async function makeSite(pf: PostfixInstance, method: 'sendmail' | 'smtp'): Promise<Site> {
  const dir = mkdtempSync(join(tmpdir(), `mailbag-deliver-${method}-`));
  const file = join(dir, 'mailbag.toml');
  writeFileSync(file, [
    'site = "home"',
    `spool = "${join(dir, 'spool')}"`,
    '[delivery]',
    `method = "${method}"`,
    'sendmail = "/usr/sbin/sendmail"',
    `smtp = "127.0.0.1:${pf.smtpPort}"`,
    'concurrency = 3',
    '[peers.hub]',
    'transport = "command"',
    'command = ["true"]',
  ].join('\n'));
  const config = loadConfig({ path: file, env: {} });
  const spool = await Spool.open(config.spool, { create: true });
  const env = { ...process.env, MAIL_CONFIG: pf.configDir };
  return {
    dir,
    config,
    spool,
    env,
    async receive(h, payload) {
      const header: JobHeader = { id: newJobId(), from: 'hub', to: 'home', created: new Date().toISOString(), args: [], sender: '', recipients: [], ...h };
      await spool.writeJob('in', 'hub', header, Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'latin1'));
      return header.id;
    },
    run: (force = false) => runJobs({ config, spool, env, force, log: (l) => process.stderr.write(`runner: ${l}\n`) }),
  };
}

describe.skipIf(!ready)('runner into a real Postfix', () => {
  let pf: PostfixInstance;
  const sites: Site[] = [];
  const accessMap = (): string => join(pf.configDir, 'rcpt-access');

  beforeAll(async () => {
    pf = await startPostfix({
      smtp: true,
      mailboxes: ['user', 'other', 'third', 'sender', 'bounces', 'odd'],
      mainCf: [
        `smtpd_recipient_restrictions = check_recipient_access texthash:${join('/tmp', 'placeholder')}, permit_mynetworks, reject_unauth_destination`,
      ],
    });
    // the access map lives in the instance's config dir: a second main.cf line wins
    writeFileSync(accessMap(), 'third@maildir.test 450 4.2.0 mailbox busy, try later\n');
    writeFileSync(join(pf.configDir, 'main.cf'), readFileSync(join(pf.configDir, 'main.cf'), 'utf8') +
      `smtpd_recipient_restrictions = check_recipient_access texthash:${accessMap()}, permit_mynetworks, reject_unauth_destination\n`);
    await run('/usr/sbin/postfix', ['-c', pf.configDir, 'reload']);
  }, 120_000);

  afterAll(async () => {
    for (const s of sites) rmSync(s.dir, { recursive: true, force: true });
    await pf?.stop();
  });

  test('corpus messages as rmail jobs (sendmail method): bodies byte-identical, Return-Path = envelope sender, right recipients', async () => {
    const site = await makeSite(pf, 'sendmail');
    sites.push(site);
    const msgs = plainCorpus(30);
    expect(msgs.length).toBe(30);
    for (let i = 0; i < msgs.length; i++) {
      const from = `From sender${i}@corpus.test  Sun Nov 22 04:10:00 2026\n`;
      await site.receive({ command: 'rmail', args: ['user@maildir.test'], sender: `sender${i}@corpus.test`, recipients: ['user@maildir.test'] }, Buffer.concat([Buffer.from(from), msgs[i]!]));
    }
    const summary = await site.run();
    expect(summary).toEqual({ done: 30, retry: 0, failed: 0, skipped: 0 });
    const got = await waitMaildir(pf.maildir('user'), 30, 60_000);
    const bySender = new Map(got.map((m) => [m.returnPath, m]));
    for (let i = 0; i < msgs.length; i++) {
      const m = bySender.get(`sender${i}@corpus.test`);
      expect(m, `message ${i} delivered with its Return-Path`).toBeDefined();
      expect(m!.body.equals(bodyOf(msgs[i]!))).toBe(true);
      expect(m!.header('delivered-to')).toBe('user@maildir.test');
    }
    expect(await site.spool.listJobs('in', 'hub')).toEqual([]);
  });

  test('the odd corpus (8-bit, CRLF, long lines, lone dots, From lines in the body, no final newline) by both methods: bodies as Postfix keeps them', async () => {
    // What reaches the Maildir is the message as Postfix stores any submission: CRLF
    // becomes LF and a missing final newline is added (sendmail_fix_line_endings,
    // smtpd). Leading From_ lines are what `mailbag enqueue` takes off before a job is
    // made (docs/mailbag-enqueue.md), so a job never starts with one.
    const odd = corpusFiles('odd').map((f) => readFileSync(f));
    const asJob = (m: Buffer): Buffer => {
      let t = m.toString('latin1');
      while (/^>*From /.test(t)) t = t.slice(t.indexOf('\n') + 1);
      return Buffer.from(t, 'latin1');
    };
    const expected = (m: Buffer): Buffer => {
      let t = asJob(m).toString('latin1').replace(/\r\n/g, '\n');
      if (!t.endsWith('\n')) t += '\n';
      // no blank line after the header (odd 39): Postfix's cleanup ends the header at
      // the first line that is not a field and puts the blank line there
      if (!t.includes('\n\n')) {
        const lines = t.split('\n');
        const first = lines.findIndex((l) => !/^[!-9;-~]+:/.test(l) && !/^[ \t]/.test(l));
        return Buffer.from(lines.slice(first).join('\n'), 'latin1');
      }
      return bodyOf(Buffer.from(t, 'latin1'));
    };
    for (const method of ['sendmail', 'smtp'] as const) {
      const site = await makeSite(pf, method);
      sites.push(site);
      for (let i = 0; i < odd.length; i++) {
        const from = `From odd${i}-${method}@corpus.test  Sun Nov 22 04:10:00 2026\n`;
        await site.receive({ command: 'rmail', args: ['odd@maildir.test'] }, Buffer.concat([Buffer.from(from), asJob(odd[i]!)]));
      }
      const summary = await site.run();
      expect(summary, method).toEqual({ done: odd.length, retry: 0, failed: 0, skipped: 0 });
    }
    await pf.waitQueueEmpty(60_000);
    const got = readMaildir(pf.maildir('odd'));
    const wrong: string[] = [];
    for (const method of ['sendmail', 'smtp']) {
      for (let i = 0; i < odd.length; i++) {
        const m = got.find((x) => x.returnPath === `odd${i}-${method}@corpus.test`);
        if (!m) wrong.push(`${method} ${i}: missing`);
        else if (!m.body.equals(expected(odd[i]!))) wrong.push(`${method} ${i}: body differs`);
      }
    }
    expect(wrong).toEqual([]);
  });

  test('BSMTP job through Postfix sendmail -bs: <> stays <>, NOTIFY and ORCPT reach Postfix, nothing is sent to <>', async () => {
    const site = await makeSite(pf, 'sendmail');
    sites.push(site);
    const [bounce, dsn] = plainCorpus(2);
    const seen = new Set(readMaildir(pf.maildir('other')).map((m) => m.path));
    const payload = [
      'EHLO hub.test',
      'MAIL FROM:<>',
      'RCPT TO:<other@maildir.test>',
      'DATA',
      stuff(bounce!) + '.',
      'MAIL FROM:<sender@maildir.test> RET=HDRS ENVID=env+2Bid-42',
      'RCPT TO:<other@maildir.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig+2Bother@maildir.test',
      'RCPT TO:<nobody@maildir.test> NOTIFY=FAILURE',
      'DATA',
      stuff(dsn!) + '.',
      'QUIT',
      '',
    ].join('\n');
    await site.receive({ command: 'rsmtp' }, payload);
    const summary = await site.run();
    // Postfix's -bs takes every recipient of a virtual domain (its stand-alone smtpd has
    // no recipient validation); nobody@ is bounced by Postfix itself, as NOTIFY=FAILURE asks
    expect(summary).toEqual({ done: 1, retry: 0, failed: 0, skipped: 0 });
    // new messages by path: Maildir names sort by second, not by arrival within one
    const fresh = (await waitMaildir(pf.maildir('other'), seen.size + 2, 60_000)).filter((m) => !seen.has(m.path));
    const nullSender = fresh.find((m) => m.body.equals(bodyOf(bounce!)));
    expect(nullSender?.returnPath).toBe('');
    const withDsn = fresh.find((m) => m.body.equals(bodyOf(dsn!)));
    expect(withDsn?.returnPath).toBe('sender@maildir.test');
    // NOTIFY=SUCCESS and ORCPT reached Postfix: its own reports carry them. (Postfix
    // 3.7's stand-alone smtpd drops the MAIL parameters RET and ENVID, even from its own
    // client; the smtp method's test below shows them arriving.)
    const sender = await waitMaildir(pf.maildir('sender'), 2, 60_000);
    const texts = sender.map((m) => m.raw.toString('latin1'));
    const success = texts.find((t) => /Action: delivered/.test(t) && /orig\+other@maildir\.test/.test(t));
    expect(success, `Postfix success DSN for NOTIFY=SUCCESS; got:\n${texts.join('\n----\n')}`).toBeDefined();
    expect(success).toMatch(/Original-Recipient: rfc822;\s*orig\+other@maildir\.test/);
    const failure = texts.find((t) => /Action: failed/.test(t) && /nobody@maildir\.test/.test(t));
    expect(failure).toMatch(/Final-Recipient: rfc822;\s*nobody@maildir\.test/);
    // the null-sender message is never answered with a notice
    expect(texts.filter((t) => /X-Mailbag-Job:/.test(t))).toHaveLength(0);
  });

  test('smtp method: accepted for two of three, the third deferred (450), retried and delivered; the two get it once', async () => {
    const site = await makeSite(pf, 'smtp');
    sites.push(site);
    const [m] = plainCorpus(1);
    const counts = (): number[] => ['user', 'other', 'third'].map((u) => readMaildir(pf.maildir(u)).filter((x) => x.body.equals(bodyOf(m!)) && x.returnPath === 'three@corpus.test').length);
    const from = 'From three@corpus.test  Sun Nov 22 04:10:00 2026\n';
    await site.receive({ command: 'rmail', args: ['user@maildir.test', 'other@maildir.test', 'third@maildir.test'] }, Buffer.concat([Buffer.from(from), m!]));
    const first = await site.run();
    expect(first.retry).toBe(1);
    await waitMaildir(pf.maildir('other'), 1, 30_000);
    await pf.waitQueueEmpty(30_000);
    expect(counts()).toEqual([1, 1, 0]);
    // the mailbox frees up
    writeFileSync(accessMap(), '');
    await run('/usr/sbin/postfix', ['-c', pf.configDir, 'reload']);
    await new Promise((r) => setTimeout(r, 1500));
    const second = await site.run(true);
    expect(second.done).toBe(1);
    await pf.waitQueueEmpty(30_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(counts()).toEqual([1, 1, 1]);
    expect(await site.spool.listJobs('in', 'hub')).toEqual([]);
  });

  test('smtp method: a 5xx recipient gives one notice, nothing retried; <> sender never notified', async () => {
    const site = await makeSite(pf, 'smtp');
    sites.push(site);
    const [m] = plainCorpus(3).slice(2);
    const seen = new Set(readMaildir(pf.maildir('bounces')).map((x) => x.path));
    await site.receive({ command: 'rsmtp' }, `MAIL FROM:<bounces@maildir.test> RET=HDRS ENVID=smtp+2Benv-7\nRCPT TO:<ghost@maildir.test>\nRCPT TO:<user@maildir.test> NOTIFY=SUCCESS\nDATA\n${stuff(m!)}.\nMAIL FROM:<>\nRCPT TO:<ghost2@maildir.test>\nDATA\n${stuff(m!)}.\n`);
    const s = await site.run();
    expect(s.failed).toBe(1);
    const got = (await waitMaildir(pf.maildir('bounces'), seen.size + 2, 30_000)).filter((x) => !seen.has(x.path));
    const texts = got.map((x) => x.raw.toString('latin1'));
    const notices = texts.filter((t) => /X-Mailbag-Job:/.test(t));
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(/Final-Recipient: rfc822; ghost@maildir\.test/);
    expect(notices[0]).toMatch(/Original-Envelope-Id: smtp\+2Benv-7/);
    // ENVID and NOTIFY went over SMTP to Postfix: its success report for user@ carries them
    const success = texts.find((t) => /Action: delivered/.test(t));
    expect(success).toMatch(/Original-Envelope-Id: smtp\+(2B)?env-7/);
    expect(success).toMatch(/Content-Type: text\/rfc822-headers/);
    expect(notices[0]).toMatch(/Content-Type: text\/rfc822-headers/); // RET=HDRS in our notice too
    expect(success).toMatch(/Final-Recipient: rfc822;\s*user@maildir\.test/);
    await site.run(true);
    await pf.waitQueueEmpty(30_000);
    expect(readMaildir(pf.maildir('bounces')).length).toBe(seen.size + 2);
  });
});
