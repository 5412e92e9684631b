// The corpus's odd messages (all of them), a sample of the large ones and a few made
// here (bare CR, CR "." LF, NUL, no final newline, "From " and "." at line starts) all
// the way through the real parts a user has: a real Postfix's pipe transports
// (`mailbag enqueue`, rmail jobs; Debian's uux line with mailbag-uux; the null sender,
// BSMTP jobs) and `mailbag enqueue --bsmtp` with DSN parameters → `mailbag sync` over a
// real OpenSSH sshd on 127.0.0.1 (forced `mailbag serve`) → delivery by the hub's
// runner through sendmail into a real Postfix and a real Exim, and by SMTP into that
// Postfix's smtpd → their Maildirs.
// What arrives must be what went in: the envelope sender (`<>` included), every
// recipient once, the header fields in order and the body bytes, up to the
// transformations docs/formats.md ("End to end") lists: Received, Return-Path and the
// delivery fields added, the fields an MTA drops, and line ends normalised.

import { chownSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { corpusFiles, haveCorpus } from '../helpers/corpus.js';
import { eximBinary, haveExim, startExim, type EximInstance } from '../helpers/exim.js';
import { parseMessage, readMaildir, waitMaildir, type MaildirMessage } from '../helpers/maildir.js';
import { makeOwnedDir, mailbagBin, mailbagUuxBin, removeTempDir, repoRoot, run, type RunResult } from '../helpers/mta-common.js';
import { makeMailbagSite, rawFields, type MailbagSite } from '../helpers/mta-site.js';
import { need } from '../helpers/need.js';
import { havePostfix, POSTFIX_SENDMAIL, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { makeKey } from '../helpers/ssh-keys.js';
import { haveSshd, serveCommand, startSshd, type Sshd } from '../helpers/sshd.js';
import { makeUserSpool } from '../helpers/spool-jobs.js';

/** The installed entry points (the package's bins), as a user's MTA runs them */
const mailbagCjs = join(repoRoot, 'dist/bin/mailbag.cjs');
const mailbagUuxCjs = join(repoRoot, 'dist/bin/mailbag-uux.cjs');

const ready =
  havePostfix() &&
  haveExim() &&
  haveSshd() &&
  haveCorpus() &&
  need('the built front doors', [mailbagBin, mailbagUuxBin, mailbagCjs, mailbagUuxCjs], 'run npm run build (npm test does it first)');

/** One message as submitted, and where it should arrive. */
interface Case {
  name: string;
  raw: Buffer;
  /** '' = the null sender */
  sender: string;
}

/** Messages made here for what the corpus lacks. */
const MADE: Array<[string, string]> = [
  ['made.bare-cr', 'From: a@x.test\nSubject: bare CR\nMessage-ID: <bare-cr@x.test>\nDate: Sun, 22 Nov 2026 04:10:00 +0000\n\nline with a bare\rCR inside\nand\r.\nCR then a dot\n'],
  ['made.nul', 'From: a@x.test\nSubject: NUL\nMessage-ID: <nul@x.test>\nDate: Sun, 22 Nov 2026 04:10:00 +0000\n\nbefore\0after\n\0\n'],
  ['made.no-final-newline', 'From: a@x.test\nSubject: no final newline\nMessage-ID: <nofinal@x.test>\nDate: Sun, 22 Nov 2026 04:10:00 +0000\n\nlast line has no LF'],
  ['made.dots-and-from', 'From: a@x.test\nSubject: dots\nMessage-ID: <dots@x.test>\nDate: Sun, 22 Nov 2026 04:10:00 +0000\n\n.\n..\n.hidden\nFrom the start\n>From quoted\n. \n'],
  ['made.crlf-mixed', 'From: a@x.test\r\nSubject: mixed line ends\r\nMessage-ID: <mixed@x.test>\r\nDate: Sun, 22 Nov 2026 04:10:00 +0000\r\n\r\ncrlf\r\nlf\ncr cr lf\r\r\n.\r\nend\r\n'],
  ['made.huge-header', `From: a@x.test\nSubject: huge header\nMessage-ID: <huge@x.test>\nDate: Sun, 22 Nov 2026 04:10:00 +0000\n${Array.from({ length: 1500 }, (_, i) => `X-Filler-${i}: ${'h'.repeat(90)}\n`).join('')}X-One-Field: ${Array.from({ length: 1200 }, (_, i) => `v${i}${'w'.repeat(90)}`).join('\n\t')}\n\nbody\n`],
  ['made.long-line', `From: a@x.test\nSubject: a 600 KB line\nMessage-ID: <long@x.test>\nDate: Sun, 22 Nov 2026 04:10:00 +0000\n\n${'0123456789'.repeat(60_000)}\nend\n`],
  ['made.no-header', '\njust a body, no header at all\n'],
  ['made.header-only', 'Subject: a header and nothing else\nMessage-ID: <header-only@x.test>'],
  ['made.empty-body', 'From: a@x.test\nSubject: empty body\nMessage-ID: <empty@x.test>\nDate: Sun, 22 Nov 2026 04:10:00 +0000\n\n'],
];

/** The way a message takes: through the sending site's Postfix or straight into a front door, and the far MTA. */
interface Path {
  front: boolean;
  far: 'postfix' | 'exim';
  /** an rmail job's message: its bytes reach the far MTA's sendmail as the front door took them */
  raw: boolean;
}

/** Is this header line a field (or a continuation of one)? */
const FIELD = /^([\x21-\x39\x3b-\x7e]+:|[ \t])/;

/**
 * The message as it must arrive (docs/formats.md, "End to end"): From_ lines at its start
 * taken off (Postfix's sendmail, mailbag's front doors); every run of CRs before an LF
 * removed; a bare CR a space for Postfix and a line end for Exim; a final LF added; a
 * header without its blank line ended where the first line that is not a field begins.
 */
function expected(raw: Buffer, path: Path): Buffer {
  let t = raw.toString('latin1');
  while (/^>?From /.test(t)) {
    const nl = t.indexOf('\n');
    t = nl < 0 ? '' : t.slice(nl + 1);
  }
  // Exim reads each CR of a run before LF but the last as a line end of its own
  t = path.far === 'exim' && path.raw ? t.replace(/\r+\n/g, (m) => '\n'.repeat(m.length - 1)) : t.replace(/\r+\n/g, '\n');
  t = t.replace(/\r+$/, '');
  if (path.front) t = t.replace(/\r/g, ' ');
  t = t.replace(/\r/g, path.far === 'exim' ? '\n' : ' ');
  if (t !== '' && !t.endsWith('\n')) t += '\n';
  const lines = t.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] === '') break;
    if (!FIELD.test(lines[i]!) || (i === 0 && /^[ \t]/.test(lines[i]!))) {
      lines.splice(i, 0, '');
      break;
    }
  }
  return Buffer.from(lines.join('\n'), 'latin1');
}

