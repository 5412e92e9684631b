// lmtpd's journal replay (lib/lmtp/journal.ts) writes the jobs a crash left into out/PEER
// in batches, as lmtpd's own write-out does: the batch's file fsyncs issued together and
// ONE fsync per directory, not a file fsync and a directory fsync per job (session 8:
// 1,000 jobs took 1.45 s at lmtpd's start, before it listens). The fsyncs are counted
// (node:fs wrapped, every call passed on to the real one); the jobs are checked whole.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import type { Spool as SpoolT } from '../../../lib/spool/spool.js';

const count = vi.hoisted(() => ({ on: false, fsync: 0, failDirs: 0, onDir: undefined as ((dir: string) => void) | undefined }));

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const fsync = (fd: number, cb: (err: NodeJS.ErrnoException | null) => void): void => {
    if (count.on) count.fsync++;
    if (count.failDirs > 0 && fs.fstatSync(fd).isDirectory()) {
      count.failDirs--;
      setImmediate(() => cb(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO', errno: -5, syscall: 'fsync' })));
      return;
    }
    fs.fsync(fd, cb);
  };
  const fsyncSync = (fd: number): void => {
    if (count.on) count.fsync++;
    if (count.onDir && fs.fstatSync(fd).isDirectory()) count.onDir(fs.readlinkSync(`/proc/self/fd/${fd}`));
    fs.fsyncSync(fd);
  };
  return { ...fs, default: { ...fs, fsync, fsyncSync }, fsync, fsyncSync };
});

const { LmtpJournal, replayJournals } = await import('../../../lib/lmtp/journal.js');
const { SpoolJobStore } = await import('../../../lib/lmtp/spool-store.js');
const { GroupCommit } = await import('../../../lib/spool/commit.js');
const { Spool } = await import('../../../lib/spool/spool.js');

let dir: string;
let spool: SpoolT;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-lmtp-replay-'));
  spool = await Spool.open(join(dir, 'spool'), { create: true });
  count.on = false;
  count.fsync = 0;
  count.failDirs = 0;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

it('a replay of 300 jobs for two peers fsyncs each job file once and each directory once per batch, not once per job', async () => {
  const committer = new GroupCommit();
  const { journal } = await LmtpJournal.open(spool, { fallback: committer, hold: true });
  const store = new SpoolJobStore(spool, 'home', committer, Date.now, journal);
  const ids: { id: string; peer: string; body: string }[] = [];
  for (let n = 0; n < 300; n++) {
    const peer = n % 3 === 0 ? 'mx2' : 'hub';
    const body = `message ${n}\n${'r'.repeat(n * 10)}\n`;
    const d = await store.begin({ to: peer, command: 'rsmtp', args: [], sender: 's@x.test', recipients: ['a@x.test'] }, { maxSize: 1024 * 1024 });
    d.write(Buffer.from(body));
    ids.push({ id: await d.commit(), peer, body });
  }
  // answered, none in out/ (held): the crash comes now
  await journal!.abandon();
  count.on = true;
  expect(await replayJournals(spool)).toBe(300);
  count.on = false;
  // 300 job files; the directories of two peers once per batch (at most 256 jobs a batch: 2 batches)
  expect(count.fsync).toBeLessThanOrEqual(300 + 2 * 2);
  expect(readdirSync(join(spool.root, 'out', 'hub'))).toHaveLength(200);
  expect(readdirSync(join(spool.root, 'out', 'mx2'))).toHaveLength(100);
  for (const { id, peer, body } of ids) {
    const text = readFileSync(join(spool.root, 'out', peer, id), 'utf8');
    expect(text.endsWith(`\n${body}`), id).toBe(true);
  }
  expect(readdirSync(spool.tmpDir)).toEqual([]);
  // the journal was reset: nothing is written again
  expect(await replayJournals(spool)).toBe(0);
});

it('a replay whose directory fsync fails ends with the error and leaves the journal as it was: the next replay makes the jobs durable', async () => {
  const committer = new GroupCommit();
  const { journal } = await LmtpJournal.open(spool, { fallback: committer, hold: true });
  const store = new SpoolJobStore(spool, 'home', committer, Date.now, journal);
  const d = await store.begin({ to: 'hub', command: 'rsmtp', args: [], sender: 's@x.test', recipients: ['a@x.test'] }, { maxSize: 1024 * 1024 });
  d.write(Buffer.from('answered, then a crash\n'));
  const id = await d.commit();
  await journal!.abandon();
  // linked into out/hub, but its name not made durable: not done
  count.failDirs = 1;
  await expect(replayJournals(spool)).rejects.toThrow(/EIO/);
  // the journal was not reset: the next start's replay finds the job (its name there,
  // perhaps not durable) and fsyncs its directory before the reset
  const dirFsyncs = vi.fn();
  count.onDir = dirFsyncs;
  expect(await replayJournals(spool)).toBe(0);
  count.onDir = undefined;
  expect(dirFsyncs).toHaveBeenCalledWith(join(spool.root, 'out', 'hub'));
  expect(readdirSync(join(spool.root, 'out', 'hub'))).toEqual([id]);
});
