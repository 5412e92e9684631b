// The standalone rmail and rsmtp as an MTA or uuxqt runs them: exit 0 only when the
// MTA took the mail, 75 for anything temporary, 64/65 for bad arguments or input, the
// MTA's permanent code when it is one checklist 14 allows (else 69), and one stderr
// line starting with an enhanced status code (lib/cli/run.ts prints it).

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main as rmail, parseRmailArgs } from '../../../lib/cli/rmail.js';
import { main as rsmtp } from '../../../lib/cli/rsmtp.js';
import { failureLine } from '../../../lib/cli/run.js';
import { asMailbagError, InputError } from '../../../lib/errors.js';
import type { CliIo } from '../../../lib/cli/io.js';
import { FAKE_SENDMAIL } from '../runner/helpers.js';
import { Spool } from '../../../lib/spool/index.js';

let dir: string;
let calls: string;
let config: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-rcli-'));
  calls = join(dir, 'calls');
  mkdirSync(calls);
  config = join(dir, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${join(dir, 'spool')}"\n[delivery]\nsendmail = "${FAKE_SENDMAIL}"\nmta = "sendmail"\n`);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function call(tool: typeof rmail, argv: string[], input: string, exits = '0'): Promise<{ code: number; line: string; stdout: string }> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const io: CliIo = { stdin: Readable.from([Buffer.from(input, 'latin1')]), stdout: out, stderr: new PassThrough(), env: { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: exits }, cwd: dir, isTTY: false };
  try {
    const code = await tool(['--config', config, ...argv], io);
    return { code, line: '', stdout: Buffer.concat(chunks).toString() };
  } catch (err) {
    return { code: asMailbagError(err).exitCode, line: failureLine(err, 'tool'), stdout: Buffer.concat(chunks).toString() };
  }
}

const argvOf = (n: number): string[] => readFileSync(join(calls, `${n}.argv`), 'utf8').split('\n').slice(0, -1);

describe('rmail', () => {
  const msg = 'Subject: x\n\nFrom the body\n';
  it('hands the message to sendmail -oi -f SENDER -- RCPT… and exits 0', async () => {
    const r = await call(rmail, ['a@y', 'b@y'], `From c!user  Sun Nov 22 04:10:00 2026\n>From x  Sun Nov 22 04:10:00 2026 remote from d\n${msg}`);
    expect(r.code).toBe(0);
    expect(argvOf(1)).toEqual(['-oi', '-f', 'c!d!x', '--', 'a@y', 'b@y']);
    expect(readFileSync(join(calls, '1.stdin'), 'utf8')).toBe(msg);
  });
  it('checklist 2 and 14: bad recipient 64, missing or overlong From_ 65, temporary 75, permanent passed on or 69', async () => {
    expect((await call(rmail, ['-x@y'], `From u  d\n${msg}`)).code).toBe(64);
    expect((await call(rmail, [], `From u  d\n${msg}`)).code).toBe(64);
    const missing = await call(rmail, ['a@y'], msg);
    expect(missing.code).toBe(65);
    expect(missing.line).toMatch(/^5\.6\.0 tool: rmail: /);
    expect((await call(rmail, ['a@y'], `From ${'u'.repeat(3000)}  d\n${msg}`)).code).toBe(65);
    const temp = await call(rmail, ['a@y'], `From u  d\n${msg}`, '75');
    expect(temp.code).toBe(75);
    expect(temp.line).toMatch(/^4\.3\.0 tool: /);
    const perm = await call(rmail, ['a@y'], `From u  d\n${msg}`, '67');
    expect(perm.code).toBe(67);
    expect(perm.line).toMatch(/^5\.1\.1 tool: \S*fake-sendmail exited 67/);
    expect((await call(rmail, ['a@y'], `From u  d\n${msg}`, '73')).code).toBe(69);
    expect((await call(rmail, ['a@y'], `From u  d\n${msg}`, '1')).code).toBe(69);
  });
  it('takes sendmail rmail options before the recipients', () => {
    expect(parseRmailArgs(['-D', 'dom', '-T', '--', '-odd@y'])).toMatchObject({ recipients: ['-odd@y'] });
    expect(parseRmailArgs(['a@y', '-b'])).toMatchObject({ recipients: ['a@y', '-b'] });
  });
});

