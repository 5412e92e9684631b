// The journal's flushes and the write-out's batches are done on the event loop while
// they are fast (tmpfs, a disk with a power-safe cache: the pool's hand-overs would cost
// more) and through libuv's pool otherwise (lib/lmtp/journal.ts, SyncGate). A failure on
// the event loop is the same failure as through the pool: no 250 for that batch.

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Spool as SpoolT } from '../../../lib/spool/spool.js';

const ctl = vi.hoisted(() => ({ failSync: 0 }));

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const fdatasyncSync = (fd: number): void => {
    if (ctl.failSync > 0) {
      ctl.failSync--;
      throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', errno: -5, syscall: 'fdatasync' });
    }
    fs.fdatasyncSync(fd);
  };
  return { ...fs, default: { ...fs, fdatasyncSync }, fdatasyncSync };
});

const { LmtpJournal, SyncGate } = await import('../../../lib/lmtp/journal.js');
const { SpoolJobStore } = await import('../../../lib/lmtp/spool-store.js');
const { GroupCommit } = await import('../../../lib/spool/commit.js');
const { Spool } = await import('../../../lib/spool/spool.js');

describe('SyncGate', () => {
  it('stays on the event loop while calls are fast, and a lone slow one (a busy machine) does not move it', () => {
    const g = new SyncGate(0.25);
    for (let i = 0; i < 20; i++) {
      expect(g.onLoop()).toBe(true);
      g.took(i % 5 === 0 ? 30 : 0.05);
    }
    expect(g.async).toBe(0);
  });

  it('goes through the pool once the fastest of the last four is too slow, and looks again after 256', () => {
    const g = new SyncGate(0.25);
    for (let i = 0; i < 4; i++) {
      expect(g.onLoop()).toBe(true);
      g.took(3);
    }
    for (let i = 0; i < 256; i++) expect(g.onLoop()).toBe(false);
    // the probe: the disk is fast now (the last four: 3, 3, 3, 0.01)
    expect(g.onLoop()).toBe(true);
    g.took(0.01);
    expect(g.onLoop()).toBe(true);
    expect(g.sync).toBe(6);
    expect(g.async).toBe(256);
  });
});

describe('a journal flush on the event loop that fails', () => {
  let dir: string;
  let spool: SpoolT;
  beforeEach(async () => {
    ctl.failSync = 0;
    dir = mkdtempSync(join(tmpdir(), 'mailbag-sync-gate-'));
    spool = await Spool.open(join(dir, 'spool'), { create: true });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('answers no 250 for its batch; a later job is durable in out/ as before', async () => {
    const committer = new GroupCommit();
    const { journal } = await LmtpJournal.open(spool, { fallback: committer });
    const store = new SpoolJobStore(spool, 'home', committer, Date.now, journal);
    const job = async (body: string): Promise<string> => {
      const d = await store.begin({ to: 'hub', command: 'rsmtp', args: [], sender: 's@x.test', recipients: ['a@x.test'] }, { maxSize: 1024 * 1024 });
      d.write(Buffer.from(body));
      return d.commit();
    };
    ctl.failSync = 1;
    await expect(job('first\n')).rejects.toThrow(/EIO/);
    expect(journal!.flushGate.sync).toBeGreaterThan(0);
    const b = await job('second\n');
    await journal!.close();
    expect(readdirSync(join(spool.root, 'out', 'hub'))).toEqual([b]);
  });
});
