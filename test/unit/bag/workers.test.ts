// writeBagFile (lib/bag/workers.ts): a bag built in a worker thread is the same file as
// one built on the calling thread; errors come back as the same classes, codes and
// messages; an abort or a worker that stops leaves no file behind but what the docs say.
// The workers run the TypeScript sources through ./ts-worker.mjs.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ABORT_GRACE_MS, BagError, BagWorkerError, bagWorkerState, configureBagWorkers, prestartBagWorkers, readBag, stopBagWorkers, writeBag, writeBagFile, type BagCodec, type BagFileJob, type BagSummary, type WriteBagFileOptions } from '../../../lib/bag/index.js';
import { fileJobs } from '../../../lib/bag/bag-file.js';

const WORKER = new URL('./ts-worker.mjs', import.meta.url);

let dir: string;
let jobsDir: string;

/** mail-like text, different each time: real work for the compressor */
function mail(i: number, size: number): Buffer {
  const line = `Received: from relay${i % 97}.example.org by hub.example.net id ${createHash('sha256').update(String(i)).digest('hex')}; ${i}\n`;
  const text = Buffer.from(line.repeat(Math.ceil(size / line.length)));
  return text.subarray(0, size);
}

function makeJobs(prefix: string, sizes: number[], content: (i: number, size: number) => Buffer = mail): BagFileJob[] {
  return sizes.map((size, i) => {
    const name = `${prefix}${String(i).padStart(4, '0')}`;
    const path = join(jobsDir, name);
    writeFileSync(path, content(i, size));
    return { name, size, path };
  });
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** the outcome of a promise, or 'hung' after `ms` (every wait bounded) */
function settle<T>(p: Promise<T>, ms = 30_000): Promise<{ ok: true; value: T } | { ok: false; error: unknown } | 'hung'> {
  return Promise.race([p.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error })), new Promise<'hung'>((r) => setTimeout(() => r('hung'), ms).unref())]);
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  const r = await settle(p);
  if (r === 'hung') throw new Error('hung');
  if (r.ok) throw new Error('expected a rejection');
  return r.error;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-bagworkers-'));
  jobsDir = join(dir, 'jobs');
  mkdirSync(jobsDir);
});

