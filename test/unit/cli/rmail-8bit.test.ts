// The standalone rmail delivering by SMTP declares an 8-bit message (BODY=8BITMIME, RFC
// 6152) when the server offers 8BITMIME, as the runner's rmail jobs do since c2b7fe9;
// a 7-bit one goes without. Before, rmail's own transaction carried no MAIL parameter.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, expect, it } from 'vitest';
import { main as rmail } from '../../../lib/cli/rmail.js';
import { smtpSink, type SmtpSink } from '../../helpers/smtp-sink.js';

let dir: string | undefined;
let srv: SmtpSink | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

it('rmail by SMTP: BODY=8BITMIME for an 8-bit message, none for a 7-bit one', async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-rmail-8bit-'));
  srv = await smtpSink();
  const config = join(dir, 'mailbag.toml');
  writeFileSync(config, `site = "home"\n[delivery]\nmethod = "smtp"\nsmtp = "127.0.0.1:${srv.port}"\n`);
  const head = Buffer.from('From alice@hub.example  Sun Nov 22 04:10:00 2026\nSubject: t\n\n');
  const call = (body: Buffer): Promise<number> =>
    rmail(['--config', config, 'a@y.example'], { stdin: Readable.from([Buffer.concat([head, body])]), stdout: new PassThrough(), stderr: new PassThrough(), env: process.env, cwd: dir!, isTTY: false });
  expect(await call(Buffer.from([0x63, 0x61, 0x66, 0xc3, 0xa9, 0x0a]))).toBe(0);
  expect(await call(Buffer.from('plain\n'))).toBe(0);
  expect(srv.got.map((g) => g.body)).toEqual(['8BITMIME', undefined]);
});