describe('rsmtp', () => {
  const batch = 'HELO hub\nMAIL FROM:<s@x>\nRCPT TO:<a@y>\nDATA\none\n.\nMAIL FROM:<>\nRCPT TO:<b@y>\nDATA\ntwo\n.\nQUIT\n';
  it('delivers transaction by transaction, one result line each, exit 0', async () => {
    const r = await call(rsmtp, [], batch);
    expect(r.code).toBe(0);
    expect(argvOf(1)).toEqual(['-oi', '-f', 's@x', '--', 'a@y']);
    expect(argvOf(2)).toEqual(['-oi', '-f', '<>', '--', 'b@y']);
    expect(r.stdout.split('\n').filter(Boolean)).toHaveLength(2);
  });
  it('a temporary failure exits 75 and a retry of the same input skips what was accepted (progress kept in the spool)', async () => {
    await Spool.open(join(dir, 'spool'), { create: true });
    const first = await call(rsmtp, [], batch, 's@x=0,b@y=75');
    expect(first.code).toBe(75);
    const again = await call(rsmtp, [], batch, '0');
    expect(again.code).toBe(0);
    // calls: 1 (a@y ok), 2 (b@y 75), 3 (b@y ok): a@y never twice
    expect([argvOf(1).at(-1), argvOf(2).at(-1), argvOf(3).at(-1)]).toEqual(['a@y', 'b@y', 'b@y']);
  });
  it('a permanent refusal is answered with a notice (not to <>) and exit 0; a malformed batch exits 65', async () => {
    const r = await call(rsmtp, [], batch, 'a@y=67,b@y=67,0');
    expect(r.code).toBe(0);
    // a@y refused → notice to s@x with -f <>; b@y refused → sender <> → no notice
    expect(argvOf(3)).toEqual(['-oi', '-f', '<>', '--', 's@x']);
    expect((await call(rsmtp, [], 'junk\n')).code).toBe(65);
  });
});

describe('the failure line names the program once', () => {
  // req-audit #3: `printf 'x\n' | rmail` printed `5.1.3 rmail: rmail: no recipients`
  async function line(tool: typeof rmail, name: string, argv: string[], input: string): Promise<string> {
    const io: CliIo = { stdin: Readable.from([Buffer.from(input)]), stdout: new PassThrough(), stderr: new PassThrough(), env: { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0' }, cwd: dir, isTTY: false };
    try {
      await tool(['--config', config, ...argv], io);
    } catch (err) {
      return failureLine(err, name);
    }
    throw new Error('no failure');
  }
  it('rmail: a message that already begins with the program name is not prefixed again', async () => {
    expect(await line(rmail, 'rmail', [], 'x\n')).toBe('5.1.3 rmail: no recipients');
    expect(await line(rmail, 'rmail', ['a@y'], 'x\n')).toBe('5.6.0 rmail: the payload does not begin with a UUCP "From " line');
    expect(await line(rmail, 'rmail', ['-x'], 'x\n')).toBe('5.1.3 rmail: unknown option or recipient beginning with "-": "-x"');
  });
  it('any other message gets the name once, also one that only contains it', () => {
    expect(failureLine(new InputError('bad-bsmtp', 'line 1: x'), 'rsmtp')).toBe('5.5.2 rsmtp: line 1: x');
    expect(failureLine(new InputError('bad-bsmtp', 'rsmtp: x'), 'rsmtp')).toBe('5.5.2 rsmtp: x');
    expect(failureLine(new InputError('bad-bsmtp', 'rsmtpd: x'), 'rsmtp')).toBe('5.5.2 rsmtp: rsmtpd: x');
    expect(failureLine(new InputError('bad-bsmtp', 'see rsmtp: x'), 'rsmtp')).toBe('5.5.2 rsmtp: see rsmtp: x');
  });
});
