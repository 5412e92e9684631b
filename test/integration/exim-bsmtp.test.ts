// A real Exim 4 (Debian's exim4-daemon-light binary, unpacked, private -C config) hands
// mail to mailbag through the transport Debian's README recommends for UUCP: a pipe
// with use_bsmtp (batch_max > 1) feeding `mailbag enqueue PEER --bsmtp`. The jobs must
// hold exactly the envelope Exim wrote (several recipients in one batch, the null
// sender of a bounce) and the message bytes; an unknown peer defers (75, 4.3.5) and an
// oversize message fails back to its sender (5.3.4), so no mail is lost on our account.

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { corpusFiles, haveCorpus } from '../helpers/corpus.js';
import { haveExim, startExim, type EximInstance } from '../helpers/exim.js';
import { parseMessage, waitMaildir } from '../helpers/maildir.js';
import { mailbagBin, mailbagUuxBin, removeTempDir } from '../helpers/mta-common.js';
import { jobIds, makeMailbagSite, newJobs, passesUnchanged, rawFields } from '../helpers/mta-site.js';
import { need } from '../helpers/need.js';
import { readJobs, splitBsmtp, splitRmail } from '../helpers/spool-jobs.js';

const ready =
  haveExim() && haveCorpus() && need('the built front doors', [mailbagBin, mailbagUuxBin], 'run npm run build (npm test does it first)');

/** Fields Exim removes on receipt (return_path_remove, envelope_to_remove, delivery_date_remove). */
const REMOVED = new Set(['return-path', 'envelope-to', 'delivery-date']);

/**
 * Exim puts one Received field in front and removes the fields above; every other byte
 * stays. A pipe transport without use_bsmtp also writes its default message_suffix,
 * "\n", after the message: `suffix` says so.
 */
function expectThroughExim(delivered: Buffer, original: Buffer, suffix = ''): void {
  const got = rawFields(delivered);
  expect(got[0]).toMatch(/^Received: from root by exim\.mailbag\.test with local \(Exim 4\.\d+\)\n/);
  const want = rawFields(original).filter((f) => !REMOVED.has(f.slice(0, f.indexOf(':')).toLowerCase()));
  expect(got.slice(1)).toEqual(want);
  expect(parseMessage(delivered).body.equals(Buffer.concat([parseMessage(original).body, Buffer.from(suffix)]))).toBe(true);
}

/** Corpus messages Exim passes unchanged apart from the fields above (see postfix-enqueue). */
function plainCorpusMessages(count: number, skip = 0): Buffer[] {
  const files = corpusFiles('bulk');
  const out: Buffer[] = [];
  const step = Math.floor(files.length / ((count + skip) * 4)) + 1;
  for (let i = 7; i < files.length && out.length < count + skip; i += step) {
    const m = readFileSync(files[i]!);
    if (passesUnchanged(m, /^(resent-|sender:)/m)) out.push(m);
  }
  return out.slice(skip);
}