afterAll(async () => {
  await stopBagWorkers();
  configureBagWorkers({});
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => configureBagWorkers({ script: WORKER }));
afterEach(async () => {
  await stopBagWorkers();
});

/** wait (bounded) until the pool is in this state: writeBagFile opens its file before it queues the bag */
async function until(state: Partial<ReturnType<typeof bagWorkerState>>): Promise<void> {
  const end = Date.now() + 10_000;
  while (Date.now() < end) {
    const now = bagWorkerState();
    if (Object.entries(state).every(([k, v]) => now[k as keyof typeof now] === v)) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  expect(bagWorkerState()).toMatchObject(state);
}

let seq = 0;
const dest = (): string => join(dir, `bag-${seq++}`);

describe('writeBagFile: same bytes wherever it is built', () => {
  it.each<[BagCodec, number | undefined]>([
    ['br', undefined],
    ['br', 1],
    ['gzip', undefined],
    ['none', undefined],
    ['zstd', undefined],
    ['zstd', 3],
  ])('%s level %s: worker, caller and writeBag give the same file and summary', async (codec, level) => {
    // small jobs (read whole), one over 256 KiB (streamed), an empty one
    const jobs = makeJobs(`same${codec}${level ?? ''}-`, [5, 0, 70_000, 300_000, 1_200_000, 4096, 511, 512, 513]);
    const options: WriteBagFileOptions = { codec, ...(level === undefined ? {} : { level }) };
    const inWorker = dest();
    const onCaller = dest();
    const w = await writeBagFile(jobs, inWorker, options);
    const c = await writeBagFile(jobs, onCaller, { ...options, where: 'caller' });
    // the reference: writeBag itself into a buffer
    const chunks: Buffer[] = [];
    const { PassThrough } = await import('node:stream');
    const sink = new PassThrough();
    sink.on('data', (b: Buffer) => chunks.push(b));
    const ref = await writeBag(fileJobs(jobs), sink, options);
    const refBytes = Buffer.concat(chunks);
    expect(w).toEqual(ref);
    expect(c).toEqual(ref);
    expect(sha256(inWorker)).toBe(ref.sha256);
    expect(sha256(onCaller)).toBe(ref.sha256);
    expect(readFileSync(inWorker).equals(refBytes)).toBe(true);
    expect(statSync(inWorker).mode & 0o777).toBe(0o600 & ~process.umask());
    expect(ref.entries).toBe(jobs.length);
    // and it reads back
    const names: string[] = [];
    const { Readable } = await import('node:stream');
    for await (const e of readBag(Readable.from([readFileSync(inWorker)]), { codec, expectSha256: w.sha256 })) {
      names.push(e.name);
      e.stream.resume();
    }
    expect(names).toEqual(jobs.map((j) => j.name));
  });

  it('from the TypeScript sources with no worker script configured, the default is the caller', async () => {
    configureBagWorkers({});
    const jobs = makeJobs('sources-', [1000]);
    const s = await writeBagFile(jobs, dest(), { codec: 'gzip' });
    expect(s.entries).toBe(1);
    expect(bagWorkerState().workers).toBe(0);
  });

  it('prestartBagWorkers starts the worker idle; the first bag then uses it', async () => {
    configureBagWorkers({});
    prestartBagWorkers();
    // from the sources with no script: nothing to start
    expect(bagWorkerState().workers).toBe(0);
    configureBagWorkers({ script: WORKER });
    prestartBagWorkers();
    prestartBagWorkers();
    expect(bagWorkerState()).toMatchObject({ workers: 1, busy: 0, queued: 0 });
    const before = bagWorkerState().threadIds;
    await writeBagFile(makeJobs('prestart-', [1000]), dest(), { codec: 'gzip' });
    expect(bagWorkerState().threadIds).toEqual(before);
  });

  it('an empty bag is the same too', async () => {
    const a = dest();
    const b = dest();
    const w = await writeBagFile([], a, {});
    const c = await writeBagFile([], b, { where: 'caller' });
    expect(w).toEqual(c);
    expect(w.entries).toBe(0);
    expect(sha256(a)).toBe(c.sha256);
  });

  it('the worker is started lazily and reused, bag after bag', async () => {
    expect(bagWorkerState().workers).toBe(0);
    const jobs = makeJobs('reuse-', [1000, 2000]);
    await writeBagFile(jobs, dest(), { codec: 'gzip' });
    const first = bagWorkerState().threadIds;
    expect(first).toHaveLength(1);
    await writeBagFile(jobs, dest(), { codec: 'gzip' });
    await writeBagFile(jobs, dest(), { codec: 'br' });
    expect(bagWorkerState()).toMatchObject({ workers: 1, busy: 0, queued: 0, threadIds: first });
  });
});

describe('writeBagFile: errors come back as themselves', () => {
  it('refuses a destination that exists (EEXIST) and leaves it alone', async () => {
    const d = dest();
    writeFileSync(d, 'someone else');
    const jobs = makeJobs('exists-', [10]);
    for (const where of ['worker', 'caller'] as const) {
      const err = (await failure(writeBagFile(jobs, d, { where }))) as NodeJS.ErrnoException;
      expect(err.code).toBe('EEXIST');
      expect(readFileSync(d, 'utf8')).toBe('someone else');
    }
  });

  async function both(jobs: BagFileJob[], options: WriteBagFileOptions = {}): Promise<[unknown, unknown, string[]]> {
    const a = dest();
    const b = dest();
    const inWorker = await failure(writeBagFile(jobs, a, options));
    const onCaller = await failure(writeBagFile(jobs, b, { ...options, where: 'caller' }));
    // the destination it created is gone either way
    return [inWorker, onCaller, [a, b].filter((f) => existsSync(f))];
  }

  it('a bad name: BagError bad-name, same message, no file left', async () => {
    const [good] = makeJobs('badname-', [100]);
    const [w, c, left] = await both([good!, { name: '../etc/passwd', size: 3, path: good!.path }]);
    expect(w).toBeInstanceOf(BagError);
    expect(w).toMatchObject({ issue: 'bad-name', code: 'bad-bag', entry: '../etc/passwd' });
    expect((w as Error).message).toBe((c as Error).message);
    expect(c).toMatchObject({ issue: 'bad-name', code: 'bad-bag' });
    expect(left).toEqual([]);
  });

  it('a job that changed size (small, read whole; large, streamed): BagError size-mismatch, same message', async () => {
    for (const size of [1000, 400_000]) {
      const [j] = makeJobs(`changed${size}-`, [size]);
      for (const declared of [size - 1, size + 1]) {
        const [w, c, left] = await both([{ ...j!, size: declared }], { codec: 'gzip' });
        expect(w).toBeInstanceOf(BagError);
        expect(w).toMatchObject({ issue: 'size-mismatch', code: 'bad-bag', entry: j!.name });
        expect((w as Error).message).toBe((c as Error).message);
        expect(left).toEqual([]);
      }
    }
  });

  it('a duplicate and an entry over the cap: BagError duplicate / entry-too-big (code too-big)', async () => {
    const [j] = makeJobs('dup-', [2000]);
    const [w] = await both([j!, j!]);
    expect(w).toMatchObject({ issue: 'duplicate', code: 'bad-bag' });
    const [w2, c2] = await both([j!], { maxEntrySize: 1000 });
    expect(w2).toBeInstanceOf(BagError);
    expect(w2).toMatchObject({ issue: 'entry-too-big', code: 'too-big' });
    expect((w2 as Error).message).toBe((c2 as Error).message);
  });

  it('a job file that is gone: the same ENOENT (code, syscall, path, message)', async () => {
    const gone = join(jobsDir, 'never-written');
    for (const size of [10, 500_000]) {
      const [w, c, left] = await both([{ name: 'gone', size, path: gone }]);
      expect(w).toBeInstanceOf(Error);
      const we = w as NodeJS.ErrnoException;
      const ce = c as NodeJS.ErrnoException;
      expect([we.code, we.syscall, we.path, we.errno, we.message]).toEqual([ce.code, ce.syscall, ce.path, ce.errno, ce.message]);
      expect(we.code).toBe('ENOENT');
      expect(left).toEqual([]);
    }
  });

  // a 256 KiB tmpfs to fill: needs root (mount); skipped elsewhere
  const canMount = process.getuid?.() === 0 && process.platform === 'linux';
  it.skipIf(!canMount)('a full disk: the same ENOSPC from the destination, and the file removed', async (ctx) => {
    const mnt = join(dir, 'small-fs');
    mkdirSync(mnt);
    const { execFileSync } = await import('node:child_process');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt], { stdio: 'ignore' });
    } catch {
      ctx.skip('cannot mount a tmpfs here');
      return;
    }
    try {
      const jobs = makeJobs('full-', [400_000, 400_000], (_i, size) => randomBytes(size));
      const err = await failure(writeBagFile(jobs, join(mnt, 'w.bag'), { codec: 'none' }));
      const err2 = await failure(writeBagFile(jobs, join(mnt, 'c.bag'), { codec: 'none', where: 'caller' }));
      expect(err).toMatchObject({ code: 'ENOSPC', syscall: 'write' });
      expect(err2).toMatchObject({ code: 'ENOSPC', syscall: 'write' });
      expect((err as Error).message).toBe((err2 as Error).message);
      expect(readdirSync(mnt)).toEqual([]);
    } finally {
      execFileSync('umount', [mnt], { stdio: 'ignore' });
    }
  });
});

