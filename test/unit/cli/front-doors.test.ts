// The real built bins (dist/bin/mailbag.js enqueue, dist/bin/mailbag-uux.js) run as child
// processes with a temp config and spool: exit status, the one stderr line, and the job
// on disk (or nothing at all) for every case an MTA can hit; and the session commands'
// route into their bundle (sessions themselves: installed-bins.test.ts, test/integration).

import { chmodSync, existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  jobsIn, makeSite, MAILBAG_BIN, OUR_FROM_LINE, repoRoot, requireBuild, runBin, tmpLeftovers, UUX_BIN, type RunResult, type Site,
} from './front-door-helpers.js';

beforeAll(requireBuild);

let site: Site;
afterEach(() => site?.cleanup());

const MESSAGE = 'Subject: test\nFrom: a@example.org\n\nHello.\n.\n..two dots\nFrom the start of a line\n';

function enqueue(args: string[], input: string | Buffer, env?: NodeJS.ProcessEnv): Promise<RunResult> {
  return runBin(MAILBAG_BIN, ['enqueue', '--config', site.config, ...args], input, env);
}

function uux(args: string[], input: string | Buffer): Promise<RunResult> {
  return runBin(UUX_BIN, ['--config', site.config, ...args], input);
}

/** exit code, one stderr line starting with the enhanced status, and nothing in the spool */
function expectRefusal(r: RunResult, code: number, status: string, what: RegExp): void {
  expect(r.code, r.stderr).toBe(code);
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  expect(lines[0]!.startsWith(`${status} `)).toBe(true);
  expect(lines[0]).toMatch(what);
  expect(jobsIn(site.spool, 'out', 'hub')).toEqual([]);
  expect(tmpLeftovers(site.spool)).toEqual([]);
}

