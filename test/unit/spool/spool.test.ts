import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InputError, MailbagError, SpoolError } from '../../../lib/errors.js';
import { decodeJobHeader, encodeJobHeader, newJobId, type JobHeader } from '../../../lib/job/index.js';
import { LIMITS } from '../../../lib/limits.js';
import { commitFile, Spool } from '../../../lib/spool/index.js';

let dir: string;
let root: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-spool-test-'));
  root = join(dir, 'spool');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function header(over: Partial<JobHeader> = {}): JobHeader {
  return {
    id: newJobId(),
    // from and to both 'hub': the job fits out/hub (for hub) and in/hub (from hub)
    from: 'hub',
    to: 'hub',
    created: new Date().toISOString(),
    command: 'rmail',
    args: ['a@example.org'],
    sender: 'me@example.net',
    recipients: ['a@example.org'],
    ...over,
  };
}

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

/** every file and directory under root, relative, sorted */
function tree(base: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const n of readdirSync(join(base, rel))) {
      const r = rel ? `${rel}/${n}` : n;
      out.push(r);
      if (statSync(join(base, r)).isDirectory()) walk(r);
    }
  };
  walk('');
  return out.sort();
}

async function text(stream: AsyncIterable<Buffer | string>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

describe('Spool.open', () => {
  it('makes the layout with 0700 directories and a 0600 marker, whatever the umask', async () => {
    const old = process.umask(0o000);
    try {
      await Spool.open(root, { create: true });
    } finally {
      process.umask(old);
    }
    expect(tree(root)).toEqual(['failed', 'in', 'locks', 'mailbag-spool', 'out', 'tmp']);
    expect(readFileSync(join(root, 'mailbag-spool'), 'latin1')).toBe('mailbag-spool 1\n');
    expect(mode(join(root, 'mailbag-spool'))).toBe(0o600);
    for (const d of ['', 'tmp', 'out', 'in', 'failed', 'locks']) expect(mode(join(root, d)), d).toBe(0o700);
  });

  it('writes jobs 0600 in 0700 peer directories under a permissive and a strict umask', async () => {
    for (const mask of [0o000, 0o277]) {
      const old = process.umask(mask);
      try {
        const spool = await Spool.open(join(dir, `s${mask}`), { create: true });
        const ref = await spool.writeJob('out', 'hub', header(), Buffer.from('x'));
        expect(mode(ref.path)).toBe(0o600);
        expect(mode(join(spool.root, 'out', 'hub'))).toBe(0o700);
      } finally {
        process.umask(old);
      }
    }
  });

  it('refuses a missing spool, a directory without marker, and an unknown version by name', async () => {
    await expect(Spool.open(root)).rejects.toThrow(SpoolError);
    mkdirSync(root);
    await expect(Spool.open(root)).rejects.toThrow(/is not a mailbag spool \(no mailbag-spool file\)/);
    writeFileSync(join(root, 'mailbag-spool'), 'mailbag-spool 2\n');
    const err = await Spool.open(root).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpoolError);
    expect((err as SpoolError).message).toMatch(/spool format version 2 is not supported; this mailbag reads version 1/);
    expect((err as SpoolError).exitCode).toBe(75);
    writeFileSync(join(root, 'mailbag-spool'), 'hello\n');
    await expect(Spool.open(root, { create: true })).rejects.toThrow(/not a mailbag spool marker/);
  });

  it('refuses a symbolic link in place of a queue directory', async () => {
    await Spool.open(root, { create: true });
    mkdirSync(join(dir, 'elsewhere'));
    symlinkSync(join(dir, 'elsewhere'), join(root, 'out', 'hub'));
    await expect(Spool.open(root)).rejects.toThrow(/out\/hub is not a directory \(symbolic links are not allowed/);
  });

  it('makes missing standard directories of an existing spool again', async () => {
    await Spool.open(root, { create: true });
    rmSync(join(root, 'locks'), { recursive: true });
    await Spool.open(root);
    expect(mode(join(root, 'locks'))).toBe(0o700);
  });
});

describe('Spool.openForQueue (a front door: one queue directory)', () => {
  it('makes a new spool and the queue directory, as Spool.open and ensureDir would', async () => {
    const spool = await Spool.openForQueue(root, 'out', 'hub', { create: true });
    expect(readFileSync(join(root, 'mailbag-spool'), 'latin1')).toBe('mailbag-spool 1\n');
    for (const d of ['tmp', 'out', 'in', 'failed', 'locks', 'out/hub']) expect(mode(join(root, d))).toBe(0o700);
    await spool.writeJobSync('out', 'hub', header(), [Buffer.from('x')]);
    expect(await spool.listJobs('out', 'hub')).toHaveLength(1);
  });

  it('makes a missing queue directory of an existing spool, and refuses a missing spool without create', async () => {
    await expect(Spool.openForQueue(root, 'out', 'hub')).rejects.toThrow(SpoolError);
    await Spool.open(root, { create: true });
    await Spool.openForQueue(root, 'out', 'hub');
    expect(mode(join(root, 'out', 'hub'))).toBe(0o700);
    rmSync(join(root, 'tmp'), { recursive: true });
    await Spool.openForQueue(root, 'out', 'hub');
    expect(mode(join(root, 'tmp'))).toBe(0o700);
  });

  it('follows a spool root that is a symbolic link, as Spool.open does', async () => {
    await Spool.openForQueue(root, 'out', 'hub', { create: true });
    symlinkSync(root, join(dir, 'link'));
    const spool = await Spool.openForQueue(join(dir, 'link'), 'out', 'hub');
    await spool.writeJobSync('out', 'hub', header(), [Buffer.from('x')]);
    expect(readdirSync(join(root, 'out', 'hub'))).toHaveLength(1);
  });

  it('refuses a file in place of tmp/ or out/PEER in Spool.open\'s words', async () => {
    await Spool.openForQueue(root, 'out', 'hub', { create: true });
    for (const d of ['out/hub', 'tmp']) {
      rmSync(join(root, d), { recursive: true });
      writeFileSync(join(root, d), 'in the way\n');
      await expect(Spool.openForQueue(root, 'out', 'hub')).rejects.toThrow(/is not a directory|exists and is not a directory/);
      rmSync(join(root, d));
      mkdirSync(join(root, d), { mode: 0o700 });
    }
  });

  it('checks the marker, and refuses a symbolic link where the job passes: tmp/, out/, out/PEER', async () => {
    await Spool.openForQueue(root, 'out', 'hub', { create: true });
    writeFileSync(join(root, 'mailbag-spool'), 'mailbag-spool 2\n');
    await expect(Spool.openForQueue(root, 'out', 'hub')).rejects.toThrow(/spool format version 2 is not supported/);
    writeFileSync(join(root, 'mailbag-spool'), 'mailbag-spool 1\n');
    for (const d of ['out/hub', 'out', 'tmp']) {
      const moved = join(dir, `moved-${d.replace('/', '-')}`);
      renameSync(join(root, d), moved);
      symlinkSync(moved, join(root, d));
      await expect(Spool.openForQueue(root, 'out', 'hub')).rejects.toThrow(new RegExp(`${d} is not a directory \\(symbolic links are not allowed`));
      rmSync(join(root, d));
      renameSync(moved, join(root, d));
    }
    await Spool.openForQueue(root, 'out', 'hub');
  });

  it("removes a dead writer's tmp file and keeps a live one's", async () => {
    await Spool.openForQueue(root, 'out', 'hub', { create: true });
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    writeFileSync(join(root, 'tmp', `${dead}.1.aaaa.job`), 'partial');
    writeFileSync(join(root, 'tmp', `${process.pid}.99.cccc.job`), 'ours');
    const spool = await Spool.openForQueue(root, 'out', 'hub');
    expect(spool.cleanup.removed).toEqual([`${dead}.1.aaaa.job`]);
    expect(readdirSync(join(root, 'tmp'))).toEqual([`${process.pid}.99.cccc.job`]);
  });

  it('refuses hostile queue and peer names before touching the disk', async () => {
    await expect(Spool.openForQueue(root, 'out', '../x', { create: true })).rejects.toThrow(MailbagError);
    await expect(Spool.openForQueue(root, 'nope' as 'out', 'hub', { create: true })).rejects.toThrow(/no such queue/);
    expect(existsSync(root)).toBe(false);
  });
});

describe('jobs', () => {
  it('writes a streamed job that reads back byte for byte, and nothing stays in tmp/', async () => {
    const spool = await Spool.open(root, { create: true });
    const payload = Buffer.alloc(300_000);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7919) & 0xff;
    const h = header();
    const ref = await spool.writeJob('out', 'hub', h, Readable.from([payload.subarray(0, 1000), payload.subarray(1000)]));
    expect(ref.path).toBe(join(root, 'out', 'hub', h.id));
    const file = readFileSync(ref.path);
    expect(file.equals(Buffer.concat([encodeJobHeader(h), payload]))).toBe(true);
    expect(ref.size).toBe(file.length);
    const job = await spool.readJob(ref);
    expect(job.header).toEqual(h);
    expect(job.payloadSize).toBe(payload.length);
    expect((await text(job.payload())).equals(payload)).toBe(true);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
  });

  it('lists jobs by id (oldest first), only job files, and an unknown peer as empty', async () => {
    const spool = await Spool.open(root, { create: true });
    const ids = [newJobId(3_000), newJobId(1_000), newJobId(2_000)];
    for (const id of ids) await spool.writeJob('in', 'hub', header({ id }), Buffer.from(id));
    writeFileSync(join(root, 'in', 'hub', `${ids[0]}.reason`), 'x');
    writeFileSync(join(root, 'in', 'hub', '.hidden'), 'x');
    expect((await spool.listJobs('in', 'hub')).map((r) => r.id)).toEqual([...ids].sort());
    expect(await spool.listJobs('in', 'nobody')).toEqual([]);
    expect(await spool.peers('in')).toEqual(['hub']);
  });

  it('removes and moves jobs', async () => {
    const spool = await Spool.open(root, { create: true });
    const a = await spool.writeJob('in', 'hub', header(), Buffer.from('a'));
    const b = await spool.writeJob('in', 'hub', header(), Buffer.from('b'));
    const moved = await spool.moveJob(a, 'failed');
    expect(existsSync(a.path)).toBe(false);
    expect(readFileSync(moved.path).subarray(-1).toString()).toBe('a');
    await spool.removeJob(b);
    await spool.removeJob(b); // already gone: fine
    expect(await spool.listJobs('in', 'hub')).toEqual([]);
    expect((await spool.listJobs('failed', 'hub')).map((r) => r.id)).toEqual([a.id]);
  });

  it('never replaces a job with the same id', async () => {
    const spool = await Spool.open(root, { create: true });
    const h = header();
    await spool.writeJob('in', 'hub', h, Buffer.from('first'));
    const err = await spool.writeJob('in', 'hub', h, Buffer.from('second')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpoolError);
    expect(((err as SpoolError).cause as NodeJS.ErrnoException).code).toBe('EEXIST');
    expect(readFileSync(join(root, 'in', 'hub', h.id), 'utf8').endsWith('\nfirst')).toBe(true);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
  });

  it('refuses a payload over maxSize while streaming and leaves nothing behind', async () => {
    const spool = await Spool.open(root, { create: true });
    let produced = 0;
    async function* endless(): AsyncGenerator<Buffer> {
      for (;;) {
        produced += 4096;
        if (produced > 1_000_000) throw new Error('kept reading past the limit');
        yield Buffer.alloc(4096, 0x41);
      }
    }
    const err = await spool.writeJob('out', 'hub', header(), endless(), { maxSize: 10_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(err).toMatchObject({ code: 'too-big', exitCode: 65, status: '5.3.4' });
    expect((err as Error).message).toMatch(/larger than the limit of 10000 bytes/);
    expect(produced).toBeLessThanOrEqual(16_384);
    // exactly maxSize is fine
    await spool.writeJob('out', 'hub', header(), Buffer.alloc(10_000), { maxSize: 10_000 });
    await expect(spool.writeJob('out', 'hub', header(), Buffer.alloc(10_001), { maxSize: 10_000 })).rejects.toMatchObject({ code: 'too-big' });
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
    expect((await spool.listJobs('out', 'hub')).length).toBe(1);
  });

  it('turns a failing input stream into a temporary error and leaves nothing behind', async () => {
    const spool = await Spool.open(root, { create: true });
    async function* broken(): AsyncGenerator<Buffer> {
      yield Buffer.from('half a message');
      throw new Error('stdin went away');
    }
    const err = await spool.writeJob('out', 'hub', header(), broken()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MailbagError);
    expect(err).toMatchObject({ code: 'input', temporary: true, exitCode: 75 });
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
    expect(await spool.listJobs('out', 'hub')).toEqual([]);
  });

  it('refuses hostile peer names and ids before touching the disk', async () => {
    const spool = await Spool.open(root, { create: true });
    for (const peer of ['..', '../x', 'a/b', 'Hub', '', '.x', 'a'.repeat(LIMITS.maxNameLength + 1)]) {
      await expect(spool.writeJob('out', peer, header(), Buffer.from('x'))).rejects.toThrow(/bad peer name/);
      await expect(spool.listJobs('out', peer)).rejects.toThrow(/bad peer name/);
    }
    expect(() => spool.ref('out', 'hub', '../../mailbag-spool')).toThrow(/bad job id/);
    expect(() => spool.ref('x' as 'out', 'hub', newJobId())).toThrow(/no such queue/);
    expect(tree(root)).toEqual(['failed', 'in', 'locks', 'mailbag-spool', 'out', 'tmp']);
  });

  it('keeps a queue to its peer: out/PEER only jobs for PEER, in/PEER only jobs from PEER', async () => {
    const spool = await Spool.open(root, { create: true });
    await expect(spool.writeJob('out', 'backup', header({ to: 'hub' }), Buffer.from('x'))).rejects.toThrow(/is for "hub", not for the out\/backup queue/);
    await expect(spool.writeJob('in', 'hub', header({ from: 'home' }), Buffer.from('x'))).rejects.toThrow(/is from "home", not for the in\/hub queue/);
    await spool.writeJob('in', 'hub', header({ from: 'hub', to: 'home' }), Buffer.from('x'));
  });

  it('reading a damaged job names the file and the problem', async () => {
    const spool = await Spool.open(root, { create: true });
    const ref = await spool.writeJob('in', 'hub', header(), Buffer.from('x'));
    writeFileSync(ref.path, 'mailbag-job 2\n{}\n');
    await expect(spool.readJob(ref)).rejects.toThrow(`${ref.path}: job format version 2 is not supported; this mailbag reads version 1`);
    writeFileSync(ref.path, 'mailbag-job 1\n{"id":');
    await expect(spool.readJob(ref)).rejects.toMatchObject({ code: 'bad-job' });
  });

  it('reads a job whose header is larger than the first read', async () => {
    const spool = await Spool.open(root, { create: true });
    const many = Array.from({ length: 200 }, (_, i) => `recipient-${i}-${'x'.repeat(400)}@example.org`);
    const h = header({ args: many, recipients: many });
    const ref = await spool.writeJob('in', 'hub', h, Buffer.from('payload'));
    const job = await spool.readJob(ref);
    expect(job.header).toEqual(h);
    expect((await text(job.payload())).toString()).toBe('payload');
    expect(decodeJobHeader(readFileSync(ref.path)).ok).toBe(true);
  });

  it('counts jobs, bytes and the oldest age per peer and queue', async () => {
    const spool = await Spool.open(root, { create: true });
    const a = await spool.writeJob('out', 'hub', header(), Buffer.alloc(100));
    const b = await spool.writeJob('out', 'hub', header(), Buffer.alloc(50));
    await spool.writeJob('in', 'backup', header({ to: 'home', from: 'backup' }), Buffer.alloc(10));
    const now = Date.now();
    utimesSync(a.path, (now - 3_600_000) / 1000, (now - 3_600_000) / 1000);
    const s = await spool.stats(undefined, now);
    expect(Object.keys(s)).toEqual(['backup', 'hub']);
    expect(s.hub!.out.jobs).toBe(2);
    expect(s.hub!.out.bytes).toBe(a.size + b.size);
    expect(s.hub!.out.oldestAgeMs).toBeGreaterThanOrEqual(3_599_000);
    expect(s.hub!.in).toEqual({ jobs: 0, bytes: 0, oldestAgeMs: null });
    expect(s.backup!.in.jobs).toBe(1);
    expect(Object.keys(await spool.stats('hub'))).toEqual(['hub']);
  });
});

describe('the commit function', () => {
  it('replaces by default, refuses with noReplace, and fsyncs into place', async () => {
    const spool = await Spool.open(root, { create: true });
    await spool.ensureDir('bags');
    await spool.commitFile('bags/x', Buffer.from('one'));
    await spool.commitFile('bags/x', Buffer.from('two'));
    expect(readFileSync(join(root, 'bags', 'x'), 'utf8')).toBe('two');
    await expect(spool.commitFile('bags/x', Buffer.from('three'), { noReplace: true })).rejects.toThrow(/already exists/);
    expect(readFileSync(join(root, 'bags', 'x'), 'utf8')).toBe('two');
    expect(mode(join(root, 'bags'))).toBe(0o700);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
  });

  it('removes its tmp file when the destination directory is missing', async () => {
    const spool = await Spool.open(root, { create: true });
    const err = await commitFile(join(root, 'nowhere', 'x'), Buffer.from('x'), { tmpDir: spool.tmpDir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpoolError);
    expect((err as SpoolError).temporary).toBe(true);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
  });
});

describe('cleanup of tmp leftovers at start', () => {
  function deadPid(): number {
    const r = spawnSync(process.execPath, ['-e', '0']);
    if (r.error || typeof r.pid !== 'number' || r.pid <= 0) throw new Error(`could not start a child for a dead pid: ${String(r.error)}`);
    return r.pid;
  }

  it("removes a dead writer's file, keeps a live writer's and our own", async () => {
    await Spool.open(root, { create: true });
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      const dead = deadPid();
      const tmp = join(root, 'tmp');
      writeFileSync(join(tmp, `${dead}.1.aaaa.job`), 'partial');
      writeFileSync(join(tmp, `${live.pid}.1.bbbb.job`), 'still writing');
      writeFileSync(join(tmp, `${process.pid}.99.cccc.job`), 'ours');
      writeFileSync(join(tmp, 'no-pid-here'), 'unknown, recent');
      const spool = await Spool.open(root);
      expect(spool.cleanup.removed).toEqual([`${dead}.1.aaaa.job`]);
      expect(readdirSync(tmp).sort()).toEqual([`${live.pid}.1.bbbb.job`, `${process.pid}.99.cccc.job`, 'no-pid-here'].sort());
    } finally {
      live.kill('SIGKILL');
    }
  });

  it('removes a file not written to for LIMITS.staleTmpMs even when its pid is alive (reused)', async () => {
    await Spool.open(root, { create: true });
    const p = join(root, 'tmp', `1.1.dddd.job`); // pid 1 is always alive
    writeFileSync(p, 'from long ago');
    const old = (Date.now() - LIMITS.staleTmpMs - 60_000) / 1000;
    utimesSync(p, old, old);
    const spool = await Spool.open(root);
    expect(spool.cleanup.removed).toEqual(['1.1.dddd.job']);
    expect(existsSync(p)).toBe(false);
  });
});