describe('writeBagFile: abort', () => {
  /** slow to build: incompressible-ish text at brotli 11 */
  const slowJobs = (prefix: string): BagFileJob[] => makeJobs(prefix, Array.from({ length: 12 }, () => 1_000_000), (i, size) => Buffer.from(randomBytes(size / 2).toString('hex')));

  it.each(['worker', 'caller'] as const)('%s: an abort mid-bag rejects with the signal reason, removes the file it created, keeps the jobs', async (where) => {
    const jobs = slowJobs(`abort${where}-`);
    const d = dest();
    const ac = new AbortController();
    const p = writeBagFile(jobs, d, { codec: 'br', level: 11, signal: ac.signal, where });
    setTimeout(() => ac.abort(new Error('enough')), 300);
    const started = Date.now();
    const err = await failure(p);
    expect((err as Error).message).toBe('enough');
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(existsSync(d)).toBe(false);
    for (const j of jobs) expect(statSync(j.path).size).toBe(j.size);
    if (where === 'worker') {
      // the worker stopped that bag by itself (not terminated): the same thread builds the next
      const before = bagWorkerState().threadIds;
      expect(before).toHaveLength(1);
      const s = await writeBagFile(jobs.slice(0, 1), dest(), { codec: 'gzip', level: 1 });
      expect(s.entries).toBe(1);
      expect(bagWorkerState().threadIds).toEqual(before);
    }
  });

  it('an abort before the call creates nothing', async () => {
    const d = dest();
    const ac = new AbortController();
    ac.abort();
    await expect(writeBagFile(makeJobs('pre-', [10]), d, { signal: ac.signal })).rejects.toBe(ac.signal.reason);
    expect(existsSync(d)).toBe(false);
    expect(bagWorkerState().workers).toBe(0);
  });

  it('an abort of a bag waiting for the worker takes it out of the queue', async () => {
    const slow = slowJobs('queued-');
    const first = writeBagFile(slow.slice(0, 3), dest(), { codec: 'br', level: 11 });
    const d = dest();
    const ac = new AbortController();
    const firstOutcome = settle(first);
    const second = writeBagFile(makeJobs('queued2-', [10]), d, { signal: ac.signal });
    await until({ busy: 1, queued: 1 });
    ac.abort();
    const err = await failure(second);
    expect((err as Error).name).toBe('AbortError');
    expect(existsSync(d)).toBe(false);
    expect(bagWorkerState().queued).toBe(0);
    await stopBagWorkers();
    expect(await firstOutcome).toMatchObject({ ok: false, error: expect.any(BagWorkerError) });
  });
});