/** Postfix's header_size_limit (default): a longer header field is cut to it. */
const POSTFIX_HEADER_SIZE_LIMIT = 102_400;

/** Header fields an MTA on the way adds (the two sites' Received, the delivery fields). */
const ADDED = /^(received|return-path|delivered-to|x-original-to|envelope-to|delivery-date):/i;
/** Added by an MTA only when the message lacks them. */
const ADDED_WHEN_MISSING = ['message-id', 'date', 'from'];
/** Fields the sending Postfix's cleanup drops (message_drop_headers) and Exim removes on receipt. */
const DROPPED = /^(bcc|content-length|resent-bcc|return-path|envelope-to|delivery-date):/i;

/** The differences between what went in and what arrived; [] when none beyond the documented ones. */
function differences(c: Case, got: MaildirMessage, path: Path): string[] {
  const out: string[] = [];
  const wantRaw = expected(c.raw, path);
  const want = parseMessage(wantRaw);
  const arrived = parseMessage(got.raw);
  if (!arrived.body.equals(want.body)) {
    let i = 0;
    while (i < want.body.length && want.body[i] === arrived.body[i]) i++;
    out.push(`body differs at byte ${i} of ${want.body.length} (got ${arrived.body.length}): want ${JSON.stringify(want.body.subarray(i, i + 40).toString('latin1'))}, got ${JSON.stringify(arrived.body.subarray(i, i + 40).toString('latin1'))}`);
  }
  const wantFields = rawFields(wantRaw.subarray(0, wantRaw.length - want.body.length)).filter((f) => f !== '\n' && !DROPPED.test(f));
  const names = new Set(wantFields.map((f) => f.slice(0, f.indexOf(':')).toLowerCase()));
  const mayAdd = (f: string): boolean => ADDED.test(f) || ADDED_WHEN_MISSING.some((n) => !names.has(n) && f.toLowerCase().startsWith(`${n}:`));
  const gotFields = rawFields(got.raw.subarray(0, got.raw.length - arrived.body.length));
  // the original fields in order, nothing between or around them but added ones
  let j = 0;
  // Postfix keeps at most header_size_limit (102400) bytes of one field and discards the rest
  const postfix = path.front || path.far === 'postfix';
  const cut = (f: string, w: string | undefined): boolean =>
    postfix && w !== undefined && w.length > POSTFIX_HEADER_SIZE_LIMIT && f.length <= POSTFIX_HEADER_SIZE_LIMIT + 1 && f.length > POSTFIX_HEADER_SIZE_LIMIT / 2 && w.startsWith(f.replace(/\n$/, ''));
  for (const f of gotFields) {
    if (j < wantFields.length && (f === wantFields[j] || cut(f, wantFields[j]))) j++;
    else if (!mayAdd(f)) out.push(`unexpected field ${JSON.stringify(f.slice(0, 80))}`);
  }
  if (j < wantFields.length) out.push(`field missing or changed: ${JSON.stringify(wantFields[j]!.slice(0, 120))}`);
  if (utf8(got.returnPath) !== c.sender) out.push(`Return-Path <${got.returnPath}>, want <${c.sender}>`);
  return out;
}