describe('mailbag enqueue: accepted', () => {
  it('an rmail job: From_ line + the message byte for byte, envelope in the header', async () => {
    site = makeSite();
    const r = await enqueue(['hub', '-f', 'a@example.org', '--', 'b@example.net', 'c@example.com'], MESSAGE);
    expect(r).toMatchObject({ code: 0, stderr: '', stdout: '' });
    const [job, ...more] = jobsIn(site.spool, 'out', 'hub');
    expect(more).toEqual([]);
    expect(job!.header).toMatchObject({
      id: job!.id, from: 'home', to: 'hub', command: 'rmail',
      args: ['b@example.net', 'c@example.com'], sender: 'a@example.org', recipients: ['b@example.net', 'c@example.com'],
    });
    expect(Date.now() - Date.parse(job!.header.created)).toBeLessThan(600_000);
    const text = job!.payload.toString('latin1');
    expect(text).toMatch(OUR_FROM_LINE);
    expect(text.match(OUR_FROM_LINE)![1]).toBe('a@example.org');
    expect(job!.payload.subarray(text.indexOf('\n') + 1).equals(Buffer.from(MESSAGE))).toBe(true);
  });

  it('8-bit bytes, CRLF, NUL-free binary and no final newline pass unchanged', async () => {
    site = makeSite();
    const msg = Buffer.concat([Buffer.from('Subject: \xe9\r\n\r\nbody\r\n\xff\xfe', 'latin1'), Buffer.from('no newline at end')]);
    const r = await enqueue(['hub', '-f', 'a@example.org', 'b@example.net'], msg);
    expect(r.code, r.stderr).toBe(0);
    const job = jobsIn(site.spool, 'out', 'hub')[0]!;
    expect(job.payload.subarray(job.payload.indexOf(0x0a) + 1).equals(msg)).toBe(true);
  });

  it('a leading From_ envelope (pipe flag F, an mbox file) is taken off; -f names the sender', async () => {
    site = makeSite();
    const r = await enqueue(['hub', '-f', 'a@example.org', 'b@example.net'], `From other@x  Sun Nov 22 04:10:00 2026\n>From y Sun Nov 22 04:00:00 2026 remote from z\n${MESSAGE}`);
    expect(r.code, r.stderr).toBe(0);
    const job = jobsIn(site.spool, 'out', 'hub')[0]!;
    const text = job.payload.toString();
    expect(text.match(OUR_FROM_LINE)![1]).toBe('a@example.org');
    expect(text.slice(text.indexOf('\n') + 1)).toBe(MESSAGE);
  });

  it.each([[''], ['<>'], ['MAILER-DAEMON']])('null sender %j: a BSMTP job with MAIL FROM:<>', async (sender) => {
    site = makeSite();
    const r = await enqueue(['hub', '-f', sender, '--', 'b@example.net', 'c d@example.com'], MESSAGE);
    expect(r.code, r.stderr).toBe(0);
    const job = jobsIn(site.spool, 'out', 'hub')[0]!;
    expect(job.header).toMatchObject({ command: 'rsmtp', args: [], sender: '', recipients: ['b@example.net', 'c d@example.com'] });
    expect(job.payload.toString()).toBe(
      'MAIL FROM:<>\nRCPT TO:<b@example.net>\nRCPT TO:<c d@example.com>\nDATA\n'
      + 'Subject: test\nFrom: a@example.org\n\nHello.\n..\n...two dots\nFrom the start of a line\n.\n',
    );
  });

  it('--bsmtp: Exim\'s use_bsmtp stream, CRLF, HELO, lower case, params, QUIT → canonical BSMTP, envelope in the header', async () => {
    site = makeSite();
    const input = [
      'HELO exim.example.org', 'mail from:<a@example.org> RET=HDRS ENVID=x1', 'RCPT TO:<b@example.net> NOTIFY=FAILURE ORCPT=rfc822;b@example.net',
      'RCPT TO:<c@example.com>', 'DATA', 'Subject: s', '', '..leading dot', 'body', '.', 'QUIT', '',
    ].join('\r\n');
    const r = await enqueue(['hub', '--bsmtp'], input);
    expect(r.code, r.stderr).toBe(0);
    const job = jobsIn(site.spool, 'out', 'hub')[0]!;
    expect(job.header).toMatchObject({ command: 'rsmtp', args: [], sender: 'a@example.org', recipients: ['b@example.net', 'c@example.com'] });
    expect(job.payload.toString()).toBe(
      'MAIL FROM:<a@example.org> RET=HDRS ENVID=x1\nRCPT TO:<b@example.net> NOTIFY=FAILURE ORCPT=rfc822;b@example.net\n'
      + 'RCPT TO:<c@example.com>\nDATA\nSubject: s\n\n..leading dot\nbody\n.\n',
    );
    expect(tmpLeftovers(site.spool)).toEqual([]);
  });

  it('--bsmtp with several transactions: one job, the first sender, every recipient once', async () => {
    site = makeSite();
    const input = 'MAIL FROM:<>\nRCPT TO:<x@a>\nDATA\nm1\n.\nMAIL FROM:<s@b>\nRCPT TO:<y@a>\nRCPT TO:<x@a>\nDATA\nm2\n.\n';
    const r = await enqueue(['hub', '--bsmtp'], input);
    expect(r.code, r.stderr).toBe(0);
    const job = jobsIn(site.spool, 'out', 'hub')[0]!;
    expect(job.header).toMatchObject({ sender: '', recipients: ['x@a', 'y@a'] });
    expect(job.payload.toString()).toBe(input);
  });
});