describe('writeBagFile: a worker that stops', () => {
  it.each(['exit', 'throw'] as const)('a worker that dies mid-bag (%s) rejects the bag with BagWorkerError and leaves no file', async (crash) => {
    configureBagWorkers({ script: WORKER, workerData: { crash, afterMs: 200 } });
    const d = dest();
    const jobs = makeJobs(`crash${crash}-`, Array.from({ length: 8 }, () => 1_000_000), (i, size) => Buffer.from(randomBytes(size / 2).toString('hex')));
    const err = await failure(writeBagFile(jobs, d, { codec: 'br', level: 11 }));
    expect(err).toBeInstanceOf(BagWorkerError);
    expect(err).toMatchObject({ code: 'internal' });
    expect((err as Error).message).toMatch(crash === 'exit' ? /exit code 7/ : /crashed on purpose/);
    expect(existsSync(d)).toBe(false);
    expect(bagWorkerState().workers).toBe(0);
    // the next bag gets a new worker
    configureBagWorkers({ script: WORKER });
    const s = await writeBagFile(jobs.slice(0, 1), dest(), { codec: 'gzip', level: 1 });
    expect(s.entries).toBe(1);
  });

  it('a worker whose thread hangs is terminated after stallMs: BagWorkerError, no file left', async () => {
    configureBagWorkers({ script: WORKER, workerData: { crash: 'hang', afterMs: 100 }, stallMs: 1_000 });
    const d = dest();
    const jobs = makeJobs('hang-', Array.from({ length: 8 }, () => 1_000_000), (i, size) => Buffer.from(randomBytes(size / 2).toString('hex')));
    const started = Date.now();
    const err = await failure(writeBagFile(jobs, d, { codec: 'br', level: 11 }));
    expect(err).toBeInstanceOf(BagWorkerError);
    expect((err as Error).message).toMatch(/did not answer for 1 s/);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(existsSync(d)).toBe(false);
    expect(bagWorkerState().workers).toBe(0);
  });

  it('an abort that a hung worker cannot see: terminated after ABORT_GRACE_MS, rejected with the reason, no file left', async () => {
    configureBagWorkers({ script: WORKER, workerData: { crash: 'hang', afterMs: 0 } });
    const d = dest();
    const jobs = makeJobs('hangabort-', [100_000]);
    const ac = new AbortController();
    const p = failure(writeBagFile(jobs, d, { signal: ac.signal }));
    await until({ busy: 1 });
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    ac.abort(new Error('no more'));
    const err = await p;
    expect((err as Error).message).toBe('no more');
    expect(Date.now() - started).toBeGreaterThanOrEqual(ABORT_GRACE_MS - 50);
    expect(Date.now() - started).toBeLessThan(ABORT_GRACE_MS + 10_000);
    expect(existsSync(d)).toBe(false);
    expect(bagWorkerState().workers).toBe(0);
  });

  it('stopBagWorkers mid-bag rejects the bag being built and the one waiting; no file left', async () => {
    const jobs = makeJobs('stop-', Array.from({ length: 6 }, () => 1_000_000), (i, size) => Buffer.from(randomBytes(size / 2).toString('hex')));
    const d1 = dest();
    const d2 = dest();
    const p1 = failure(writeBagFile(jobs, d1, { codec: 'br', level: 11 }));
    const p2 = failure(writeBagFile(jobs.slice(0, 1), d2, { codec: 'br' }));
    await until({ busy: 1, queued: 1 });
    await new Promise((r) => setTimeout(r, 200));
    await stopBagWorkers();
    const [e1, e2] = await Promise.all([p1, p2]);
    expect(e1).toBeInstanceOf(BagWorkerError);
    expect(e2).toBeInstanceOf(BagWorkerError);
    expect(existsSync(d1)).toBe(false);
    expect(existsSync(d2)).toBe(false);
    expect(bagWorkerState()).toEqual({ workers: 0, busy: 0, queued: 0, threadIds: [] });
  });

  it('a worker script that cannot load rejects the bag (no hang), and the file is removed', async () => {
    configureBagWorkers({ script: new URL('./no-such-worker.mjs', import.meta.url) });
    const d = dest();
    const err = await failure(writeBagFile(makeJobs('noscript-', [10]), d));
    expect(err).toBeInstanceOf(BagWorkerError);
    expect(existsSync(d)).toBe(false);
  });
});

