// The runner into a real Exim (Debian's binary, private -C configuration, delivering to
// a Maildir): rmail jobs go through `sendmail -oi -f SENDER -- RCPT…` with no DSN flag
// (Exim is detected with -bV), BSMTP jobs through `exim -bS` with every ESMTP parameter
// stripped; after a transaction Exim refuses, only the transactions after it are offered
// again, and the refused one's sender gets one RFC 3464 notice.

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig, type Config } from '../../lib/config/index.js';
import { newJobId, type JobHeader } from '../../lib/job/index.js';
import { runJobs } from '../../lib/runner/runner.js';
import { listFailed } from '../../lib/runner/failed.js';
import { Spool } from '../../lib/spool/index.js';
import { haveCorpus } from '../helpers/corpus.js';
import { eximBinary, haveExim, startExim, type EximInstance } from '../helpers/exim.js';
import { bodyOf, readMaildir } from '../helpers/maildir.js';
import { plainCorpus, stuff } from './deliver-helpers.js';

const ready = haveExim() && haveCorpus();


describe.skipIf(!ready)('runner into a real Exim', () => {
  let ex: EximInstance;
  let dir: string;
  let config: Config;
  let spool: Spool;
  const log: string[] = [];

  beforeAll(async () => {
    ex = await startExim({ mailboxes: ['user', 'other', 'sender'] });
    dir = mkdtempSync(join(tmpdir(), 'mailbag-deliver-exim-'));
    // the "sendmail" an Exim site has, pointed at the private configuration; -odq
    // because a -C Exim cannot deliver at once (see test/helpers/exim.ts)
    const wrapper = join(dir, 'sendmail');
    writeFileSync(wrapper, `#!/bin/sh\nexec ${eximBinary()} -C ${ex.configFile} -odq "$@"\n`);
    chmodSync(wrapper, 0o755);
    const file = join(dir, 'mailbag.toml');
    writeFileSync(file, ['site = "home"', `spool = "${join(dir, 'spool')}"`, '[delivery]', 'method = "sendmail"', `sendmail = "${wrapper}"`, '[peers.hub]', 'transport = "command"', 'command = ["true"]'].join('\n'));
    config = loadConfig({ path: file, env: {} });
    spool = await Spool.open(config.spool, { create: true });
  }, 120_000);

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    ex?.stop();
  });

  async function receive(h: Partial<JobHeader> & { command: string }, payload: Buffer | string): Promise<string> {
    const header: JobHeader = { id: newJobId(), from: 'hub', to: 'home', created: new Date().toISOString(), args: [], sender: '', recipients: [], ...h };
    await spool.writeJob('in', 'hub', header, Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'latin1'));
    return header.id;
  }

  test('corpus messages as rmail jobs: bodies byte-identical, Return-Path = envelope sender, no DSN flags', async () => {
    const msgs = plainCorpus(20);
    for (let i = 0; i < msgs.length; i++) {
      await receive({ command: 'rmail', args: ['user@maildir.test'] }, Buffer.concat([Buffer.from(`From gw!sender${i}  Sun Nov 22 04:10:00 2026 remote from hub\n`), msgs[i]!]));
    }
    const s = await runJobs({ config, spool, env: process.env, log: (l) => log.push(l) });
    expect(s).toEqual({ done: 20, retry: 0, failed: 0, skipped: 0 });
    await ex.runQueue();
    const got = readMaildir(ex.maildir('user'));
    expect(got).toHaveLength(20);
    const bySender = new Map(got.map((m) => [m.returnPath, m]));
    for (let i = 0; i < msgs.length; i++) {
      // a bang path is qualified by Exim, as for any unqualified sender
      const m = [...bySender.entries()].find(([rp]) => rp?.startsWith(`hub!gw!sender${i}@`))?.[1];
      expect(m, `message ${i}`).toBeDefined();
      expect(m!.body.equals(bodyOf(msgs[i]!))).toBe(true);
      expect(m!.header('envelope-to')).toBe('user@maildir.test');
    }
  });

  test('BSMTP via -bS: parameters stripped, <> kept, a refused transaction noticed once, the rest re-offered and delivered', async () => {
    const [a, b, c] = plainCorpus(23).slice(20);
    const seen = new Set(readMaildir(ex.maildir('other')).map((m) => m.path));
    const payload = [
      'MAIL FROM:<> ENVID=x1',
      'RCPT TO:<other@maildir.test> NOTIFY=NEVER',
      'DATA', stuff(a!) + '.',
      'MAIL FROM:<sender@maildir.test> RET=HDRS',
      'RCPT TO:<user@[999.1.1.1]>', // Exim -bS: 501 domain literals not allowed
      'DATA', stuff(b!) + '.',
      'MAIL FROM:<third@corpus.test> SIZE=100',
      'RCPT TO:<other@maildir.test> ORCPT=rfc822;other@maildir.test',
      'DATA', stuff(c!) + '.',
      '',
    ].join('\n');
    await receive({ command: 'rsmtp' }, payload);
    const s = await runJobs({ config, spool, env: process.env, log: (l) => log.push(l) });
    expect(s.failed, log.join('\n')).toBe(1); // the refused transaction: job in failed/ with Exim's words
    expect((await listFailed(spool))[0]!.reason).toMatch(/user@\[999\.1\.1\.1\]>: smtp; 501 domain literals not allowed/);
    await ex.runQueue();
    const other = readMaildir(ex.maildir('other')).filter((m) => !seen.has(m.path));
    expect(other).toHaveLength(2);
    const nul = other.find((m) => m.body.equals(bodyOf(a!)));
    expect(nul?.returnPath).toBe('');
    const third = other.find((m) => m.body.equals(bodyOf(c!)));
    expect(third?.returnPath).toBe('third@corpus.test');
    const notices = readMaildir(ex.maildir('sender')).filter((m) => /X-Mailbag-Job:/.test(m.raw.toString('latin1')));
    expect(notices).toHaveLength(1);
    expect(notices[0]!.returnPath).toBe('');
    expect(notices[0]!.raw.toString('latin1')).toMatch(/Final-Recipient: rfc822; user@\[999\.1\.1\.1\]\r?\nAction: failed\r?\nStatus: 5\.0\.0\r?\nDiagnostic-Code: smtp; 501 domain literals not allowed/);
    expect(notices[0]!.raw.toString('latin1')).toContain('Content-Type: text/rfc822-headers'); // RET=HDRS honoured by us
    // Exim never saw a DSN option nor an ESMTP parameter
    expect(ex.mainlog()).not.toMatch(/malformed address: .*may not follow/);
    // nothing is offered again
    await runJobs({ config, spool, env: process.env, force: true });
    await ex.runQueue();
    expect(readMaildir(ex.maildir('other')).length).toBe(seen.size + 2);
  });

  test('BSMTP via -bS: one recipient of a transaction refused (Exim abandons the whole transaction at its RCPT): only it fails, the others get the message once', async () => {
    const [a, b] = plainCorpus(26).slice(24);
    const seenOther = new Set(readMaildir(ex.maildir('other')).map((m) => m.path));
    const seenUser = new Set(readMaildir(ex.maildir('user')).map((m) => m.path));
    const before = (await listFailed(spool)).length;
    const payload = [
      'MAIL FROM:<first@corpus.test>',
      'RCPT TO:<other@maildir.test>',
      'DATA', stuff(a!) + '.',
      'MAIL FROM:<sender@maildir.test>',
      'RCPT TO:<other@maildir.test>',
      'RCPT TO:<user@[999.1.1.1]>', // Exim -bS: 501 domain literals not allowed, the batch abandoned
      'RCPT TO:<user@maildir.test>',
      'DATA', stuff(b!) + '.',
      '',
    ].join('\n');
    await receive({ command: 'rsmtp' }, payload);
    await runJobs({ config, spool, env: process.env, log: (l) => log.push(l) });
    await ex.runQueue();
    const other = readMaildir(ex.maildir('other')).filter((m) => !seenOther.has(m.path));
    const user = readMaildir(ex.maildir('user')).filter((m) => !seenUser.has(m.path));
    expect(other.filter((m) => m.body.equals(bodyOf(a!)))).toHaveLength(1);
    expect(other.filter((m) => m.body.equals(bodyOf(b!))).map((m) => m.returnPath)).toEqual(['sender@maildir.test']);
    expect(user.filter((m) => m.body.equals(bodyOf(b!)))).toHaveLength(1);
    // the job failed for the refused recipient alone, its sender told of that one only
    const failed = await listFailed(spool);
    expect(failed).toHaveLength(before + 1);
    expect(failed.at(-1)!.reason).toMatch(/^<user@\[999\.1\.1\.1\]>: smtp; 501 domain literals not allowed$/);
    const notices = readMaildir(ex.maildir('sender')).filter((m) => m.raw.toString('latin1').includes(failed.at(-1)!.id));
    expect(notices).toHaveLength(1);
    expect(notices[0]!.raw.toString('latin1')).not.toMatch(/Final-Recipient: rfc822; (other|user)@maildir\.test/);
  });
  test('rmail job with one malformed recipient among several: the others get the message once, the sender one notice (ours, not Exim\'s too)', async () => {
    const [a] = plainCorpus(28).slice(27);
    const seenOther = new Set(readMaildir(ex.maildir('other')).map((m) => m.path));
    const seenUser = new Set(readMaildir(ex.maildir('user')).map((m) => m.path));
    const seenSender = new Set(readMaildir(ex.maildir('sender')).map((m) => m.path));
    const before = (await listFailed(spool)).length;
    // Exim refuses the whole message for one recipient it cannot parse ("domain missing or
    // malformed") and, unless told -oep, mails its own error to the sender as well
    const id = await receive({ command: 'rmail', args: ['user@maildir.test', 'bad@@x.test', 'other@maildir.test'] }, Buffer.concat([Buffer.from('From sender@maildir.test  Sun Nov 22 04:10:00 2026\n'), a!]));
    const s = await runJobs({ config, spool, env: process.env, log: (l) => log.push(l) });
    expect(s, log.join('\n')).toEqual({ done: 0, retry: 0, failed: 1, skipped: 0 });
    await ex.runQueue();
    const fresh = (box: string, seen: Set<string>) => readMaildir(ex.maildir(box)).filter((m) => !seen.has(m.path));
    expect(fresh('user', seenUser).filter((m) => m.body.equals(bodyOf(a!))).map((m) => m.returnPath)).toEqual(['sender@maildir.test']);
    expect(fresh('other', seenOther).filter((m) => m.body.equals(bodyOf(a!))).map((m) => m.returnPath)).toEqual(['sender@maildir.test']);
    const failed = await listFailed(spool);
    expect(failed).toHaveLength(before + 1);
    expect(failed.at(-1)!.id).toBe(id);
    expect(failed.at(-1)!.reason).toMatch(/^<bad@@x\.test>: .*bad recipient address "bad@@x\.test": domain missing or malformed/);
    // one notice, ours, naming the bad recipient only; nothing from Exim itself
    const got = fresh('sender', seenSender);
    expect(got.map((m) => m.raw.toString('latin1').includes(id))).toEqual([true]);
    const notice = got[0]!.raw.toString('latin1');
    expect(notice).toMatch(/Final-Recipient: rfc822; bad@@x\.test\r?\nAction: failed\r?\nStatus: 5\.1\.3/);
    expect(notice).not.toMatch(/Final-Recipient: rfc822; (other|user)@maildir\.test/);
    // nothing is offered again
    await runJobs({ config, spool, env: process.env, force: true });
    await ex.runQueue();
    expect(fresh('user', seenUser)).toHaveLength(1);
  });
  test('a refused recipient whose NOTIFY excludes FAILURE gets no notice (RFC 3461 4.1); one that asked for it gets one, with its ORCPT', async () => {
    const [a] = plainCorpus(30).slice(29);
    const seenSender = new Set(readMaildir(ex.maildir('sender')).map((m) => m.path));
    const payload = [
      'MAIL FROM:<sender@maildir.test> ENVID=n1',
      'RCPT TO:<user@[999.1.1.1]> NOTIFY=NEVER', // Exim -bS: 501 domain literals not allowed
      'DATA', stuff(a!) + '.',
      'MAIL FROM:<sender@maildir.test> ENVID=n2',
      'RCPT TO:<other@[999.1.1.2]> NOTIFY=SUCCESS,DELAY',
      'DATA', stuff(a!) + '.',
      'MAIL FROM:<sender@maildir.test> ENVID=n3',
      'RCPT TO:<third@[999.1.1.3]> NOTIFY=FAILURE ORCPT=rfc822;third+2Bx@corpus.test',
      'DATA', stuff(a!) + '.',
      '',
    ].join('\n');
    const id = await receive({ command: 'rsmtp', sender: 'sender@maildir.test' }, payload);
    await runJobs({ config, spool, env: process.env, log: (l) => log.push(l) });
    await ex.runQueue();
    expect((await listFailed(spool)).find((f) => f.id === id), log.join('\n')).toBeDefined();
    const notices = readMaildir(ex.maildir('sender')).filter((m) => !seenSender.has(m.path) && m.raw.toString('latin1').includes(id));
    expect(notices.map((m) => /Final-Recipient: rfc822; (\S+)/.exec(m.raw.toString('latin1'))?.[1])).toEqual(['third@[999.1.1.3]']);
    expect(notices[0]!.raw.toString('latin1')).toMatch(/Original-Recipient: rfc822; third\+x@corpus\.test\r?\nFinal-Recipient/);
    // nothing owed later either
    await runJobs({ config, spool, env: process.env, force: true });
    await ex.runQueue();
    expect(readMaildir(ex.maildir('sender')).filter((m) => !seenSender.has(m.path))).toHaveLength(1);
  });
});