type Peer = 'pf' | 'ps' | 'ex';

interface Route {
  mta: 'postfix' | 'exim';
  /** the far site: pf and ex deliver by sendmail, ps by SMTP to the far Postfix's smtpd */
  peer: Peer;
  /** through the sending Postfix into `mailbag enqueue` or mailbag-uux; or straight into `mailbag enqueue` (-f or --bsmtp) */
  door: 'postfix-enqueue' | 'postfix-uux' | 'enqueue' | 'bsmtp';
  /** mailbox at the far MTA */
  box: string;
}

const ROUTES: Route[] = [
  { mta: 'postfix', peer: 'pf', door: 'postfix-enqueue', box: 'p1' },
  { mta: 'postfix', peer: 'pf', door: 'postfix-enqueue', box: 'p2' },
  { mta: 'postfix', peer: 'pf', door: 'postfix-uux', box: 'pu' },
  { mta: 'postfix', peer: 'pf', door: 'enqueue', box: 'pd' },
  { mta: 'postfix', peer: 'pf', door: 'bsmtp', box: 'pb' },
  { mta: 'postfix', peer: 'ps', door: 'enqueue', box: 'sd' },
  { mta: 'postfix', peer: 'ps', door: 'bsmtp', box: 'sb' },
  { mta: 'exim', peer: 'ex', door: 'postfix-enqueue', box: 'e1' },
  { mta: 'exim', peer: 'ex', door: 'postfix-enqueue', box: 'e2' },
  { mta: 'exim', peer: 'ex', door: 'postfix-uux', box: 'eu' },
  { mta: 'exim', peer: 'ex', door: 'enqueue', box: 'ed' },
  { mta: 'exim', peer: 'ex', door: 'bsmtp', box: 'eb' },
];

const PEERS: Peer[] = ['pf', 'ps', 'ex'];

