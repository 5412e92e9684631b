// rsmtp with its spool on a full file system (a real tmpfs, filled). rsmtp keeps its
// progress in the spool (run/rsmtp-stdin/) so that a retry of the same input skips what
// the MTA already accepted. When that record cannot be written, it must not hand mail to
// the MTA and then exit 75: the MTA retries the whole input every few minutes and each
// retry delivered the first transaction again (one copy per retry while the disk stayed
// full). Now nothing is delivered until the record can be kept: exit 75 with 4.3.1, and
// once there is room again each transaction reaches the MTA exactly once.
// Two states: full to the last page (the copy of the input in SPOOL/tmp/ fails first), and
// one page free (the copy fits, the record does not: what guards the early record).

import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { main as rsmtp } from '../../lib/cli/rsmtp.js';
import { asMailbagError } from '../../lib/errors.js';
import { Spool } from '../../lib/spool/index.js';
import { FAKE_SENDMAIL } from '../unit/runner/helpers.js';
import { canMount, fillUp, mountTmpfs, unmount } from '../unit/spool/mount.js';

const mounted = canMount('disk9 rsmtp on a full spool');
let dir: string | undefined;
let mnt: string | undefined;

beforeAll(() => {
  if (!mounted) return;
  dir = mkdtempSync(join(tmpdir(), 'mailbag-disk9-rsmtp-'));
  mnt = join(dir, 'mnt');
  mountTmpfs(mnt, '128k');
});
afterAll(() => {
  if (mnt) unmount(mnt);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it.skipIf(!mounted)('a full spool: nothing handed to the MTA while progress cannot be kept; each transaction once after', async () => {
  const calls = join(dir!, 'calls');
  mkdirSync(calls);
  const spoolDir = join(mnt!, 'spool');
  const config = join(dir!, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${spoolDir}"\n[delivery]\nsendmail = "${FAKE_SENDMAIL}"\nmta = "sendmail"\n`);
  await Spool.open(spoolDir, { create: true });
  const filler = fillUp(mnt!);
  const batch = 'MAIL FROM:<s@x>\nRCPT TO:<a@y>\nDATA\none\n.\nMAIL FROM:<s@x>\nRCPT TO:<b@y>\nDATA\ntwo\n.\n';
  const call = async (): Promise<{ code: number; err: string }> => {
    const env = { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0' };
    const io = { stdin: Readable.from([Buffer.from(batch)]), stdout: new PassThrough(), stderr: new PassThrough(), env, cwd: dir!, isTTY: false };
    try {
      return { code: await rsmtp(['--config', config], io), err: '' };
    } catch (e) {
      return { code: asMailbagError(e).exitCode, err: (e as Error).message };
    }
  };
  const delivered = (): string[] =>
    readdirSync(calls)
      .filter((n) => n.endsWith('.argv'))
      .map((n) => readFileSync(join(calls, n), 'utf8').trim().split('\n').at(-1)!)
      .sort();
  for (let i = 0; i < 3; i++) {
    const r = await call();
    expect(r.code).toBe(75);
    expect(r.err).toMatch(/spool full|no space/i);
  }
  // before: a@y once per retry (3 copies), progress never recorded
  expect(delivered()).toEqual([]);
  // one page free: the copy of the input (SPOOL/tmp/) fits, the progress record does not
  truncateSync(filler, statSync(filler).size - 4096);
  for (let i = 0; i < 3; i++) {
    const r = await call();
    expect(r.code).toBe(75);
    expect(r.err).toMatch(/spool full|no space/i);
  }
  expect(delivered()).toEqual([]);
  unlinkSync(filler);
  expect((await call()).code).toBe(0);
  expect(delivered()).toEqual(['a@y', 'b@y']);
});