describe('writeBagFile: two bags at once', () => {
  async function twoAtOnce(a: Promise<BagSummary>, b: Promise<BagSummary>): Promise<BagSummary[]> {
    return Promise.all([a, b]);
  }

  it('with two workers, two bags are built at once on two threads, each the same as alone', async () => {
    configureBagWorkers({ script: WORKER, workers: 2 });
    const ja = makeJobs('twoA-', Array.from({ length: 20 }, () => 50_000));
    const jb = makeJobs('twoB-', Array.from({ length: 20 }, () => 40_000));
    const [da, db] = [dest(), dest()];
    const pa = writeBagFile(ja, da, { codec: 'br', level: 9 });
    const pb = writeBagFile(jb, db, { codec: 'br', level: 9 });
    await until({ busy: 2, queued: 0 });
    expect(new Set(bagWorkerState().threadIds).size).toBe(2);
    const [sa, sb] = await twoAtOnce(pa, pb);
    const ra = await writeBagFile(ja, dest(), { codec: 'br', level: 9, where: 'caller' });
    const rb = await writeBagFile(jb, dest(), { codec: 'br', level: 9, where: 'caller' });
    expect(sa).toEqual(ra);
    expect(sb).toEqual(rb);
    expect(sha256(da)).toBe(ra.sha256);
    expect(sha256(db)).toBe(rb.sha256);
  });

  it('with one worker, the second bag waits its turn; one in the worker and one on the caller run at once', async () => {
    // the worker's bags are slow (brotli 11 on hex text), so their turn in it lasts
    const ja = makeJobs('oneA-', Array.from({ length: 2 }, () => 200_000), (i, size) => Buffer.from(randomBytes(size / 2).toString('hex')));
    const jb = makeJobs('oneB-', Array.from({ length: 10 }, () => 40_000));
    const pa = writeBagFile(ja, dest(), { codec: 'br', level: 11 });
    const pb = writeBagFile(jb, dest(), { codec: 'gzip' });
    await until({ busy: 1, queued: 1 });
    const [sa, sb] = await twoAtOnce(pa, pb);
    const pc = writeBagFile(ja, dest(), { codec: 'br', level: 11 });
    const pd = writeBagFile(jb, dest(), { codec: 'gzip', where: 'caller' });
    await until({ busy: 1, queued: 0 });
    const [sc, sd] = await twoAtOnce(pc, pd);
    expect(sc).toEqual(sa);
    expect(sd).toEqual(sb);
  });
});

