// A full disk, a read-only spool and a second file system inside the spool, made with
// real mounts (we are root on the test machines; see ./mount.ts for the skip rule).

import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SpoolError } from '../../../lib/errors.js';
import { newJobId, type JobHeader } from '../../../lib/job/index.js';
import { Spool } from '../../../lib/spool/index.js';
import { canMount, mountTmpfs, remountReadOnly, unmount } from './mount.js';

const mounts = canMount('spool file-system tests');
let dir: string;
const mounted: string[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-spool-fs-'));
});
afterEach(() => {
  while (mounted.length) unmount(mounted.pop()!);
  rmSync(dir, { recursive: true, force: true });
});

function header(): JobHeader {
  return { id: newJobId(), from: 'home', to: 'hub', created: new Date().toISOString(), command: 'rmail', args: ['a@x'], sender: 'b@y', recipients: ['a@x'] };
}

function mount(path: string, size: string): void {
  mountTmpfs(path, size);
  mounted.push(path);
}

describe.runIf(mounts)('spool on real file systems', () => {
  it('a full disk gives SpoolError spool-full (4.3.1, exit 75) and leaves nothing behind', async () => {
    const root = join(dir, 'spool');
    mount(root, '64k');
    const spool = await Spool.open(root, { create: true });
    const chunks = Array.from({ length: 64 }, () => Buffer.alloc(8192, 0x61)); // 512 KiB
    const err = await spool.writeJob('out', 'hub', header(), Readable.from(chunks)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpoolError);
    expect(err).toMatchObject({ code: 'spool-full', status: '4.3.1', exitCode: 75, temporary: true });
    expect((err as Error).message).toMatch(/spool full/);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
    expect(readdirSync(join(root, 'out', 'hub'))).toEqual([]);
    // the space came back: a small job fits again
    await spool.writeJob('out', 'hub', header(), Buffer.from('small'));
    expect((await spool.listJobs('out', 'hub')).length).toBe(1);
  });

  it('a read-only spool gives SpoolError (4.3.0, exit 75) and leaves nothing behind', async () => {
    const root = join(dir, 'spool');
    mount(root, '1m');
    const spool = await Spool.open(root, { create: true });
    await spool.ensureDir('out', 'hub');
    remountReadOnly(root);
    const err = await spool.writeJob('out', 'hub', header(), Buffer.from('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpoolError);
    expect(err).toMatchObject({ code: 'spool', status: '4.3.0', exitCode: 75, temporary: true });
    expect((err as Error).message).toMatch(/spool not writable/);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
    expect(readdirSync(join(root, 'out', 'hub'))).toEqual([]);
    // opening it again (cleanup, directory checks) is fine while nothing must be made
    await Spool.open(root);
  });

  it('refuses a spool directory on another file system, naming it', async () => {
    const root = join(dir, 'spool');
    await Spool.open(root, { create: true });
    mkdirSync(join(root, 'out', 'hub'));
    mount(join(root, 'out', 'hub'), '64k');
    const err = await Spool.open(root).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpoolError);
    expect((err as Error).message).toMatch(/out\/hub is on another file system than the spool root/);
    // a front door leaves the check to link(2), which refuses to cross a mount (EXDEV):
    // its job is refused with Spool.open's words, and nothing is left behind
    const front = await Spool.openForQueue(root, 'out', 'hub');
    await expect(front.writeJobSync('out', 'hub', header(), [Buffer.from('x')])).rejects.toThrow(/out\/hub is on another file system than the spool root/);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
    expect(readdirSync(join(root, 'out', 'hub'))).toEqual([]);
    unmount(mounted.pop()!);
    mount(join(root, 'tmp'), '64k');
    await expect(Spool.open(root)).rejects.toThrow(/spool\/tmp is on another file system/);
    const front2 = await Spool.openForQueue(root, 'out', 'hub');
    await expect(front2.writeJobSync('out', 'hub', header(), [Buffer.from('x')])).rejects.toThrow(/spool\/tmp is on another file system/);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
    unmount(mounted.pop()!);
    // the session's directories too (bags/in/PEER holds partial bags)
    mkdirSync(join(root, 'bags', 'in', 'hub'), { recursive: true });
    await Spool.open(root);
    mount(join(root, 'bags', 'in', 'hub'), '64k');
    await expect(Spool.open(root)).rejects.toThrow(/bags\/in\/hub is on another file system/);
  });
});
