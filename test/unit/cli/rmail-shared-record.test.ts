// Two identical rmail jobs (the same sender, recipients and bytes) share one progress
// record: its KEY is the hash of all three. A job that settles must not remove a record it
// found already there: the other job's pending retry relies on it, and would send the
// recipients it accepted the message again (the same defect as rsmtp's, 7c6999f).
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

it("an identical job that settles keeps the record the other job's retry relies on", async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-rmail-shared-'));
  let deferB = true;
  srv = await smtpSink((rcpt) => (rcpt === 'b@y.example' && deferB ? [450, '4.2.0 busy'] : undefined));
  const { port, got } = srv;
  const config = join(dir, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${join(dir, 'spool')}"\n[delivery]\nmethod = "smtp"\nsmtp = "127.0.0.1:${port}"\n`);
  await Spool.open(join(dir, 'spool'), { create: true });
  const input = 'From alice@hub.example  Sun Nov 22 04:10:00 2026\nSubject: t\n\nhello\n';
  const call = async (): Promise<number> =>
    rmail(['--config', config, 'a@y.example', 'b@y.example'], { stdin: Readable.from([Buffer.from(input)]), stdout: new PassThrough(), stderr: new PassThrough(), env: process.env, cwd: dir!, isTTY: false })
      .catch((e: unknown) => (e as { exitCode?: number }).exitCode ?? 75);
  const sentTo = (rcpt: string): number => got.filter((g) => g.to.includes(rcpt)).length;
  // job 1: a@ accepted, b@ deferred: its caller will retry it
  expect(await call()).toBe(75);
  expect(sentTo('a@y.example')).toBe(1);
  // job 2, the same bytes: a@ found accepted, b@ accepted now, 0
  deferB = false;
  expect(await call()).toBe(0);
  // job 1's retry: a@ is still recorded, so it gets nothing again
  expect(await call()).toBe(0);
  expect(sentTo('a@y.example')).toBe(1);
  expect(sentTo('b@y.example')).toBe(2);
  // the record found stays (ledger_retention prunes it)
  expect(readdirSync(join(dir, 'spool', 'run', 'rmail-stdin'))).toHaveLength(1);
});

it('a job that finds no record removes the one it made when it settles', async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-rmail-shared-'));
  srv = await smtpSink(() => undefined);
  const { port, got } = srv;
  const config = join(dir, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${join(dir, 'spool')}"\n[delivery]\nmethod = "smtp"\nsmtp = "127.0.0.1:${port}"\n`);
  await Spool.open(join(dir, 'spool'), { create: true });
  const input = 'From alice@hub.example  Sun Nov 22 04:10:00 2026\nSubject: t\n\nhello\n';
  expect(await rmail(['--config', config, 'a@y.example'], { stdin: Readable.from([Buffer.from(input)]), stdout: new PassThrough(), stderr: new PassThrough(), env: process.env, cwd: dir, isTTY: false })).toBe(0);
  expect(got).toHaveLength(1);
  expect(readdirSync(join(dir, 'spool', 'run', 'rmail-stdin'))).toEqual([]);
});
