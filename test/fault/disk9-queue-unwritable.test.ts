// `mailbag run` on a queue it may read but not write: in/PEER made unchangeable
// (chattr +i on a real ext4 image: even root may not remove a name there), as a queue of
// another user is for the mailbag user (in/PEER left by an old version's run as root).
// Each job was handed to the MTA, then its removal failed, and the next run handed it
// over again: one more copy per run for as long as it lasted. Now the runner checks that
// it can remove what it delivers before it delivers: nothing handed over, 4.3.0, exit 75;
// once the queue is writable again each job reaches the MTA exactly once. Seen failing
// before the fix (two runs: every job handed over twice).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { main as runMain } from '../../lib/cli/run-jobs.js';
import { failureLine } from '../../lib/cli/run.js';
import { asMailbagError } from '../../lib/errors.js';
import { newJobId } from '../../lib/job/index.js';
import { Spool } from '../../lib/spool/index.js';
import { underCI } from '../helpers/need.js';
import { FAKE_SENDMAIL } from '../unit/runner/helpers.js';

const tools = ['/usr/sbin/mkfs.ext4', '/usr/bin/chattr'].every((p) => existsSync(p) || existsSync(p.replace('/usr', '')));
const root = process.getuid?.() === 0;
const can = root && tools;
if (!can) {
  const line = `disk9 queue unwritable: needs root, mkfs.ext4 and chattr (a loop-mounted ext4 image; uid ${process.getuid?.()}, tools ${tools})`;
  if (underCI) throw new Error(`under CI this test must run: ${line}`);
  process.stderr.write(`SKIP ${line}\n`);
}

let dir: string | undefined;
let mnt: string | undefined;
let queue: string | undefined;
beforeAll(() => {
  if (!can) return;
  dir = mkdtempSync(join(tmpdir(), 'mailbag-disk9-queue-'));
  const img = join(dir, 'fs.img');
  execFileSync('truncate', ['-s', '8M', img]);
  execFileSync('mkfs.ext4', ['-q', '-F', '-O', '^has_journal', img], { stdio: 'pipe', timeout: 30_000 });
  mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  execFileSync('mount', ['-o', 'loop', img, mnt], { stdio: 'pipe', timeout: 30_000 });
}, 60_000);
afterAll(() => {
  if (queue) execFileSync('chattr', ['-i', queue], { stdio: 'pipe' });
  if (mnt) execFileSync('umount', [mnt], { stdio: 'pipe', timeout: 30_000 });
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it.skipIf(!can)('a queue the runner cannot remove jobs from: nothing handed over, 4.3.0, exit 75; each job once when writable again', async () => {
  const calls = join(dir!, 'calls');
  mkdirSync(calls);
  const spoolDir = join(mnt!, 'spool');
  const config = join(dir!, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${spoolDir}"\n[delivery]\nsendmail = "${FAKE_SENDMAIL}"\nmta = "postfix"\nconcurrency = 1\n[peers.hub]\n`);
  const spool = await Spool.open(spoolDir, { create: true });
  for (const rcpt of ['a@y.example', 'b@y.example']) {
    const header = { id: newJobId(), from: 'hub', to: 'home', created: new Date().toISOString(), command: 'rmail', args: [rcpt], sender: 's@x.example', recipients: [rcpt] };
    await spool.writeJob('in', 'hub', header, Buffer.from('From s  Sun Nov 22 04:10:00 2026 remote from hub\nSubject: t\n\nbody\n'));
  }
  queue = spool.path('in', 'hub');
  execFileSync('chattr', ['+i', queue], { stdio: 'pipe' });
  const env = { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0' };
  const run = async (): Promise<{ code: number; stderr: string }> => {
    const err = new PassThrough();
    const e: Buffer[] = [];
    err.on('data', (c: Buffer) => e.push(c));
    try {
      const code = await runMain(['--config', config], { stdin: Readable.from([]), stdout: new PassThrough(), stderr: err, env, cwd: dir!, isTTY: false });
      return { code, stderr: Buffer.concat(e).toString() };
    } catch (thrown) {
      return { code: asMailbagError(thrown).exitCode, stderr: Buffer.concat(e).toString() + failureLine(thrown) };
    }
  };
  const handed = (): number => readdirSync(calls).filter((n) => n.endsWith('.argv')).length;
  for (let i = 0; i < 2; i++) {
    const r = await run();
    expect(r.code).toBe(75);
    expect(r.stderr).toMatch(/^4\.3\.0 .*hub.*(not writable|EPERM)/m);
  }
  expect(handed()).toBe(0);
  execFileSync('chattr', ['-i', queue], { stdio: 'pipe' });
  queue = undefined;
  expect((await run()).code).toBe(0);
  expect(handed()).toBe(2);
  expect(readdirSync(spool.path('in', 'hub'))).toEqual([]);
}, 60_000);