/** One BSMTP transaction as Exim's use_bsmtp writes it (written here, not by lib/bsmtp). */
function bsmtpTransaction(sender: string, rcpts: string[], raw: Buffer, mailParams = '', rcptParams: string[] = []): Buffer {
  let t = raw.toString('latin1');
  while (/^>?From /.test(t)) t = t.slice(t.indexOf('\n') + 1);
  if (t !== '' && !t.endsWith('\n')) t += '\n';
  const body = t === '' ? '' : t.slice(0, -1).split('\n').map((l) => (l.startsWith('.') ? `.${l}` : l)).join('\n') + '\n';
  const head = [`MAIL FROM:<${sender}>${mailParams}`, ...rcpts.map((r, i) => `RCPT TO:<${r}>${rcptParams[i] ?? ''}`), 'DATA'].join('\n') + '\n';
  return Buffer.concat([Buffer.from(head), Buffer.from(body, 'latin1'), Buffer.from('.\n')]);
}

describe.skipIf(!ready)('end to end: Postfix pipe → mailbag → sshd → mailbag run → Postfix and Exim Maildirs', () => {
  let site: MailbagSite;
  let front: PostfixInstance;
  let farPf: PostfixInstance;
  let farEx: EximInstance;
  let sshd: Sshd;
  const hubConfig: Record<Peer, string> = { pf: '', ps: '', ex: '' };
  let homeConfig: string;
  const cases: Case[] = [];

  const asHome = (args: string[], input?: Buffer | string): Promise<RunResult> =>
    run(mailbagCjs, args, { uid: site.user.uid, gid: site.user.gid, env: { PATH: process.env.PATH, MAILBAG_CONFIG: homeConfig }, input, timeoutMs: 120_000 });

  beforeAll(async () => {
    site = await makeMailbagSite('fidelity10');
    const { user, dir } = site;
    // the far sites: root's spools, delivering into their own MTA
    farPf = await startPostfix({ smtp: true, mailboxes: ['user', 'dsn', 'n1', 'n2', 'dsn2', 'n3', 'n4', ...ROUTES.filter((r) => r.mta === 'postfix').map((r) => r.box)] });
    farEx = await startExim({ mailboxes: ['user', 'dsn', 'n1', 'n2', ...ROUTES.filter((r) => r.mta === 'exim').map((r) => r.box)] });
    const eximSendmail = join(dir, 'exim-sendmail');
    // the "sendmail" an Exim site has, pointed at the private configuration (-odq: a -C
    // Exim delivers in a queue run, test/helpers/exim.ts)
    writeFileSync(eximSendmail, `#!/bin/sh\nexec ${eximBinary()} -C ${farEx.configFile} -odq "$@"\n`, { mode: 0o755 });
    const delivery: Record<Peer, string[]> = {
      pf: [`sendmail = "${POSTFIX_SENDMAIL}"`],
      ps: ['method = "smtp"', `smtp = "127.0.0.1:${farPf.smtpPort}"`],
      ex: [`sendmail = "${eximSendmail}"`],
    };
    for (const peer of PEERS) {
      const root = makeOwnedDir(join(dir, `hub-${peer}`), { name: 'root', uid: 0, gid: 0 }, 0o700);
      hubConfig[peer] = join(root, 'mailbag.toml');
      writeFileSync(hubConfig[peer], [`site = "${peer}"`, `spool = "${join(root, 'spool')}"`, '[delivery]', ...delivery[peer], '[peers.home]', 'accept = ["rmail", "rsmtp"]', ''].join('\n'));
    }
    const keys = { pf: makeKey(dir, 'id_pf'), ps: makeKey(dir, 'id_ps'), ex: makeKey(dir, 'id_ex') };
    sshd = await startSshd({
      authorizedKeys: PEERS.map((p) => ({
        publicKey: keys[p].publicKey,
        command: serveCommand('home', hubConfig[p], { MAIL_CONFIG: farPf.configDir, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }),
      })),
    });
    for (const k of Object.values(keys)) chownSync(k.privatePath, user.uid, user.gid);
    const knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, `${sshd.knownHostsLines.join('\n')}\n`);
    homeConfig = join(dir, 'home.toml');
    const peer = (p: Peer): string[] => [
      `[peers.${p}]`, 'host = "127.0.0.1"', `port = ${sshd.port}`, `user = "${sshd.user}"`, `identity = "${keys[p].privatePath}"`, `known_hosts = "${knownHosts}"`, 'connect_timeout = "20s"', '',
    ];
    writeFileSync(homeConfig, ['site = "home"', `spool = "${site.spool}"`, '', ...PEERS.flatMap(peer)].join('\n'), { mode: 0o644 });
    await makeUserSpool(site.spool, user);
    // the sending site's Postfix: each far mailbox has its route (front door and peer)
    front = await startPostfix({
      environment: { MAILBAG_CONFIG: homeConfig },
      masterCf: [
        `mailbag unix - n n - - pipe flags=q null_sender= user=${user.name} argv=${mailbagCjs} enqueue $nexthop -f $sender -- $recipient`,
        `mailbag-uux unix - n n - - pipe flags=Fqhu null_sender= user=${user.name} argv=${mailbagUuxCjs} -r -n -z -a$sender - $nexthop!rmail ($recipient)`,
      ],
      transports: Object.fromEntries(
        ROUTES.filter((r) => r.door.startsWith('postfix-')).map((r) => [`${r.box}@maildir.test`, `${r.door === 'postfix-uux' ? 'mailbag-uux' : 'mailbag'}:${r.peer}`]),
      ),
      mailboxes: ['user'],
    });

    const odd = corpusFiles('odd');
    const large = corpusFiles('large');
    const sample = large.filter((_, i) => i % 12 === 5);
    for (const f of [...odd, ...sample]) cases.push({ name: basename(f), raw: readFileSync(f), sender: '' });
    for (const [name, text] of MADE) cases.push({ name, raw: Buffer.from(text, 'latin1'), sender: '' });
    // every fourth with the null sender (a BSMTP job); the others a sender of their own
    const ids = cases.map((c) => messageId(c.raw));
    cases.forEach((c, i) => {
      const unique = ids[i] !== undefined && ids.filter((x) => x === ids[i]).length === 1;
      c.sender = i % 4 === 3 && unique ? '' : `s${i}.${c.name.replace(/[^A-Za-z0-9]/g, '')}@sender.test`;
    });
    // senders an rmail job cannot carry (BSMTP then) or whose case and tags must stay
    cases[1]!.sender = '"john smith"@sender.test';
    cases[2]!.sender = 'Mixed.Case+tag=x@Sender.TEST';
    cases[5]!.sender = 'a!b!bang@sender.test';
    cases[6]!.sender = 'jörg.ü@sender.test';
  }, 180_000);

  afterAll(async () => {
    await sshd?.stop();
    await front?.stop();
    await farPf?.stop();
    farEx?.stop();
    if (site) removeTempDir(site.dir);
  });

  test('every message reaches every recipient once through both MTAs, intact up to the documented changes', async () => {
    const batch: Record<Peer, Buffer[]> = { pf: [], ps: [], ex: [] };
    for (const c of cases) {
      const f = c.sender === '' ? '<>' : c.sender;
      const viaPostfix = ROUTES.filter((x) => x.door.startsWith('postfix-')).map((x) => `${x.box}@maildir.test`);
      const r = await front.sendmail(['-oi', '-f', f, '--', ...viaPostfix], c.raw, 60_000);
      expect(r.code, `${c.name}: ${r.stderr}`).toBe(0);
      for (const x of ROUTES) {
        if (x.door === 'enqueue') {
          const q = await asHome(['enqueue', x.peer, '-f', f, '--', `${x.box}@maildir.test`], c.raw);
          expect(q.code, `${c.name}: ${q.stderr}`).toBe(0);
        } else if (x.door === 'bsmtp') {
          batch[x.peer].push(bsmtpTransaction(c.sender, [`${x.box}@maildir.test`], c.raw));
        }
      }
    }
    for (const p of PEERS) {
      // the batch for Exim with CRLF line ends, as some BSMTP writers make it (docs/formats.md 2.2)
      const stream = Buffer.concat(batch[p]);
      const q = await asHome(['enqueue', p, '--bsmtp'], p === 'ex' ? Buffer.from(stream.toString('latin1').replace(/\n/g, '\r\n'), 'latin1') : stream);
      expect(q.code, q.stderr).toBe(0);
    }
    await front.waitQueueEmpty(120_000);
    expect(front.log()).not.toMatch(/status=(bounced|deferred)/);
    for (const p of PEERS) {
      const s = await asHome(['sync', p]);
      expect(s.code, `sync ${p}: ${s.stderr}\n${sshd.log().slice(-2000)}`).toBe(0);
    }
    // the sessions ran the received jobs; a run afterwards finds nothing left
    for (const p of PEERS) {
      const r = await run(mailbagCjs, ['run', '--config', hubConfig[p]], { env: { ...process.env, MAIL_CONFIG: farPf.configDir }, timeoutMs: 300_000 });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.toString()).toMatch(/^run: 0 done, 0 to retry, 0 failed/m);
    }
    await farEx.runQueue();
    await farPf.waitQueueEmpty(120_000);

    const problems: string[] = [];
    for (const route of ROUTES) {
      const maildir = route.mta === 'postfix' ? farPf.maildir(route.box) : farEx.maildir(route.box);
      const got = await waitMaildir(maildir, cases.length, 60_000).catch(() => readMaildir(maildir));
      const used = new Set<string>();
      for (const c of cases) {
        const found = got.filter((m) => (c.sender === '' ? m.returnPath === '' && m.raw.includes(messageId(c.raw)!) : utf8(m.returnPath) === c.sender));
        if (found.length !== 1) {
          problems.push(`${route.mta}/${route.door}/${route.box} ${c.name}: arrived ${found.length} times`);
          continue;
        }
        used.add(found[0]!.path);
        // the envelope recipient, as the far MTA recorded it at delivery
        const rcpt = route.mta === 'postfix' ? found[0]!.header('x-original-to') : found[0]!.header('envelope-to');
        if (rcpt !== `${route.box}@maildir.test`) problems.push(`${route.mta}/${route.door}/${route.box} ${c.name}: delivered for ${rcpt}`);
        for (const d of differences(c, found[0]!, { front: route.door.startsWith('postfix-'), far: route.mta, raw: route.door === 'enqueue' && c.sender !== '' })) problems.push(`${route.mta}/${route.door}/${route.box} ${c.name}: ${d}`);
      }
      for (const m of got) if (!used.has(m.path)) problems.push(`${route.mta}/${route.box}: a message nobody sent (Return-Path <${m.returnPath}>)`);
    }
    expect(problems).toEqual([]);
  }, 600_000);

  test('BSMTP DSN parameters reach Postfix (sendmail -bs: NOTIFY, ORCPT; SMTP: ENVID too; its success notices say so); Exim gets the mail without them', async () => {
    const message = (n: string): Buffer => Buffer.from(`From: dsn@maildir.test\nTo: n1@maildir.test\nSubject: dsn ${n}\nMessage-ID: <dsn-${n}@x.test>\nDate: Sun, 22 Nov 2026 04:10:00 +0000\n\nbody ${n}\n`);
    const job = Buffer.concat([
      bsmtpTransaction('dsn@maildir.test', ['n1@maildir.test', 'n2@maildir.test'], message('one'), ' RET=HDRS ENVID=fid10+2Benv1', [' NOTIFY=SUCCESS ORCPT=rfc822;orig1@x.test', ' NOTIFY=NEVER']),
      bsmtpTransaction('', ['n1@maildir.test'], message('two'), ' ENVID=env2'),
    ]);
    for (const p of ['pf', 'ex'] as const) {
      const q = await asHome(['enqueue', p, '--bsmtp'], job);
      expect(q.code, q.stderr).toBe(0);
      const s = await asHome(['sync', p]);
      expect(s.code, `sync ${p}: ${s.stderr}`).toBe(0);
    }
    await farEx.runQueue();
    for (const [mta, maildir] of [['postfix', farPf.maildir.bind(farPf)], ['exim', farEx.maildir.bind(farEx)]] as const) {
      const n1 = await waitMaildir(maildir('n1'), 2, 60_000);
      expect(n1.map((m) => [m.returnPath, m.header('subject')]).sort(), mta).toEqual([['', 'dsn two'], ['dsn@maildir.test', 'dsn one']]);
      const n2 = await waitMaildir(maildir('n2'), 1, 60_000);
      expect(n2.map((m) => m.header('subject')), mta).toEqual(['dsn one']);
    }
    // Postfix's notice of success for n1 only (n2 said NEVER), with the envelope's DSN fields
    const [notice, ...more] = await waitMaildir(farPf.maildir('dsn'), 1, 60_000);
    const text = notice!.raw.toString('latin1');
    expect(notice!.returnPath).toBe('');
    // (no Original-Envelope-Id: Postfix's `sendmail -bs` drops ENVID, docs/runner.md's table)
    expect(text).toMatch(/^Original-Recipient: rfc822; ?orig1@x\.test$/m);
    expect(text).toMatch(/^Final-Recipient: rfc822; n1@maildir\.test$/m);
    expect(text).toMatch(/^Action: delivered/m);
    expect(text).not.toMatch(/n2@maildir\.test/);
    // the headers come back, not the body
    expect(text).toMatch(/Content-Type: text\/rfc822-headers/);
    expect(text).not.toMatch(/body one/);

    // by SMTP to Postfix's smtpd every DSN parameter arrives, ENVID too
    const bySmtp = Buffer.concat([
      bsmtpTransaction('dsn2@maildir.test', ['n3@maildir.test', 'n4@maildir.test'], message('three'), ' RET=FULL ENVID=fid10+2Benv3', [' NOTIFY=SUCCESS ORCPT=rfc822;orig3@x.test', ' NOTIFY=NEVER']),
    ]);
    const q = await asHome(['enqueue', 'ps', '--bsmtp'], bySmtp);
    expect(q.code, q.stderr).toBe(0);
    const s = await asHome(['sync', 'ps']);
    expect(s.code, `sync ps: ${s.stderr}`).toBe(0);
    expect((await waitMaildir(farPf.maildir('n3'), 1, 60_000)).map((m) => m.header('subject'))).toEqual(['dsn three']);
    const [smtpNotice] = await waitMaildir(farPf.maildir('dsn2'), 1, 60_000);
    const smtpText = smtpNotice!.raw.toString('latin1');
    expect(smtpText).toMatch(/^Original-Envelope-Id: fid10\+env3$/m);
    expect(smtpText).toMatch(/^Original-Recipient: rfc822; ?orig3@x\.test$/m);
    expect(smtpText).toMatch(/^Final-Recipient: rfc822; n3@maildir\.test$/m);
    expect(smtpText).not.toMatch(/n4@maildir\.test/);
    // (RET cannot be seen here: Postfix's notice of success returns the headers either way)
    await farPf.waitQueueEmpty(60_000);
    expect(more).toEqual([]);
    expect(readMaildir(farPf.maildir('dsn2'))).toHaveLength(1);
    expect(readMaildir(farEx.maildir('dsn'))).toEqual([]);
  }, 300_000);
});

/** A header value read as Latin-1 (test/helpers/maildir.ts), as the UTF-8 it is */
function utf8(s: string | undefined): string | undefined {
  return s === undefined ? undefined : Buffer.from(s, 'latin1').toString('utf8');
}

/** The Message-ID field's bytes (how a null-sender message is told from the others) */
function messageId(raw: Buffer): string | undefined {
  return /^message-id:[ \t]*(<[^>\r\n]*>)/im.exec(raw.toString('latin1'))?.[1];
}
