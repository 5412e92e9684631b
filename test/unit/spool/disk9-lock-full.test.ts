// Taking a lock on a full spool (a real tmpfs, filled): the lock's tmp file is made (an
// inode is free) but its content is refused (ENOSPC). The error is 4.3.1 spool full, exit
// 75, and the tmp file is removed at once; it used to stay in tmp/ until the next start
// of a command cleaned it (seen with `mailbag retry` on a full 8 MB ext4 image). Seen
// failing before the fix (tmp/ held PID.1.XXXXXXXX.lock).

import { mkdtempSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SpoolError } from '../../../lib/errors.js';
import { Spool } from '../../../lib/spool/index.js';
import { canMount, mountTmpfs, unmount } from './mount.js';

const mounted = canMount('disk9 a lock on a full spool');
let dir: string | undefined;
let mnt: string | undefined;
beforeAll(() => {
  if (!mounted) return;
  dir = mkdtempSync(join(tmpdir(), 'mailbag-disk9-lock-'));
  mnt = join(dir, 'mnt');
  mountTmpfs(mnt, '64k');
});
afterAll(() => {
  if (mnt) unmount(mnt);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it.skipIf(!mounted)('a full disk: SpoolError spool-full, nothing left in tmp/ or locks/; the lock is taken once there is room', async () => {
  const spool = await Spool.open(join(mnt!, 'spool'), { create: true });
  const filler = join(mnt!, 'filler');
  let size = 0;
  try {
    for (;;) {
      size += 4096;
      writeFileSync(filler, Buffer.alloc(size));
    }
  } catch {
    // full
  }
  const err = await spool.lock('runner.hub').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(SpoolError);
  expect((err as SpoolError).code).toBe('spool-full');
  expect((err as SpoolError).exitCode).toBe(75);
  expect(readdirSync(spool.tmpDir)).toEqual([]);
  expect(readdirSync(spool.path('locks'))).toEqual([]);
  unlinkSync(filler);
  const lock = await spool.lock('runner.hub');
  expect(readdirSync(spool.path('locks'))).toEqual(['runner.hub.lock']);
  await lock.release();
});