describe.skipIf(!ready)('real Exim → mailbag enqueue --bsmtp (pipe, use_bsmtp)', () => {
  let ex: EximInstance;
  let dir: string;
  let spool: string;

  beforeAll(async () => {
    const site = await makeMailbagSite('exim-int');
    ({ dir, spool } = site);
    const { user, config, small } = site;
    const pipe = (name: string, command: string, environment = `MAILBAG_CONFIG=${config}`) =>
      [
        `${name}:`,
        '  driver = pipe',
        `  command = ${command}`,
        '  use_bsmtp',
        '  batch_max = 100',
        `  user = ${user.name}`,
        `  group = ${user.name}`,
        `  environment = ${environment}`,
        '  temp_errors = 75',
        '  freeze_signal',
        '  freeze_exec_fail',
        '  timeout_defer',
        '  return_fail_output',
        '  log_fail_output',
        '  log_defer_output',
        '',
      ].join('\n');
    ex = await startExim({
      routers: [
        'to_mailbag:',
        '  driver = manualroute',
        '  domains = uucp.test : uucp2.test : unknown.test',
        '  route_data = ${if eq{$domain}{unknown.test}{nosuchpeer}{hub}}',
        '  transport = mailbag_bsmtp',
        'to_uux_rmail:',
        '  driver = manualroute',
        '  domains = uux-rmail.test',
        '  route_data = hub',
        '  transport = mailbag_uux_rmail',
        'to_uux_rsmtp:',
        '  driver = manualroute',
        '  domains = uux-rsmtp.test',
        '  route_data = hub',
        '  transport = mailbag_uux_rsmtp',
        'to_small:',
        '  driver = manualroute',
        '  domains = small.test',
        '  route_data = hub',
        '  transport = mailbag_small',
        'to_crash:',
        '  driver = manualroute',
        '  domains = crash.test',
        '  route_data = hub',
        '  transport = mailbag_crash',
        '',
      ].join('\n'),
      transports:
        pipe('mailbag_bsmtp', `${mailbagBin} enqueue $host --bsmtp`) +
        pipe('mailbag_uux_rsmtp', `${mailbagUuxBin} - -r $host!rsmtp`) +
        // exim4-base README.Debian's rmail line (no use_bsmtp: the default message_prefix
        // From_ line, one argument per address) with the program path changed and without
        // -a$sender_address: Exim 4.96 refuses it ("Tainted arg 3 for … transport
        // command"), so the sender comes from the From_ line, as with real rmail
        pipe('mailbag_uux_rmail', `${mailbagUuxBin} - -r -gC $host!rmail $pipe_addresses`).replace('  use_bsmtp\n  batch_max = 100\n', '  batch_max = 20\n') +
        pipe('mailbag_small', `${mailbagBin} enqueue --config ${small} $host --bsmtp`) +
        // killed by SIGKILL in the middle of writing its job (lib/spool/fault.ts), as a
        // crash or the OOM killer would stop it
        pipe('mailbag_crash', `${mailbagBin} enqueue $host --bsmtp`, `MAILBAG_CONFIG=${config}:MAILBAG_FAULT=mid-write`),
      mailboxes: ['user'],
    });
  });

  afterAll(() => {
    ex?.stop();
    if (dir) removeTempDir(dir);
  });

  test('several recipients in one batch: one job with exactly that envelope and the message bytes', async () => {
    const messages = plainCorpusMessages(3);
    expect(messages.length).toBe(3);
    for (const [n, message] of messages.entries()) {
      const before = await jobIds(spool, 'hub');
      const rcpts = [`one${n}@uucp.test`, `Two.Mixed${n}@uucp.test`, `three+x${n}@uucp2.test`];
      const r = await ex.submit(`list-owner${n}@example.org`, rcpts, message);
      expect(r.code, r.stderr).toBe(0);
      await ex.waitLog(new RegExp(`[-=]> .*three\\+x${n}@uucp2\\.test.* T=mailbag_bsmtp`));
      const jobs = await newJobs(spool, 'hub', before);
      expect(jobs).toHaveLength(1);
      const job = jobs[0]!;
      expect(job.header).toMatchObject({ to: 'hub', command: 'rsmtp', args: [], sender: `list-owner${n}@example.org` });
      expect([...job.header.recipients].sort()).toEqual([...rcpts].sort());
      const tx = splitBsmtp(job.payload);
      expect(tx).toHaveLength(1);
      expect(tx[0]!.mailFrom).toBe(`list-owner${n}@example.org`);
      expect(tx[0]!.mailParams).toBe('');
      expect([...tx[0]!.rcptTo].sort()).toEqual([...rcpts].sort());
      expectThroughExim(tx[0]!.message, message);
    }
    expect(await ex.queue()).toEqual([]);
  });

  test('a <> sender (submitted with -f <>) becomes a job with MAIL FROM:<>', async () => {
    const [message] = plainCorpusMessages(1, 3);
    const before = await jobIds(spool, 'hub');
    const r = await ex.submit('<>', ['a@uucp.test', 'b@uucp.test'], message!);
    expect(r.code, r.stderr).toBe(0);
    await ex.waitLog(/[-=]> b@uucp\.test .*P=<> .*T=mailbag_bsmtp/);
    const jobs = await newJobs(spool, 'hub', before);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.header).toMatchObject({ command: 'rsmtp', sender: '' });
    expect([...jobs[0]!.header.recipients].sort()).toEqual(['a@uucp.test', 'b@uucp.test']);
    expect(jobs[0]!.payload.subarray(0, 13).toString()).toBe('MAIL FROM:<>\n');
    const tx = splitBsmtp(jobs[0]!.payload);
    expect(tx.map((t) => [t.mailFrom, [...t.rcptTo].sort()])).toEqual([['', ['a@uucp.test', 'b@uucp.test']]]);
    expectThroughExim(tx[0]!.message, message!);
  });

  test('a real Exim bounce (sender <>) reaches the peer as a BSMTP job', async () => {
    const before = await jobIds(spool, 'hub');
    const r = await ex.submit('heidi@uucp.test', ['nobody@maildir.test'], 'From: heidi@uucp.test\nSubject: to nobody\n\nhello\n');
    expect(r.code, r.stderr).toBe(0);
    await ex.waitLog(/[-=]> heidi@uucp\.test .*P=<> .*T=mailbag_bsmtp/);
    const jobs = await newJobs(spool, 'hub', before);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.header).toMatchObject({ command: 'rsmtp', sender: '', recipients: ['heidi@uucp.test'] });
    const tx = splitBsmtp(jobs[0]!.payload);
    expect(tx.map((t) => [t.mailFrom, t.rcptTo])).toEqual([['', ['heidi@uucp.test']]]);
    expect(tx[0]!.message.toString('latin1')).toMatch(/nobody@maildir\.test/);
    expect(tx[0]!.message.toString('latin1')).toMatch(/^X-Failed-Recipients: nobody@maildir\.test$/m);
  });

  test('a BSMTP batch fed to Exim -bS comes out as one job per transaction with its envelope', async () => {
    const before = await jobIds(spool, 'hub');
    const stream = [
      'MAIL FROM:<>',
      'RCPT TO:<ivan@uucp.test>',
      'RCPT TO:<judy@uucp.test>',
      'DATA',
      'From: MAILER-DAEMON@elsewhere.example',
      'Subject: a batch bounce',
      '',
      '..a line that began with a dot',
      '.',
      'MAIL FROM:<k@example.org>',
      'RCPT TO:<mallory@uucp2.test>',
      'DATA',
      'Subject: second',
      '',
      'x',
      '.',
      '',
    ].join('\n');
    const r = await ex.submitBsmtp(stream);
    expect(r.code, `${r.stdout.toString()}${r.stderr}`).toBe(0);
    await ex.waitLog(/[-=]> mallory@uucp2\.test .*T=mailbag_bsmtp/);
    const jobs = await newJobs(spool, 'hub', before);
    expect(jobs).toHaveLength(2);
    const envelopes = jobs.map((j) => [j.header.sender, [...j.header.recipients].sort()]).sort();
    expect(envelopes).toEqual([
      ['', ['ivan@uucp.test', 'judy@uucp.test']],
      ['k@example.org', ['mallory@uucp2.test']],
    ]);
    const bounce = jobs.find((j) => j.header.sender === '')!;
    const [tx] = splitBsmtp(bounce.payload);
    expect(parseMessage(tx!.message).body.toString()).toBe('.a line that began with a dot\n');
  });

  test('Exim → mailbag-uux - -r PEER!rsmtp (use_bsmtp): one BSMTP job with the batch\'s envelope', async () => {
    const [message] = plainCorpusMessages(1, 4);
    const before = await jobIds(spool, 'hub');
    const rcpts = ['nina@uux-rsmtp.test', 'Oscar@uux-rsmtp.test'];
    const r = await ex.submit('peggy@example.org', rcpts, message!);
    expect(r.code, r.stderr).toBe(0);
    await ex.waitLog(/[-=]> [^ ]*@uux-rsmtp\.test .*T=mailbag_uux_rsmtp/);
    const jobs = await newJobs(spool, 'hub', before);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.header).toMatchObject({ command: 'rsmtp', sender: 'peggy@example.org' });
    expect([...jobs[0]!.header.recipients].sort()).toEqual([...rcpts].sort());
    const tx = splitBsmtp(jobs[0]!.payload);
    expect(tx.map((t) => [t.mailFrom, [...t.rcptTo].sort()])).toEqual([['peggy@example.org', [...rcpts].sort()]]);
    expectThroughExim(tx[0]!.message, message!);
  });

  test('Exim → mailbag-uux with README.Debian\'s rmail line: an rmail job, the sender from Exim\'s From_ prefix', async () => {
    const [message] = plainCorpusMessages(1, 5);
    const before = await jobIds(spool, 'hub');
    const rcpts = ['quentin@uux-rmail.test', 'rupert@uux-rmail.test'];
    const r = await ex.submit('sybil@example.org', rcpts, message!);
    expect(r.code, r.stderr).toBe(0);
    await ex.waitLog(/[-=]> [^ ]*@uux-rmail\.test .*T=mailbag_uux_rmail/);
    const jobs = await newJobs(spool, 'hub', before);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.header).toMatchObject({ command: 'rmail', sender: 'sybil@example.org' });
    expect([...jobs[0]!.header.recipients].sort()).toEqual(rcpts);
    const { fromLine, message: delivered } = splitRmail(jobs[0]!.payload);
    expect(fromLine.startsWith('From sybil@example.org ')).toBe(true);
    expectThroughExim(delivered, message!, '\n');
  });

  test('an unknown peer defers (75, 4.3.5): the message stays in Exim\'s queue, no job', async () => {
    const queuedBefore = new Set(await ex.queue());
    const r = await ex.submit('grace@example.org', ['someone@unknown.test'], 'Subject: to a peer nobody configured\n\nbody\n');
    expect(r.code, r.stderr).toBe(0);
    const line = await ex.waitLog(/== someone@unknown\.test .*T=mailbag_bsmtp defer/);
    expect(line).toMatch(/returned 75/);
    expect(ex.mainlog()).toMatch(/<someone@unknown\.test>: mailbag_bsmtp transport output: 4\.3\.5 .*nosuchpeer/);
    const stillQueued = (await ex.queue()).filter((id) => !queuedBefore.has(id));
    expect(stillQueued).toHaveLength(1);
    expect(await readJobs(spool, 'nosuchpeer')).toEqual([]);
    await ex.exim(['-Mrm', ...stillQueued]);
  });

  test('an oversize message fails (5.3.4) and bounces to its sender; no job', async () => {
    const before = await jobIds(spool, 'hub');
    const big = `From: user@maildir.test\nSubject: too big for this peer\n\n${'0123456789abcdef'.repeat(64).concat('\n').repeat(12)}`;
    const r = await ex.submit('user@maildir.test', ['big@small.test'], big);
    expect(r.code, r.stderr).toBe(0);
    const line = await ex.waitLog(/\*\* big@small\.test .*T=mailbag_small/);
    expect(line).toMatch(/returned 65/);
    expect(ex.mainlog()).toMatch(/<big@small\.test>: mailbag_small transport output: 5\.3\.4 /);
    await ex.runQueue();
    const [bounce] = await waitMaildir(ex.maildir('user'), 1);
    expect(bounce!.returnPath).toBe('');
    expect(bounce!.raw.toString('latin1')).toMatch(/5\.3\.4/);
    expect(await newJobs(spool, 'hub', before)).toEqual([]);
  });

  test('mailbag killed by a signal (a crash): Exim keeps the message (frozen), no bounce, no job', async () => {
    const before = await jobIds(spool, 'hub');
    const queuedBefore = new Set(await ex.queue());
    const r = await ex.submit('crash-sender@maildir.test', ['someone@crash.test'], 'From: crash-sender@maildir.test\nSubject: crash\n\nbody\n');
    expect(r.code, r.stderr).toBe(0);
    const line = await ex.waitLog(/someone@crash\.test .*T=mailbag_crash/);
    // `**` is a failure: Exim bounces the message to its sender
    expect(line).not.toMatch(/\*\* someone@crash\.test/);
    expect(line).toMatch(/signal 9/);
    expect(ex.mainlog()).toMatch(/Frozen/);
    const kept = (await ex.queue()).filter((id) => !queuedBefore.has(id));
    expect(kept).toHaveLength(1);
    expect(ex.mainlog()).not.toMatch(/<= <> .*\n.*crash-sender@maildir\.test/);
    expect(await newJobs(spool, 'hub', before)).toEqual([]);
    await ex.exim(['-Mrm', ...kept]);
  });
});
