// A real Postfix (Debian's package, a private instance) hands mail to mailbag through
// the two pipe transports an admin would write: Debian's uux line with only the program
// path changed (mailbag-uux), and a direct `mailbag enqueue`. Mail submitted through
// Postfix's sendmail must land in our spool with exactly its envelope and its bytes;
// bounces (null sender) become BSMTP jobs; an unknown peer makes Postfix defer (4.3.5)
// and an oversize message bounces (5.3.4), so no mail is ever lost on our account.

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { corpusFiles, haveCorpus } from '../helpers/corpus.js';
import { parseMessage, waitMaildir } from '../helpers/maildir.js';
import { mailbagBin, mailbagUuxBin, removeTempDir } from '../helpers/mta-common.js';
import { jobIds, makeMailbagSite, newJobs, passesUnchanged, rawFields } from '../helpers/mta-site.js';
import { need } from '../helpers/need.js';
import { havePostfix, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { readJobs, splitBsmtp, splitRmail } from '../helpers/spool-jobs.js';

const ready =
  havePostfix() &&
  haveCorpus() &&
  need('the built front doors', [mailbagBin, mailbagUuxBin], 'run npm run build (npm test does it first)');

/** Headers Postfix's cleanup drops by default (message_drop_headers in 3.7). */
const DROPPED = new Set(['bcc', 'content-length', 'resent-bcc', 'return-path']);

/**
 * What Postfix hands a pipe transport for a message submitted with its sendmail: one
 * Received field of its own in front, the default-dropped fields gone, every other
 * byte as submitted.
 */
function expectThroughPostfix(delivered: Buffer, original: Buffer): void {
  const got = rawFields(delivered);
  expect(got[0]).toMatch(/^Received: by postfix\.mailbag\.test \(Postfix, from userid 0\)\n/);
  const want = rawFields(original).filter((f) => !DROPPED.has(f.slice(0, f.indexOf(':')).toLowerCase()));
  expect(got.slice(1)).toEqual(want);
  expect(parseMessage(delivered).body.equals(parseMessage(original).body)).toBe(true);
}

/**
 * Corpus messages whose bytes Postfix passes unchanged (apart from the header fields
 * above): LF line ends, lines under line_length_limit, the fields cleanup would
 * otherwise add already present, a final newline.
 */
function plainCorpusMessages(count: number): Buffer[] {
  const files = corpusFiles('bulk');
  const out: Buffer[] = [];
  const step = Math.floor(files.length / (count * 4));
  for (let i = 0; i < files.length && out.length < count; i += step) {
    const m = readFileSync(files[i]!);
    if (passesUnchanged(m, /^resent-/m)) out.push(m);
  }
  return out;
}

describe.skipIf(!ready)('real Postfix → mailbag pipe transports', () => {
  let pf: PostfixInstance;
  let dir: string;
  let spool: string;

  async function submit(args: string[], message: Buffer | string): Promise<void> {
    const r = await pf.sendmail(args, message);
    expect(r.code, r.stderr).toBe(0);
  }

  beforeAll(async () => {
    const site = await makeMailbagSite('postfix-int');
    ({ dir, spool } = site);
    const { user, config, small } = site;
    pf = await startPostfix({
      environment: { MAILBAG_CONFIG: config },
      masterCf: [
        // Debian's master.cf uucp line with the program path changed; null_sender= so a
        // bounce reaches mailbag-uux as an empty -a (it then makes a BSMTP job).
        `mailbag-uux unix - n n - - pipe flags=Fqhu null_sender= user=${user.name} argv=${mailbagUuxBin} -r -n -z -a$sender - $nexthop!rmail ($recipient)`,
        // direct: no F (enqueue writes its own From_ line; a Postfix one would become
        // part of the message), q to quote odd local parts, no case folding
        `mailbag unix - n n - - pipe flags=q null_sender= user=${user.name} argv=${mailbagBin} enqueue $nexthop -f $sender -- $recipient`,
        `mailbag-small unix - n n - - pipe flags=q null_sender= user=${user.name} argv=${mailbagBin} enqueue --config ${small} $nexthop -f $sender -- $recipient`,
        // the direct line, killed by SIGKILL in the middle of writing its job (lib/spool/fault.ts)
        `mailbag-crash unix - n n - - pipe flags=q null_sender= user=${user.name} argv=/usr/bin/env MAILBAG_FAULT=mid-write ${mailbagBin} enqueue $nexthop -f $sender -- $recipient`,
      ],
      transports: {
        'uux.test': 'mailbag-uux:hub',
        'uux2.test': 'mailbag-uux:hub',
        'direct.test': 'mailbag:hub',
        'unknown.test': 'mailbag:nosuchpeer',
        'small.test': 'mailbag-small:hub',
        'crash.test': 'mailbag-crash:hub',
      },
      mailboxes: ['user'],
    });
  });

  afterAll(async () => {
    await pf?.stop();
    if (dir) removeTempDir(dir);
  });

  test('uux transport (flags=Fqhu): several recipients, exact envelope, message bytes intact', async () => {
    const messages = plainCorpusMessages(4);
    expect(messages.length).toBe(4);
    for (const [n, message] of messages.entries()) {
      const before = await jobIds(spool, 'hub');
      const rcpts = [`Rcpt.One${n}@uux.test`, `rcpt-two${n}@UUX2.test`, `three${n}@uux.test`];
      await submit(['-f', `Sender.${n}@Example.ORG`, '--', ...rcpts], message);
      await pf.waitQueueEmpty();
      const jobs = await newJobs(spool, 'hub', before);
      expect(jobs).toHaveLength(1); // one delivery for the three: same transport and nexthop
      const job = jobs[0]!;
      // flags=hu fold recipients to lower case (the sender is left alone)
      const want = rcpts.map((r) => r.toLowerCase()).sort();
      expect(job.header).toMatchObject({ to: 'hub', from: 'home', command: 'rmail', sender: `Sender.${n}@Example.ORG` });
      expect([...job.header.recipients].sort()).toEqual(want);
      expect([...job.header.args].sort()).toEqual(want);
      const { fromLine, message: delivered } = splitRmail(job.payload);
      expect(fromLine).toMatch(new RegExp(`^From Sender\\.${n}@Example\\.ORG  ?\\w{3} \\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d \\d{4}`));
      // Postfix's own From_ line (flag F) was taken off, not kept as message text
      expect(delivered.subarray(0, 5).toString()).not.toBe('From ');
      expectThroughPostfix(delivered, message);
    }
  });

  test('direct enqueue transport: several recipients with their case, exact envelope and bytes', async () => {
    const [message] = plainCorpusMessages(5).slice(4);
    const before = await jobIds(spool, 'hub');
    const rcpts = ['Mixed.Case@direct.test', 'o.brien+tag@direct.test', 'x@direct.test'];
    await submit(['-f', 'Owner-List@Lists.Example.NET', '--', ...rcpts], message!);
    await pf.waitQueueEmpty();
    const jobs = await newJobs(spool, 'hub', before);
    expect(jobs).toHaveLength(1);
    const job = jobs[0]!;
    expect(job.header).toMatchObject({ to: 'hub', command: 'rmail', sender: 'Owner-List@Lists.Example.NET' });
    expect([...job.header.recipients].sort()).toEqual([...rcpts].sort());
    const { fromLine, message: delivered } = splitRmail(job.payload);
    expect(fromLine.startsWith('From Owner-List@Lists.Example.NET ')).toBe(true);
    expectThroughPostfix(delivered, message!);
  });

  test('a null sender through the direct transport becomes a BSMTP job with MAIL FROM:<>', async () => {
    const [message] = plainCorpusMessages(6).slice(5);
    const before = await jobIds(spool, 'hub');
    await submit(['-f', '<>', '--', 'dan@direct.test', 'eve@direct.test'], message!);
    await pf.waitQueueEmpty();
    const jobs = await newJobs(spool, 'hub', before);
    expect(jobs).toHaveLength(1);
    const job = jobs[0]!;
    expect(job.header).toMatchObject({ to: 'hub', command: 'rsmtp', args: [], sender: '' });
    expect([...job.header.recipients].sort()).toEqual(['dan@direct.test', 'eve@direct.test']);
    expect(job.payload.subarray(0, 13).toString()).toBe('MAIL FROM:<>\n');
    const tx = splitBsmtp(job.payload);
    expect(tx).toHaveLength(1);
    expect(tx[0]!.mailFrom).toBe('');
    expect(tx[0]!.mailParams).toBe('');
    expect([...tx[0]!.rcptTo].sort()).toEqual(['dan@direct.test', 'eve@direct.test']);
    expectThroughPostfix(tx[0]!.message, message!);
  });

  test('real bounces (Postfix-generated, sender <>) reach both transports as BSMTP jobs', async () => {
    const before = await jobIds(spool, 'hub');
    const original = 'From: erin@direct.test\nTo: nobody@maildir.test\nSubject: to a mailbox that does not exist\n\nhello\n';
    await submit(['-f', 'erin@direct.test', '--', 'nobody@maildir.test'], original);
    await submit(['-f', 'frank@uux.test', '--', 'nobody@maildir.test'], original.replace('erin@direct', 'frank@uux'));
    await pf.waitLog(/to=<erin@direct\.test>.*relay=mailbag.*status=sent/);
    await pf.waitLog(/to=<frank@uux\.test>.*relay=mailbag-uux.*status=sent/);
    await pf.waitQueueEmpty();
    const jobs = await newJobs(spool, 'hub', before);
    expect(jobs).toHaveLength(2);
    for (const rcpt of ['erin@direct.test', 'frank@uux.test']) {
      const job = jobs.find((j) => j.header.recipients.includes(rcpt));
      expect(job, `a job for the bounce to ${rcpt}`).toBeDefined();
      expect(job!.header).toMatchObject({ command: 'rsmtp', sender: '', recipients: [rcpt] });
      const tx = splitBsmtp(job!.payload);
      expect(tx.map((t) => [t.mailFrom, t.rcptTo])).toEqual([['', [rcpt]]]);
      const bounce = parseMessage(tx[0]!.message);
      expect(bounce.headers.find(([n]) => n.toLowerCase() === 'content-type')?.[1]).toMatch(/multipart\/report; report-type=delivery-status/);
      expect(tx[0]!.message.toString('latin1')).toMatch(/Final-Recipient: rfc822; nobody@maildir\.test/);
    }
  });

  test('an unknown peer makes Postfix defer (4.3.5): the mail stays queued, no job is written', async () => {
    await submit(['-f', 'grace@example.org', '--', 'someone@unknown.test'], 'Subject: to a peer nobody configured\n\nbody\n');
    const line = await pf.waitLog(/to=<someone@unknown\.test>.*status=deferred/);
    expect(line).toMatch(/dsn=4\.3\.5/);
    expect(line).toMatch(/nosuchpeer/);
    expect(pf.queued().length).toBe(1);
    expect(await readJobs(spool, 'nosuchpeer')).toEqual([]);
    await pf.deleteQueued();
  });

  test('an oversize message bounces (5.3.4) back to its sender, and no job is written', async () => {
    const before = await jobIds(spool, 'hub');
    const big = `From: user@maildir.test\nSubject: too big for this peer\n\n${'0123456789abcdef'.repeat(64).concat('\n').repeat(12)}`;
    await submit(['-f', 'user@maildir.test', '--', 'big@small.test'], big);
    const line = await pf.waitLog(/to=<big@small\.test>.*status=bounced/);
    expect(line).toMatch(/dsn=5\.3\.4/);
    const [bounce] = await waitMaildir(pf.maildir('user'), 1);
    expect(bounce!.returnPath).toBe('');
    expect(bounce!.raw.toString('latin1')).toMatch(/Status: 5\.3\.4/);
    await pf.waitQueueEmpty();
    expect(await newJobs(spool, 'hub', before)).toEqual([]);
  });

  test('mailbag killed by a signal (a crash) makes Postfix defer: the mail stays queued, no job, no bounce', async () => {
    const before = await jobIds(spool, 'hub');
    await submit(['-f', 'user@maildir.test', '--', 'someone@crash.test'], 'From: user@maildir.test\nSubject: crash\n\nbody\n');
    const line = await pf.waitLog(/to=<someone@crash\.test>.*status=(deferred|bounced)/);
    expect(line).toMatch(/status=deferred/);
    expect(line).toMatch(/signal 9/);
    expect(pf.queued().length).toBe(1);
    expect(await newJobs(spool, 'hub', before)).toEqual([]);
    await pf.deleteQueued();
  });
});
