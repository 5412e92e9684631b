// review10a: rsmtp's reserve after 856ad03/f04c0d3 holds one file per transaction, but a
// transaction with a refused recipient is recorded twice after its hand-over: its result,
// then `noticed` once the failure notice went out. When the disk fills during the batch,
// the results take every file, the notice's record finds none, and the blocks a rewrite
// frees go to the writer still filling the disk: rsmtp exits 75 with the notice sent but
// not recorded, and the caller's retry sends the sender the notice again. (The runner's
// RecordReserve sizes two a transaction for this reason: recordSizes.) Real parts: a real
// 256k tmpfs filled by a process that keeps appending (as review10a-rsmtp-reserve-race),
// SIGKILLed by its PID; rsmtp's real code; the fake sendmail refusing x@y and z@y (67).

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

const mounted = canMount('review10a rsmtp, the notice record on a disk that fills');
let dir: string | undefined;
let mnt: string | undefined;
let writer: ChildProcess | undefined;

beforeAll(() => {
  if (!mounted) return;
  dir = mkdtempSync(join(tmpdir(), 'mailbag-review10a-notice-'));
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

// it.fails until /work/brief/req-review10a.md R3 was applied (seen failing 4 of 4 on main at
// a84efad: s@x noticed 3 times for 2 refusals; passes 3 of 3 with R3 on an export)
(mounted ? it : it.skip)('a disk that fills during a batch with refused recipients: its sender gets one notice each, not one more per retry (req-review10a R3)', async () => {
  const calls = join(dir!, 'calls');
  mkdirSync(calls);
  const filler = join(mnt!, 'filler');
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
  const batch = 'MAIL FROM:<s@x>\nRCPT TO:<x@y>\nDATA\none\n.\nMAIL FROM:<s@x>\nRCPT TO:<z@y>\nDATA\ntwo\n.\nQUIT\n';
  const call = async (): Promise<{ code: number; err: string }> => {
    const env = { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: 'x@y=67,z@y=67,0' };
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
  const to = (): string[] =>
    readdirSync(calls)
      .filter((n) => n.endsWith('.argv'))
      .map((n) => readFileSync(join(calls, n), 'utf8').trim().split('\n').at(-1)!)
      .sort();
  writeFileSync(go, '');
  const started = call();
  const tmp = join(spoolDir, 'tmp');
  for (let i = 0; i < 400 && !(existsSync(tmp) && readdirSync(tmp).some((n) => n.endsWith('.rsmtp-reserve'))); i++) await new Promise((r) => setTimeout(r, 5));
  writer = spawn(process.execPath, ['-e', WRITER, filler, full], { stdio: 'ignore' });
  const first = await started;
  process.kill(writer.pid!, 'SIGKILL');
  await new Promise((r) => (writer!.exitCode !== null || writer!.signalCode !== null ? r(undefined) : writer!.once('exit', r)));
  unlinkSync(filler); // room again for the caller's retry
  const codes = [first.code];
  const errs = [first.err];
  for (let i = 0; i < 3 && codes.at(-1) !== 0; i++) {
    const r = await call();
    codes.push(r.code);
    errs.push(r.err);
  }
  expect(codes.at(-1), errs.join('\n---\n')).toBe(0);
  // x@y and z@y refused once each (never offered again), s@x told once of each
  expect(to(), errs.join('\n---\n')).toEqual(['s@x', 's@x', 'x@y', 'z@y']);
});