describe('writeBagFile: the worker never keeps a process alive', () => {
  it('a script that prestarts the worker and builds nothing exits by itself', async () => {
    const hooks = new URL('./ts-hooks.mjs', import.meta.url).href;
    const lib = new URL('../../../lib/bag/index.ts', import.meta.url).href;
    const script = join(dir, 'prestart-only.mjs');
    writeFileSync(
      script,
      `
      import { register } from 'node:module';
      register(${JSON.stringify(hooks)});
      const bag = await import(${JSON.stringify(lib)});
      bag.configureBagWorkers({ script: new URL(${JSON.stringify(WORKER.href)}) });
      bag.prestartBagWorkers();
      await new Promise((r) => setTimeout(r, 200));
      console.log(bag.bagWorkerState().workers);
    `,
    );
    const out = await new Promise<{ code: number | string | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [script], { timeout: 20_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number | string }).code ?? (err as { signal?: string }).signal ?? null) : 0, stdout, stderr }));
    });
    // before: the idle worker's port, ref'd again by its 'message' listener, held the
    // process until the timeout killed it
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(Number(out.stdout)).toBeGreaterThan(0);
  }, 30_000);

  it('a script that prestarts the worker, builds a bag and returns exits promptly, after the bag is written', async () => {
    const d = dest();
    const [j] = makeJobs('exit-', [100_000]);
    const hooks = new URL('./ts-hooks.mjs', import.meta.url).href;
    const lib = new URL('../../../lib/bag/index.ts', import.meta.url).href;
    const code = `
      import { register } from 'node:module';
      register(${JSON.stringify(hooks)});
      const bag = await import(${JSON.stringify(lib)});
      bag.configureBagWorkers({ script: new URL(${JSON.stringify(WORKER.href)}) });
      bag.prestartBagWorkers();
      const s = await bag.writeBagFile([${JSON.stringify(j)}], ${JSON.stringify(d)}, { codec: 'br' });
      console.log(s.sha256);
    `;
    const script = join(dir, 'build-one.mjs');
    writeFileSync(script, code);
    const started = Date.now();
    const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [script], { timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }));
    });
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toBe(`${sha256(d)}\n`);
    // the idle worker did not hold the process until some timeout
    expect(Date.now() - started).toBeLessThan(25_000);
  });
});
