// The standalone rmail with delivery.method = "smtp": one recipient accepted, another
// deferred (450), exit 75, and the caller (uuxqt) runs the same job again: the recipient
// accepted the first time does not get the message twice (what was accepted is kept in
// the spool, as rsmtp keeps its progress), and the deferred one gets it once.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, expect, it } from 'vitest';
import { main as rmail } from '../../../lib/cli/rmail.js';
import { Spool } from '../../../lib/spool/index.js';
import { smtpSink, type SmtpSink } from '../../helpers/smtp-sink.js';

let dir: string | undefined;
let srv: SmtpSink | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

it('a recipient accepted before a 450 for another is not sent the message again by the retry', async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-rmail-partial-'));
  let deferB = true;
  srv = await smtpSink((rcpt) => (rcpt === 'b@y.example' && deferB ? [450, '4.2.0 busy'] : undefined));
  const { port } = srv;
  const { got } = srv;
  const config = join(dir, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${join(dir, 'spool')}"\n[delivery]\nmethod = "smtp"\nsmtp = "127.0.0.1:${port}"\n`);
  await Spool.open(join(dir, 'spool'), { create: true });
  const input = 'From alice@hub.example  Sun Nov 22 04:10:00 2026\nSubject: t\n\nhello\n';
  const call = async (): Promise<number> => {
    const d = dir!;
    return rmail(['--config', config, 'a@y.example', 'b@y.example'], { stdin: Readable.from([Buffer.from(input)]), stdout: new PassThrough(), stderr: new PassThrough(), env: process.env, cwd: d, isTTY: false }).catch((e: unknown) => (e as { exitCode?: number }).exitCode ?? 75);
  };
  expect(await call()).toBe(75);
  expect(got.map((g) => g.to)).toEqual([['a@y.example']]);
  deferB = false;
  expect(await call()).toBe(0);
  expect(got.map((g) => g.to)).toEqual([['a@y.example'], ['b@y.example']]);
  // settled by a retry that found the record: it stays (an identical job's retry may rely
  // on it, rmail-shared-record), pruned after ledger_retention
  expect(readdirSync(join(dir, 'spool', 'run', 'rmail-stdin'))).toHaveLength(1);
});

it('a recipient accepted, another refused for good, and the notice deferred (75): the retry sends the accepted one nothing again', async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-rmail-partial-'));
  let deferNotice = true;
  srv = await smtpSink((rcpt, from) => {
    if (rcpt === 'b@y.example') return [550, '5.1.1 no such user'];
    // the notice (null sender, to the message's sender): deferred the first time
    return from === '' && deferNotice ? [450, '4.2.0 busy'] : undefined;
  });
  const { port, got } = srv;
  const config = join(dir, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${join(dir, 'spool')}"\n[delivery]\nmethod = "smtp"\nsmtp = "127.0.0.1:${port}"\n`);
  await Spool.open(join(dir, 'spool'), { create: true });
  const input = 'From alice@hub.example  Sun Nov 22 04:10:00 2026\nSubject: t\n\nhello\n';
  const call = async (): Promise<number> => {
    const d = dir!;
    return rmail(['--config', config, 'a@y.example', 'b@y.example'], { stdin: Readable.from([Buffer.from(input)]), stdout: new PassThrough(), stderr: new PassThrough(), env: process.env, cwd: d, isTTY: false }).catch((e: unknown) => (e as { exitCode?: number }).exitCode ?? 75);
  };
  expect(await call()).toBe(75);
  expect(got).toEqual([{ from: 'alice@hub.example', to: ['a@y.example'] }]);
  deferNotice = false;
  expect(await call()).toBe(0);
  // the retry: b@ refused again, its notice sent now; a@ nothing more
  expect(got).toEqual([{ from: 'alice@hub.example', to: ['a@y.example'] }, { from: '', to: ['alice@hub.example'] }]);
  expect(readdirSync(join(dir, 'spool', 'run', 'rmail-stdin'))).toHaveLength(1);
});
