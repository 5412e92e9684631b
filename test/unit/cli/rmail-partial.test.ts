// The standalone rmail with delivery.method = "smtp": one recipient accepted, another
// deferred (450), exit 75, and the caller (uuxqt) runs the same job again: the recipient
// accepted the first time does not get the message twice (what was accepted is kept in
// the spool, as rsmtp keeps its progress), and the deferred one gets it once.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, expect, it } from 'vitest';
import { SMTPServer } from 'smtp-server';
import type { AddressInfo } from 'node:net';
import { main as rmail } from '../../../lib/cli/rmail.js';
import { Spool } from '../../../lib/spool/index.js';

let dir: string | undefined;
let srv: SMTPServer | undefined;
afterEach(async () => {
  if (srv) await new Promise<void>((r) => srv!.close(() => r()));
  srv = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

it('a recipient accepted before a 450 for another is not sent the message again by the retry', async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-rmail-partial-'));
  const got: string[][] = [];
  let deferB = true;
  srv = new SMTPServer({
    authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], logger: false,
    onRcptTo(address, _s, cb) {
      if (address.address === 'b@y.example' && deferB) {
        const e = new Error('4.2.0 busy') as Error & { responseCode: number };
        e.responseCode = 450;
        cb(e);
        return;
      }
      cb();
    },
    onData(stream, session, cb) {
      stream.resume();
      stream.on('end', () => {
        got.push(session.envelope.rcptTo.map((r) => r.address));
        cb();
      });
    },
  });
  await new Promise<void>((r) => srv!.listen(0, '127.0.0.1', () => r()));
  const port = ((srv as unknown as { server: { address(): AddressInfo } }).server.address()).port;
  const config = join(dir, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${join(dir, 'spool')}"\n[delivery]\nmethod = "smtp"\nsmtp = "127.0.0.1:${port}"\n`);
  await Spool.open(join(dir, 'spool'), { create: true });
  const input = 'From alice@hub.example  Sun Nov 22 04:10:00 2026\nSubject: t\n\nhello\n';
  const call = async (): Promise<number> => {
    const d = dir!;
    return rmail(['--config', config, 'a@y.example', 'b@y.example'], { stdin: Readable.from([Buffer.from(input)]), stdout: new PassThrough(), stderr: new PassThrough(), env: process.env, cwd: d, isTTY: false }).catch((e: unknown) => (e as { exitCode?: number }).exitCode ?? 75);
  };
  expect(await call()).toBe(75);
  expect(got).toEqual([['a@y.example']]);
  deferB = false;
  expect(await call()).toBe(0);
  expect(got).toEqual([['a@y.example'], ['b@y.example']]);
  // settled: nothing kept
  expect(readdirSync(join(dir, 'spool', 'run', 'rmail-stdin'))).toEqual([]);
});

it('a recipient accepted, another refused for good, and the notice deferred (75): the retry sends the accepted one nothing again', async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-rmail-partial-'));
  const got: { from: string; to: string[] }[] = [];
  let deferNotice = true;
  srv = new SMTPServer({
    authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], logger: false,
    onRcptTo(address, session, cb) {
      const fail = (code: number, text: string): void => {
        const e = new Error(text) as Error & { responseCode: number };
        e.responseCode = code;
        cb(e);
      };
      if (address.address === 'b@y.example') return fail(550, '5.1.1 no such user');
      // the notice (null sender, to the message's sender): deferred the first time
      if (session.envelope.mailFrom && session.envelope.mailFrom.address === '' && deferNotice) return fail(450, '4.2.0 busy');
      cb();
    },
    onData(stream, session, cb) {
      stream.resume();
      stream.on('end', () => {
        got.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address) });
        cb();
      });
    },
  });
  await new Promise<void>((r) => srv!.listen(0, '127.0.0.1', () => r()));
  const port = ((srv as unknown as { server: { address(): AddressInfo } }).server.address()).port;
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
  expect(readdirSync(join(dir, 'spool', 'run', 'rmail-stdin'))).toEqual([]);
});
