// The standalone rmail (delivery.method = "smtp") when the spool's file system fills
// *during* the hand-over: the MTA accepted one recipient and deferred another, and the
// record of the accepted one (what the caller's retry reads to skip it) then met ENOSPC.
// rmail exited 75 with it unrecorded, and the retry, once there was room, sent the
// message to that recipient again. Here the SMTP server fills the real tmpfs as it is
// asked for the deferred recipient: the named point between rmail's record before the
// hand-over and the one after.

import { mkdtempSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { main as rmail } from '../../lib/cli/rmail.js';
import { asMailbagError } from '../../lib/errors.js';
import { Spool } from '../../lib/spool/index.js';
import { smtpSink, type SmtpSink } from '../helpers/smtp-sink.js';
import { canMount, fillUp, mountTmpfs, unmount } from '../unit/spool/mount.js';

const mounted = canMount('fixes10 rmail, a spool that fills during the hand-over');
let dir: string | undefined;
let mnt: string | undefined;
let srv: SmtpSink | undefined;

beforeAll(() => {
  if (!mounted) return;
  dir = mkdtempSync(join(tmpdir(), 'mailbag-fixes10-rmail-fills-'));
  mnt = join(dir, 'mnt');
  mountTmpfs(mnt, '256k');
});
afterAll(async () => {
  await srv?.close();
  if (mnt) unmount(mnt);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it.skipIf(!mounted)('a disk that fills while the MTA has the message: the accepted recipient is recorded all the same and gets it once', async () => {
  let deferB = true;
  let fillNow = true;
  srv = await smtpSink((rcpt) => {
    if (rcpt !== 'b@y.example' || !deferB) return undefined;
    if (fillNow) {
      fillNow = false;
      fillUp(mnt!);
    }
    return [450, '4.2.0 busy'];
  });
  const { port } = srv;
  const got = (): string[][] => srv!.got.map((g) => g.to);
  const spoolDir = join(mnt!, 'spool');
  const config = join(dir!, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${spoolDir}"\n[delivery]\nmethod = "smtp"\nsmtp = "127.0.0.1:${port}"\n`);
  await Spool.open(spoolDir, { create: true });
  const input = 'From alice@hub.example  Sun Nov 22 04:10:00 2026\nSubject: t\n\nhello\n';
  const call = async (): Promise<{ code: number; err: string }> => {
    const err = new PassThrough();
    const chunks: Buffer[] = [];
    err.on('data', (c: Buffer) => chunks.push(c));
    const io = { stdin: Readable.from([Buffer.from(input)]), stdout: new PassThrough(), stderr: err, env: process.env, cwd: dir!, isTTY: false };
    try {
      return { code: await rmail(['--config', config, 'a@y.example', 'b@y.example'], io), err: Buffer.concat(chunks).toString() };
    } catch (e) {
      return { code: asMailbagError(e).exitCode, err: Buffer.concat(chunks).toString() + (e as Error).message };
    }
  };
  // a@y accepted, b@y deferred, the disk full meanwhile: 75 either way
  const first = await call();
  expect(first.code).toBe(75);
  expect(first.err).toMatch(/progress kept in the room reserved for it/);
  expect(got()).toEqual([['a@y.example']]);
  // room again, b@y taken: the caller's retry sends to b@y only
  unlinkSync(join(mnt!, 'filler'));
  deferB = false;
  expect((await call()).code).toBe(0);
  expect(got()).toEqual([['a@y.example'], ['b@y.example']]);
  // the retry found the record: it stays for an identical job's retry (rmail-shared-record)
  expect(readdirSync(join(spoolDir, 'run', 'rmail-stdin'))).toHaveLength(1);
});
