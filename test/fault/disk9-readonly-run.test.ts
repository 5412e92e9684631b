// `mailbag run` on a spool that becomes read-only while it delivers (a real tmpfs
// remounted ro by the sendmail itself, as a file system does after an I/O error:
// errors=remount-ro). The MTA took the mail; removing the job then fails with EROFS.
// That used to be counted as an ordinary retry, "unexpected error: EROFS …", and the run
// exited 0: cron or a systemd timer saw success while every job stayed in in/ (and was
// handed over again at the next run). Now it is a failure of the run: 4.3.0 naming the
// read-only file system, exit 75. Seen failing before the fix (exit 0).

import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { main as runMain } from '../../lib/cli/run-jobs.js';
import { failureLine } from '../../lib/cli/run.js';
import { asMailbagError } from '../../lib/errors.js';
import { newJobId } from '../../lib/job/index.js';
import { Spool } from '../../lib/spool/index.js';
import { canMount, mountTmpfs, unmount } from '../unit/spool/mount.js';

const mounted = canMount('disk9 mailbag run on a spool remounted read-only');
let dir: string | undefined;
let mnt: string | undefined;

beforeAll(() => {
  if (!mounted) return;
  dir = mkdtempSync(join(tmpdir(), 'mailbag-disk9-ro-'));
  mnt = join(dir, 'mnt');
  mountTmpfs(mnt, '1m');
});
afterAll(() => {
  if (mnt) unmount(mnt);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it.skipIf(!mounted)('the spool turns read-only during the hand-over: exit 75 and a 4.3.0 line, not exit 0', async () => {
  const spoolDir = join(mnt!, 'spool');
  const handed = join(dir!, 'handed');
  mkdirSync(handed);
  // sendmail takes the message, then the file system under the spool goes read-only
  const sendmail = join(dir!, 'sendmail');
  writeFileSync(sendmail, `#!/bin/sh\n[ "$1" = "-bV" ] && exit 64\ncat > "${handed}/$$"\nmount -o remount,ro "${mnt}" || exit 71\nexit 0\n`);
  chmodSync(sendmail, 0o755);
  const config = join(dir!, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${spoolDir}"\n[delivery]\nsendmail = "${sendmail}"\nmta = "postfix"\nconcurrency = 1\n[peers.hub]\n`);
  const spool = await Spool.open(spoolDir, { create: true });
  const header = { id: newJobId(), from: 'hub', to: 'home', created: new Date().toISOString(), command: 'rmail', args: ['r@y.example'], sender: 'a@x.example', recipients: ['r@y.example'] };
  await spool.writeJob('in', 'hub', header, Buffer.from('From a  Sun Nov 22 04:10:00 2026 remote from hub\nSubject: t\n\nbody\n'));

  const err = new PassThrough();
  const e: Buffer[] = [];
  err.on('data', (c: Buffer) => e.push(c));
  let code: number;
  let line = '';
  try {
    code = await runMain(['--config', config], { stdin: Readable.from([]), stdout: new PassThrough(), stderr: err, env: process.env, cwd: dir!, isTTY: false });
  } catch (thrown) {
    code = asMailbagError(thrown).exitCode;
    line = failureLine(thrown);
  }
  const stderr = Buffer.concat(e).toString() + line;
  expect(code).toBe(75);
  expect(stderr).toMatch(/^4\.3\.0 .*hub: 1 job\(s\) could not be run .*read-only file system/m);
});