describe('mailbag enqueue: refused, with the status an MTA reads', () => {
  it('an unknown peer: 75, and the message names the file to add [peers.NAME] to', async () => {
    site = makeSite();
    const r = await enqueue(['backup', '-f', 'a@x', '--', 'b@y'], MESSAGE);
    expectRefusal(r, 75, '4.3.5', new RegExp(`unknown peer "backup": add a \\[peers.backup\\] section to ${site.config.replace(/[.]/g, '\\.')}`));
  });

  it.each([
    ['a recipient beginning with -', ['hub', '-f', 'a@x', '--', '-oi'], 64, '5.1.3', /recipient "-oi" begins with "-"/],
    // a space alone makes a BSMTP job (test/unit/bsmtp/rmail-cannot-carry); with "<" BSMTP cannot carry it either
    ['whitespace and "<" in a recipient', ['hub', '-f', 'a@x', '--', '"b c" <d@y>'], 64, '5.1.3', /recipient .* contains "<" or ">"/],
    ['whitespace and "<" in a sender', ['hub', '-f', 'a b<x>', '--', 'c@y'], 65, '5.1.7', /sender "a b<x>" contains "<" or ">"/],
    ['an empty recipient', ['hub', '-f', 'a@x', '--', ''], 64, '5.1.3', /is empty/],
    ['no recipients', ['hub', '-f', 'a@x'], 64, '5.1.3', /no recipients/],
    ['a sender ending in !<> (rmail would read the null sender; BSMTP cannot carry it)', ['hub', '-f', 'a!<>', 'b@y'], 65, '5.1.7', /sender "a!<>" contains "<" or ">"/],
    ['a control character in a recipient', ['hub', '-f', 'a@x', 'b\tc@y'], 64, '5.1.3', /control character/],
    ['no -f', ['hub', 'b@y'], 75, '4.3.5', /no -f SENDER/],
    ['an unknown option', ['hub', '-f', 'a@x', '-X', 'b@y'], 75, '4.3.5', /unknown option "-X"/],
    ['no peer', [], 75, '4.3.5', /no PEER/],
  ])('%s', async (_what, args, code, status, what) => {
    site = makeSite();
    expectRefusal(await enqueue(args, MESSAGE), code, status, what);
  });

  it('more recipients than limits.max_recipients: 65', async () => {
    site = makeSite('[limits]\nmax_recipients = 2');
    expectRefusal(await enqueue(['hub', '-f', 'a@x', 'b@y', 'c@y', 'd@y'], MESSAGE), 65, '5.6.0', /3 recipients, over the limit of 2/);
  });

  it('a BSMTP stream whose transactions add up to more than limits.max_recipients: 65', async () => {
    site = makeSite('[limits]\nmax_recipients = 2');
    const input = 'MAIL FROM:<a@x>\nRCPT TO:<b@y>\nRCPT TO:<c@y>\nDATA\nm\n.\nMAIL FROM:<a@x>\nRCPT TO:<d@y>\nDATA\nm\n.\n';
    expectRefusal(await enqueue(['hub', '--bsmtp'], input), 65, '5.6.0', /3 recipients in the BSMTP input, over the limit of 2/);
  });

  it('a message over limits.max_message_size: 65 5.3.4, nothing left behind (rmail and null-sender BSMTP)', async () => {
    site = makeSite('[limits]\nmax_message_size = "4K"');
    const big = `Subject: big\n\n${'x'.repeat(100)}\n`.repeat(60);
    expectRefusal(await enqueue(['hub', '-f', 'a@x', 'b@y'], big), 65, '5.3.4', /larger than the limit of 4K \(limits.max_message_size\)/);
    expectRefusal(await enqueue(['hub', '-f', '', 'b@y'], big), 65, '5.3.4', /larger than the limit of 4K/);
    expectRefusal(await enqueue(['hub', '--bsmtp'], `MAIL FROM:<a@x>\nRCPT TO:<b@y>\nDATA\n${big}.\n`), 65, '5.3.4', /./);
    // exactly at the cap is fine
    const exact = 'x'.repeat(4096);
    const r = await enqueue(['hub', '-f', 'a@x', 'b@y'], exact);
    expect(r.code, r.stderr).toBe(0);
  });

  it('an empty message: 65', async () => {
    site = makeSite();
    expectRefusal(await enqueue(['hub', '-f', 'a@x', 'b@y'], ''), 65, '5.6.0', /empty/);
  });

  it.each([
    ['no final dot (DATA unterminated)', 'MAIL FROM:<a@x>\nRCPT TO:<b@y>\nDATA\nbody\n', /BSMTP line \d+: /],
    ['an unknown verb', 'MAIL FROM:<a@x>\nXYZZY\nRCPT TO:<b@y>\nDATA\nbody\n.\n', /BSMTP line 2: /],
    ['RCPT before MAIL', 'RCPT TO:<b@y>\nMAIL FROM:<a@x>\nDATA\nb\n.\n', /BSMTP line 1: /],
    ['a NUL in a command', 'MAIL FROM:<a@x>\0\nRCPT TO:<b@y>\nDATA\nb\n.\n', /BSMTP line 1: /],
    ['no transaction at all', 'HELO x\nQUIT\n', /no transaction/],
    ['empty input', '', /no transaction/],
    ['a second transaction left open', 'MAIL FROM:<a@x>\nRCPT TO:<b@y>\nDATA\nb\n.\nMAIL FROM:<a@x>\nRCPT TO:<b@y>\n', /BSMTP line \d+: /],
  ])('--bsmtp with %s: 65 5.5.2, nothing accepted', async (_what, input, what) => {
    site = makeSite();
    expectRefusal(await enqueue(['hub', '--bsmtp'], input), 65, '5.5.2', what);
  });

  it('a configuration error: 75, naming the file and the key', async () => {
    site = makeSite('[limits]\nmax_mesage_size = "1M"');
    expectRefusal(await enqueue(['hub', '-f', 'a@x', 'b@y'], MESSAGE), 75, '4.3.5', new RegExp(`${site.config.replace(/[.]/g, '\\.')}: limits.max_mesage_size: unknown key`));
  });

  it('a missing --config file: 75', async () => {
    site = makeSite();
    const r = await runBin(MAILBAG_BIN, ['enqueue', '--config', join(site.dir, 'nope.toml'), 'hub', '-f', 'a@x', 'b@y'], MESSAGE);
    expectRefusal(r, 75, '4.3.5', /nope\.toml: cannot read the configuration file: no such file/);
  });

  it('$MAILBAG_CONFIG is used when there is no --config', async () => {
    site = makeSite();
    const r = await runBin(MAILBAG_BIN, ['enqueue', 'hub', '-f', 'a@x', 'b@y'], MESSAGE, { MAILBAG_CONFIG: site.config });
    expect(r.code, r.stderr).toBe(0);
    expect(jobsIn(site.spool, 'out', 'hub')).toHaveLength(1);
  });

  it('a spool that cannot be written: 75 with a 4.3.x line, nothing accepted', async () => {
    site = makeSite();
    // the spool path is a file: no directory can be made there, whoever we run as
    writeFileSync(site.spool, 'not a spool\n');
    const r = await enqueue(['hub', '-f', 'a@x', 'b@y'], MESSAGE);
    expect(r.code, r.stderr).toBe(75);
    expect(r.stderr).toMatch(/^4\.3\.[01] mailbag: .*spool/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('a read-only queue directory (non-root only) or a full one: 75', async () => {
    site = makeSite();
    expect((await enqueue(['hub', '-f', 'a@x', 'b@y'], MESSAGE)).code).toBe(0);
    if (process.getuid?.() === 0) return; // root writes anyway; the file-in-the-way case above covers root
    chmodSync(join(site.spool, 'out', 'hub'), 0o500);
    try {
      const r = await enqueue(['hub', '-f', 'a@x', 'b@y'], MESSAGE);
      expect(r.code).toBe(75);
      expect(r.stderr).toMatch(/^4\.3\.0 /);
    } finally {
      chmodSync(join(site.spool, 'out', 'hub'), 0o700);
    }
  });
});

describe('mailbag-uux: the lines MTAs write', () => {
  it('Postfix (flags=F): its From_ line is replaced by ours, several recipients', async () => {
    site = makeSite();
    const stdin = `From a@example.org  Sun Nov 22 04:10:00 2026\n${MESSAGE}`;
    const r = await uux(['-r', '-n', '-z', '-aa@example.org', '-', 'hub!rmail', '(b@example.net)', '(c@example.com)'], stdin);
    expect(r).toMatchObject({ code: 0, stderr: '', stdout: '' });
    const job = jobsIn(site.spool, 'out', 'hub')[0]!;
    expect(job.header).toMatchObject({ command: 'rmail', sender: 'a@example.org', recipients: ['b@example.net', 'c@example.com'], args: ['b@example.net', 'c@example.com'] });
    const text = job.payload.toString('latin1');
    expect(text).toMatch(OUR_FROM_LINE);
    expect(job.payload.subarray(text.indexOf('\n') + 1).toString()).toBe(MESSAGE);
  });

  it('Postfix with null_sender= (an empty glued -a): a BSMTP job with MAIL FROM:<>', async () => {
    site = makeSite();
    const stdin = `From MAILER-DAEMON  Sun Nov 22 04:10:00 2026\n${MESSAGE}`;
    const r = await uux(['-r', '-n', '-z', '-a', '-', 'hub!rmail', '(b@example.net)'], stdin);
    expect(r.code, r.stderr).toBe(0);
    const job = jobsIn(site.spool, 'out', 'hub')[0]!;
    expect(job.header).toMatchObject({ command: 'rsmtp', sender: '', recipients: ['b@example.net'] });
    expect(job.payload.toString().startsWith('MAIL FROM:<>\nRCPT TO:<b@example.net>\nDATA\nSubject: test\n')).toBe(true);
  });

  it('sendmail (uux - -r -z -a$g -gC $h!rmail ($u)), a bang-path recipient in parentheses, -j prints the job id', async () => {
    site = makeSite();
    const stdin = `From user  Sun Nov 22 04:10:00 2026 remote from relay\n${MESSAGE}`;
    const r = await uux(['-j', '-', '-r', '-z', '-arelay!user', '-gC', 'hub!rmail', '(x!y!z)', '(w@example.net)'], stdin);
    expect(r.code, r.stderr).toBe(0);
    const job = jobsIn(site.spool, 'out', 'hub')[0]!;
    expect(r.stdout).toBe(`${job.id}\n`);
    expect(job.header).toMatchObject({ sender: 'relay!user', recipients: ['x!y!z', 'w@example.net'] });
  });

  it('Exim without -a: the sender comes from the From_ line (a remote from becomes a bang path)', async () => {
    site = makeSite();
    const stdin = `From user Sun Nov 22 04:10:00 2026 remote from relay\n>From other Sun Nov 22 04:09:00 2026 remote from far\n${MESSAGE}`;
    const r = await uux(['-', '-r', '-gC', 'hub!rmail', 'b@example.net'], stdin);
    expect(r.code, r.stderr).toBe(0);
    const job = jobsIn(site.spool, 'out', 'hub')[0]!;
    expect(job.header).toMatchObject({ command: 'rmail', sender: 'relay!far!other', recipients: ['b@example.net'] });
    expect(job.payload.subarray(job.payload.indexOf(0x0a) + 1).toString()).toBe(MESSAGE);
  });

  it('stdin without a From_ line is all message', async () => {
    site = makeSite();
    const r = await uux(['-r', '-aa@x', '-', 'hub!rmail', '(b@y)'], MESSAGE);
    expect(r.code, r.stderr).toBe(0);
    const job = jobsIn(site.spool, 'out', 'hub')[0]!;
    expect(job.payload.subarray(job.payload.indexOf(0x0a) + 1).toString()).toBe(MESSAGE);
  });

  it('Exim use_bsmtp (uux - -r hub!rsmtp): a checked BSMTP job', async () => {
    site = makeSite();
    const r = await uux(['-', '-r', 'hub!rsmtp'], 'MAIL FROM:<a@x>\nRCPT TO:<b@y>\nDATA\nhi\n.\n');
    expect(r.code, r.stderr).toBe(0);
    expect(jobsIn(site.spool, 'out', 'hub')[0]!.header).toMatchObject({ command: 'rsmtp', sender: 'a@x', recipients: ['b@y'] });
  });

  it.each([
    ['a bare host!file argument', ['-r', '-aa@x', '-', 'hub!rmail', 'other!file'], 64, '5.1.3', /uux file reference/],
    ['a recipient beginning with - in parentheses', ['-r', '-aa@x', '-', 'hub!rmail', '(-oi)'], 64, '5.1.3', /begins with "-"/],
    ['whitespace and ">" in a recipient', ['-r', '-aa@x', '-', 'hub!rmail', '("a b" <c@y>)'], 64, '5.1.3', /contains "<" or ">"/],
    ['no recipients', ['-r', '-aa@x', '-', 'hub!rmail'], 64, '5.1.3', /no recipients/],
    ['an unknown peer', ['-r', '-aa@x', '-', 'nohost!rmail', '(b@y)'], 75, '4.3.5', /unknown peer "nohost": add a \[peers.nohost\] section/],
    ['no stdin (-)', ['-r', '-aa@x', 'hub!rmail', '(b@y)'], 75, '4.3.5', /stdin is not spooled/],
    ['an unsupported command', ['-r', '-', 'hub!rnews'], 75, '4.3.5', /"rnews" is not supported/],
    ['an unknown option', ['-r', '-Q', '-', 'hub!rmail', '(b@y)'], 75, '4.3.5', /unknown uux option -Q/],
    ['a bad BSMTP stream', ['-r', '-', 'hub!rsmtp'], 65, '5.5.2', /BSMTP line/],
  ])('%s', async (_what, args, code, status, what) => {
    site = makeSite();
    const input = args.includes('hub!rsmtp') ? 'MAIL FROM:<a@x>\nDATA\n' : MESSAGE;
    const r = await uux(args, input);
    expectRefusal(r, code, status, what);
    expect(r.stderr.startsWith(`${status} mailbag-uux: `)).toBe(true);
  });

  it('a corrupt From_ line on stdin: 65', async () => {
    site = makeSite();
    expectRefusal(await uux(['-r', '-', 'hub!rmail', '(b@y)'], `From \n${MESSAGE}`), 65, '5.6.0', /From_ line on stdin is refused/);
  });

  it('--help prints the usage and exits 0', async () => {
    site = makeSite();
    const r = await uux(['--help'], '');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: mailbag-uux/);
  });
});

describe('mailbag status', () => {
  it('counts jobs and bytes per queue, oldest age; JSON is stable', async () => {
    site = makeSite('[peers.backup]\nhost = "b.example.org"');
    for (let i = 0; i < 3; i++) expect((await enqueue(['hub', '-f', 'a@x', 'b@y'], MESSAGE)).code).toBe(0);
    // a received job waiting for the runner and a failed one, for a peer no longer configured
    mkdirSync(join(site.spool, 'in', 'old'), { recursive: true });
    mkdirSync(join(site.spool, 'failed', 'old'), { recursive: true });
    const job = '{"id":"01a2000000000000000000aa","from":"old","to":"home","created":"2026-11-22T00:00:00.000Z","command":"rmail","args":["b@y"],"sender":"a@x","recipients":["b@y"]}';
    writeFileSync(join(site.spool, 'in', 'old', '01a2000000000000000000aa'), `mailbag-job 1\n${job}\nFrom a@x  Sun Nov 22 00:00:00 2026\nhi\n`);
    const json = await runBin(MAILBAG_BIN, ['status', '--config', site.config, '--json'], '');
    expect(json.code, json.stderr).toBe(0);
    const report = JSON.parse(json.stdout) as { version: number; site: string; peers: Array<Record<string, unknown>> };
    expect(report).toMatchObject({ version: 1, site: 'home', spool: site.spool });
    expect(report.peers.map((p) => p.peer)).toEqual(['backup', 'hub', 'old']);
    const hub = report.peers[1] as { out: { jobs: number; bytes: number; oldestAgeSeconds: number } };
    const sizes = jobsIn(site.spool, 'out', 'hub').length;
    expect(sizes).toBe(3);
    expect(hub).toMatchObject({ configured: true, in: { jobs: 0, bytes: 0, oldestAgeSeconds: null } });
    expect(hub.out.jobs).toBe(3);
    expect(hub.out.bytes).toBeGreaterThan(3 * MESSAGE.length);
    expect(hub.out.oldestAgeSeconds).toBeGreaterThanOrEqual(0);
    expect(report.peers[2]).toMatchObject({ peer: 'old', configured: false, in: { jobs: 1 }, out: { jobs: 0, oldestAgeSeconds: null } });

    const human = await runBin(MAILBAG_BIN, ['status', '--config', site.config], '');
    expect(human.code).toBe(0);
    const lines = human.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`site home, spool ${site.spool}`);
    expect(lines[1]).toMatch(/^PEER\s+OUT\s+IN\s+FAILED$/);
    expect(lines[2]).toMatch(/^backup\s+-\s+-\s+-$/);
    expect(lines[3]).toMatch(/^hub\s+3 jobs, [\d.]+K?, oldest \S+\s+-\s+-$/);
    expect(lines[4]).toMatch(/^old \(not configured\)\s+-\s+1 job, \d+, oldest \S+\s+-$/);

    const one = await runBin(MAILBAG_BIN, ['status', '--config', site.config, '--json', 'hub'], '');
    expect((JSON.parse(one.stdout) as { peers: unknown[] }).peers).toHaveLength(1);
  });

  it('an unknown peer with nothing queued: 75 and how to add it', async () => {
    site = makeSite();
    const r = await runBin(MAILBAG_BIN, ['status', '--config', site.config, 'nope'], '');
    expect(r.code).toBe(75);
    expect(r.stderr).toMatch(/^4\.3\.5 mailbag: unknown peer "nope": add a \[peers.nope\] section/);
  });

  it('a spool that does not exist yet: every configured peer with empty queues', async () => {
    site = makeSite();
    const r = await runBin(MAILBAG_BIN, ['status', '--config', site.config, '--json'], '');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ peers: [{ peer: 'hub', out: { jobs: 0 }, in: { jobs: 0 }, failed: { jobs: 0 } }] });
  });
});

