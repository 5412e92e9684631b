// The standalone rmail with delivery.method = "smtp" and its spool on a full file system
// (a real tmpfs, filled). When the MTA accepts one recipient and defers another, rmail
// keeps the accepted ones in run/rmail-stdin/ so that the caller's retry (uuxqt runs the
// same job again) does not send them the message twice. That record was written only
// after the hand-over: on a full spool it failed, exit 75, and every retry sent the
// message again to the recipient accepted, for as long as the disk stayed full. Now the
// record is taken before the MTA gets anything: nothing is sent while it cannot be kept,
// and once there is room each recipient gets the message exactly once (disk9's R1, the
// rmail half; seen failing before: a@y three times).
// Two states: full to the last page (the copy of the message in SPOOL/tmp/ fails
// first), and one page free (the copy fits, the record does not).

import { mkdtempSync, readdirSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { main as rmail } from '../../lib/cli/rmail.js';
import { asMailbagError } from '../../lib/errors.js';
import { Spool } from '../../lib/spool/index.js';
import { smtpSink, type SmtpSink } from '../helpers/smtp-sink.js';
import { canMount, fillUp, mountTmpfs, unmount } from '../unit/spool/mount.js';

const mounted = canMount('fixes9 rmail on a full spool');
let dir: string | undefined;
let mnt: string | undefined;
let srv: SmtpSink | undefined;

beforeAll(() => {
  if (!mounted) return;
  dir = mkdtempSync(join(tmpdir(), 'mailbag-fixes9-rmail-full-'));
  mnt = join(dir, 'mnt');
  mountTmpfs(mnt, '128k');
});
afterAll(async () => {
  await srv?.close();
  if (mnt) unmount(mnt);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it.skipIf(!mounted)('a full spool: nothing sent while the accepted ones cannot be kept; each recipient once after', async () => {
  let deferB = true;
  srv = await smtpSink((rcpt) => (rcpt === 'b@y.example' && deferB ? [450, '4.2.0 busy'] : undefined));
  const { port } = srv;
  const got = (): string[][] => srv!.got.map((g) => g.to);
  const spoolDir = join(mnt!, 'spool');
  const config = join(dir!, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${spoolDir}"\n[delivery]\nmethod = "smtp"\nsmtp = "127.0.0.1:${port}"\n`);
  await Spool.open(spoolDir, { create: true });
  const filler = fillUp(mnt!);
  const input = 'From alice@hub.example  Sun Nov 22 04:10:00 2026\nSubject: t\n\nhello\n';
  const call = async (): Promise<{ code: number; err: string }> => {
    const io = { stdin: Readable.from([Buffer.from(input)]), stdout: new PassThrough(), stderr: new PassThrough(), env: process.env, cwd: dir!, isTTY: false };
    try {
      return { code: await rmail(['--config', config, 'a@y.example', 'b@y.example'], io), err: '' };
    } catch (e) {
      return { code: asMailbagError(e).exitCode, err: (e as Error).message };
    }
  };
  for (let i = 0; i < 3; i++) {
    const r = await call();
    expect(r.code).toBe(75);
    expect(r.err).toMatch(/spool full|no space/i);
  }
  // before: a@y got it once per retry
  expect(got()).toEqual([]);
  // one page free: the copy of the message (SPOOL/tmp/) fits, the record does not
  truncateSync(filler, statSync(filler).size - 4096);
  for (let i = 0; i < 3; i++) {
    const r = await call();
    expect(r.code).toBe(75);
    expect(r.err).toMatch(/spool full|no space/i);
  }
  expect(got()).toEqual([]);
  unlinkSync(filler);
  expect((await call()).code).toBe(75); // a@y accepted, b@y deferred: kept
  expect(got()).toEqual([['a@y.example']]);
  deferB = false;
  expect((await call()).code).toBe(0);
  expect(got()).toEqual([['a@y.example'], ['b@y.example']]);
  // the retry found the record: it stays for an identical job's retry (rmail-shared-record)
  expect(readdirSync(join(spoolDir, 'run', 'rmail-stdin'))).toHaveLength(1);
});
