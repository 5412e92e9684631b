// review10a: rsmtp's reserve (0516681, c10bf7d) against the usual way a disk fills: a
// writer that goes on writing (a runaway log, another spool user retrying). The record
// that meets ENOSPC releases the reserve (unlink) and writes again "into the room its
// removal frees" — but the freed blocks go back to the file system's pool, where the
// writer still appending takes them first. The record fails again: exit 75 with the
// transaction the MTA took unrecorded, and the caller's retry delivers it again. Real
// parts: a real tmpfs, a real process (node) appending to it without pause, SIGKILLed by
// its PID at the end; rsmtp's real code and the fake sendmail as fixes10-rsmtp-fills uses.

import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { main as rsmtp } from '../../lib/cli/rsmtp.js';
import { asMailbagError } from '../../lib/errors.js';
import { Spool } from '../../lib/spool/index.js';
import { FAKE_SENDMAIL } from '../unit/runner/helpers.js';
import { canMount, mountTmpfs, unmount } from '../unit/spool/mount.js';

const mounted = canMount('review10a rsmtp reserve, a writer that keeps writing');
let dir: string | undefined;
let mnt: string | undefined;
let writer: ChildProcess | undefined;

beforeAll(() => {
  if (!mounted) return;
  dir = mkdtempSync(join(tmpdir(), 'mailbag-review10a-race-'));
  mnt = join(dir, 'mnt');
  mountTmpfs(mnt, '256k');
});
afterAll(() => {
  if (writer?.pid && writer.exitCode === null && writer.signalCode === null) process.kill(writer.pid, 'SIGKILL');
  if (mnt) unmount(mnt);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// appends 4 KiB at a time to FILE for at most 30 s, ignoring ENOSPC; writes FULL once it first met it
const WRITER = `
const fs = require('node:fs');
const [file, full] = process.argv.slice(1);
const fd = fs.openSync(file, 'a');
const b = Buffer.alloc(4096, 120);
const end = Date.now() + 30000;
let said = false;
while (Date.now() < end) {
  try { fs.writeSync(fd, b); } catch { if (!said) { said = true; fs.writeFileSync(full, ''); } }
}
`;

// it.fails until /work/brief/req-review10a.md R1 was applied (seen failing 10 of 10 on main
// at 9effb22: a@y or b@y delivered twice); then a plain test
(mounted ? it : it.skip)('a disk filled by a writer that keeps writing while the MTA has transaction 1: nothing delivered twice (req-review10a R1)', async () => {
  const calls = join(dir!, 'calls');
  mkdirSync(calls);
  const full = join(dir!, 'full');
  const go = join(dir!, 'go');
  // the MTA: on its first call, waits (bounded) until the writer has filled the spool's file system
  const mta = join(dir!, 'sendmail');
  writeFileSync(mta, `#!/bin/sh\nif [ -e '${go}' ]; then rm -f '${go}'; i=0; while [ ! -e '${full}' ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; fi\nexec '${FAKE_SENDMAIL}' "$@"\n`);
  chmodSync(mta, 0o755);
  const spoolDir = join(mnt!, 'spool');
  const config = join(dir!, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${spoolDir}"\n[delivery]\nsendmail = "${mta}"\nmta = "sendmail"\n`);
  await Spool.open(spoolDir, { create: true });
  const batch = 'MAIL FROM:<s@x>\nRCPT TO:<a@y>\nDATA\none\n.\nMAIL FROM:<s@x>\nRCPT TO:<b@y>\nDATA\ntwo\n.\nQUIT\n';
  const call = async (): Promise<{ code: number; err: string }> => {
    const env = { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0' };
    const err = new PassThrough();
    const chunks: Buffer[] = [];
    err.on('data', (c: Buffer) => chunks.push(c));
    const io = { stdin: Readable.from([Buffer.from(batch)]), stdout: new PassThrough(), stderr: err, env, cwd: dir!, isTTY: false };
    try {
      return { code: await rsmtp(['--config', config], io), err: Buffer.concat(chunks).toString() };
    } catch (e) {
      return { code: asMailbagError(e).exitCode, err: Buffer.concat(chunks).toString() + (e as Error).message };
    }
  };
  const delivered = (): string[] =>
    readdirSync(calls)
      .filter((n) => n.endsWith('.argv'))
      .map((n) => readFileSync(join(calls, n), 'utf8').trim().split('\n').at(-1)!)
      .sort();
  // the first run: the writer starts once rsmtp has its reserve (the MTA is called after it)
  writeFileSync(go, '');
  const filler = join(mnt!, 'log');
  const started = call();
  // start the writer as soon as the reserve exists
  const tmp = join(spoolDir, 'tmp');
  for (let i = 0; i < 400 && !(existsSync(tmp) && readdirSync(tmp).some((n) => n.endsWith('.rsmtp-reserve'))); i++) await new Promise((r) => setTimeout(r, 5));
  writer = spawn(process.execPath, ['-e', WRITER, filler, full], { stdio: 'ignore' });
  const first = await started;
  // the writer is stopped (by its PID) and its file removed: the disk has room again
  process.kill(writer.pid!, 'SIGKILL');
  await new Promise((r) => (writer!.exitCode !== null || writer!.signalCode !== null ? r(undefined) : writer!.once('exit', r)));
  unlinkSync(filler);
  // the caller retries the same input until 0
  const codes = [first.code];
  for (let i = 0; i < 3 && codes.at(-1) !== 0; i++) codes.push((await call()).code);
  expect(codes.at(-1), first.err).toBe(0);
  // each transaction reached the MTA exactly once
  expect(delivered(), first.err).toEqual(['a@y', 'b@y']);
});