describe('the bundled bins (scripts/bundle-front-doors.mjs) still find their package', () => {
  it('mailbag --version and --help', async () => {
    site = makeSite();
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    const v = await runBin(MAILBAG_BIN, ['--version'], '');
    expect(v).toMatchObject({ code: 0, stdout: `mailbag ${pkg.version}\n` });
    const h = await runBin(MAILBAG_BIN, ['--help'], '');
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/^ {2}enqueue +queue a message/m);
    expect(h.stdout).toMatch(/^ {2}status +jobs and bytes queued/m);
  });

  it.skipIf(existsSync('/etc/mailbag/mailbag.toml'))('without any configuration the spool is the checkout\'s spool/', async () => {
    site = makeSite();
    const r = await runBin(MAILBAG_BIN, ['status', '--json'], '');
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { spool: string }).spool).toBe(join(repoRoot, 'spool'));
  });
});

// sync, serve and dispatch run from their bundle (mailbag-session.*.code.cjs): the command
// line is split as main.ts splits it, leading --config options included
describe('the session commands through mailbag.js and their bundle', () => {
  it.each([['sync', /^usage: mailbag sync PEER/], ['dispatch', /^usage: mailbag dispatch/]])('%s --help prints its usage and exits 0', async (cmd, usage) => {
    site = makeSite();
    const r = await runBin(MAILBAG_BIN, [cmd, '--help'], '');
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(usage);
  });

  it('serve --help prints its usage on stderr (stdout carries only frames)', async () => {
    site = makeSite();
    const r = await runBin(MAILBAG_BIN, ['serve', '--help'], '');
    expect(r).toMatchObject({ code: 0, stdout: '' });
    expect(r.stderr).toMatch(/^usage: mailbag serve --peer NAME/);
  });

  it('mailbag --config=FILE serve --peer NAME: the leading option reaches serve (an unknown peer: 75 and how to add it)', async () => {
    site = makeSite();
    const r = await runBin(MAILBAG_BIN, [`--config=${site.config}`, 'serve', '--peer', 'stranger', '--no-run'], '');
    expect(r.code).toBe(75);
    expect(r.stderr).toBe(`4.3.5 mailbag: unknown peer "stranger": add a [peers.stranger] section to ${site.config}\n`);
  });

  it('mailbag --config FILE sync without a peer: 64 (sync answers an operator, not an MTA), which peer', async () => {
    site = makeSite();
    const r = await runBin(MAILBAG_BIN, ['--config', site.config, 'sync'], '');
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(/^4\.3\.5 mailbag sync: which peer\?/);
  });
});
