// GroupCommit: files that end together are committed in one batch (fsynced, placed,
// each directory fsynced once) and each caller learns its own fate; a failure of one
// file leaves the others alone; abort, too-big and a full disk leave nothing behind.
// The SIGKILL crash points of a batch are in test/fault/lmtp-kill.test.ts.

import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InputError, SpoolError } from '../../../lib/errors.js';
import { GroupCommit } from '../../../lib/spool/commit.js';
import { canMount, mountTmpfs, unmount } from './mount.js';

let dir: string;
let tmp: string;
let out: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-group-commit-'));
  tmp = join(dir, 'tmp');
  out = join(dir, 'out');
  mkdirSync(tmp);
  mkdirSync(out);
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('GroupCommit', () => {
  it('commits files that end in one turn of the event loop as one batch, each whole, 0600, no tmp left', async () => {
    const gc = new GroupCommit();
    const staged = await Promise.all(Array.from({ length: 12 }, async (_, i) => {
      const f = await gc.stage(join(out, `f${i}`), { tmpDir: tmp, noReplace: true, label: 'job' });
      f.write(Buffer.from(`head ${i}\n`));
      // more than the 64 KiB gathered before a write(2), in uneven pieces
      for (let k = 0; k < 20; k++) f.write(Buffer.alloc(5000 + k, 0x61 + (i % 26)));
      return f;
    }));
    expect(readdirSync(tmp)).toHaveLength(12);
    const results = await Promise.all(staged.map((f) => f.commit()));
    expect(gc.stats).toMatchObject({ batches: 1, files: 12, largest: 12 });
    expect(gc.stats.waitMs).toBeGreaterThan(0);
    results.forEach((r, i) => {
      const body = readFileSync(join(out, `f${i}`));
      expect(r).toEqual({ path: join(out, `f${i}`), size: body.length });
      expect(body.subarray(0, `head ${i}\n`.length).toString()).toBe(`head ${i}\n`);
      expect(body.length).toBe(`head ${i}\n`.length + 20 * 5000 + 190);
      expect(statSync(join(out, `f${i}`)).mode & 0o777).toBe(0o600);
    });
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('files that end while a batch is on its way to disk form the next batch; every caller is answered', async () => {
    const gc = new GroupCommit();
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map(async (name) => {
      const f = await gc.stage(join(out, name), { tmpDir: tmp, noReplace: true });
      f.write(Buffer.from(name));
      return f;
    }));
    const first = a!.commit();
    // once the first batch has started (the committer waits one turn of the loop first)
    for (let i = 0; i < 1000 && gc.stats.batches === 0; i++) await new Promise((r) => setImmediate(r));
    expect(gc.stats.batches).toBe(1);
    const later = [b!.commit(), c!.commit()];
    await Promise.all([first, ...later]);
    expect(gc.stats.files).toBe(3);
    expect(gc.stats.batches).toBe(2);
    expect(readdirSync(out).sort()).toEqual(['a', 'b', 'c']);
    expect(readFileSync(join(out, 'c'), 'latin1')).toBe('c');
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('one file that cannot be placed fails alone (SpoolError); the others in its batch are committed', async () => {
    const gc = new GroupCommit();
    writeFileSync(join(out, 'taken'), 'earlier');
    const names = ['x', 'taken', 'y'];
    const staged = await Promise.all(names.map(async (n) => {
      const f = await gc.stage(join(out, n), { tmpDir: tmp, noReplace: true });
      f.write(Buffer.from(`new ${n}`));
      return f;
    }));
    // committed in one turn of the event loop: one batch
    const settled = await Promise.allSettled(staged.map((f) => f.commit()));
    expect(gc.stats.batches).toBe(1);
    expect(settled[0]!.status).toBe('fulfilled');
    expect(settled[2]!.status).toBe('fulfilled');
    expect(settled[1]!.status).toBe('rejected');
    const err = (settled[1] as PromiseRejectedResult).reason as SpoolError;
    expect(err).toBeInstanceOf(SpoolError);
    expect(err.message).toMatch(/taken already exists/);
    // noReplace: the file that was there is untouched
    expect(readFileSync(join(out, 'taken'), 'latin1')).toBe('earlier');
    expect(readFileSync(join(out, 'y'), 'latin1')).toBe('new y');
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('a destination directory that went away fails that file with a temporary SpoolError and leaves nothing', async () => {
    const gc = new GroupCommit();
    const f = await gc.stage(join(dir, 'gone', 'f'), { tmpDir: tmp, noReplace: true });
    f.write(Buffer.from('data'));
    const err = await f.commit().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpoolError);
    expect(err).toMatchObject({ temporary: true, exitCode: 75 });
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('abort removes the tmp file; writing past maxSize throws InputError too-big and removes it', async () => {
    const gc = new GroupCommit();
    const a = await gc.stage(join(out, 'a'), { tmpDir: tmp });
    a.write(Buffer.from('partial'));
    a.abort();
    a.abort(); // twice is harmless
    expect(() => a.write(Buffer.from('more'))).toThrow(/write after abort/);
    await expect(a.commit()).rejects.toThrow(/commit after abort/);

    const b = await gc.stage(join(out, 'b'), { tmpDir: tmp, maxSize: 10 });
    b.write(Buffer.from('0123456789'));
    let thrown: unknown;
    try {
      b.write(Buffer.from('x'));
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(InputError);
    expect(thrown).toMatchObject({ code: 'too-big' });
    b.abort();
    expect(readdirSync(tmp)).toEqual([]);
    expect(readdirSync(out)).toEqual([]);
    expect(gc.stats.batches).toBe(0);
  });

  it('a second commit of one file is refused', async () => {
    const gc = new GroupCommit();
    const f = await gc.stage(join(out, 'once'), { tmpDir: tmp, noReplace: true });
    f.write(Buffer.from('x'));
    const first = f.commit();
    await expect(f.commit()).rejects.toThrow(/commit after commit/);
    await first;
    expect(existsSync(join(out, 'once'))).toBe(true);
  });
});

describe.runIf(canMount('group commit on a full disk'))('GroupCommit on a full disk', () => {
  it('ENOSPC while writing is SpoolError spool-full (4.3.1) and nothing is left behind', async () => {
    const root = join(dir, 'small');
    mountTmpfs(root, '64k');
    try {
      mkdirSync(join(root, 'tmp'));
      mkdirSync(join(root, 'out'));
      const gc = new GroupCommit();
      const f = await gc.stage(join(root, 'out', 'big'), { tmpDir: join(root, 'tmp') });
      let thrown: unknown;
      try {
        for (let i = 0; i < 64; i++) f.write(Buffer.alloc(8192, 0x61)); // 512 KiB
        await f.commit();
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(SpoolError);
      expect(thrown).toMatchObject({ code: 'spool-full', status: '4.3.1', exitCode: 75 });
      expect(readdirSync(join(root, 'tmp'))).toEqual([]);
      expect(readdirSync(join(root, 'out'))).toEqual([]);
    } finally {
      unmount(root);
    }
  });
});
