// A stager on the stage worker thread (lib/session/stage-bag.ts, stage-worker.ts): it
// follows a partial file as the session's thread writes it (told through shared memory),
// stages every job with the creates made back on the session's thread, answers only once
// every byte is read; a stopped stager leaves nothing; a hung worker is terminated within
// bounded time. And the syncfs helper the worker keeps: `sync -f` answered, and false
// (the caller then fsyncs each file) where `sync` cannot be run.

import { afterEach, describe, expect, it } from 'vitest';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { configureStageWorker, stageOnWorker, stageWorkerState, stopStageWorker, syncfsOnWorker } from '../../../lib/session/stage-ops.js';
import { PartialSource, SHARED_AVAILABLE, SHARED_WORDS, SharedGrowth, type StageRequest } from '../../../lib/session/stage-bag.js';
import { CAPS, enqueue, makeSite, messages, store, tempDir } from './sites.js';

const script = new URL('./ts-stage-worker.mjs', import.meta.url);
const cleanups: (() => void)[] = [];
afterEach(async () => {
  while (cleanups.length) cleanups.pop()!();
  await stopStageWorker();
  configureStageWorker({ script });
});

/** a bag of `n` jobs built by home for hub; its bytes and the request a stager at hub gets */
async function aBag(label: string, n: number): Promise<{ bytes: Buffer; req: StageRequest; ids: string[]; dir: string }> {
  const t = tempDir(label);
  cleanups.push(t.remove);
  const hub = await makeSite(t.dir, 'hub');
  const home = await makeSite(t.dir, 'home');
  const sent = await enqueue(home, 'hub', messages(Array.from({ length: n }, (_, i) => 700 + 97 * i), 5));
  const out = store(home, 'hub');
  await out.open();
  const bag = await out.buildBag(await out.queuedJobs(new Set()), 'zstd');
  const bytes = readFileSync(join(home.root, 'bags', 'out', 'hub', `${bag.bag}.bag`));
  const dir = join(hub.root, 'bags', 'in', 'home');
  mkdirSync(dir, { recursive: true });
  const req: StageRequest = { bag: bag.bag, codec: 'zstd', caps: CAPS, site: 'hub', peer: 'home', accept: ['rmail'], part: join(dir, `${bag.bag}.part`), staging: join(dir, `${bag.bag}.d`), size: bytes.length };
  return { bytes, req, ids: [...sent.keys()].sort(), dir };
}

describe('a stager on the stage worker', () => {
  it('follows the partial as it grows and stages every job; the outcome comes after the last byte', async () => {
    const { bytes, req, ids } = await aBag('stage-worker-grow', 60);
    const fd = openSync(req.part, 'w');
    const w = stageOnWorker(req, 0);
    let settled = false;
    void w.done.then(() => (settled = true));
    let written = 0;
    for (const piece of [100, 2000, 9000]) {
      written += writeSync(fd, bytes, written, Math.min(piece, bytes.length - written), written);
      w.grew(written);
      await new Promise((r) => setTimeout(r, 30));
    }
    expect(settled).toBe(false);
    writeSync(fd, bytes, written, bytes.length - written, written);
    closeSync(fd);
    w.grew(bytes.length);
    const r = await w.done;
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect([...r.outcome.committed].sort()).toEqual(ids);
    expect(readdirSync(req.staging).sort()).toEqual(ids);
    expect(stageWorkerState().running).toBe(true);
  });

  it('a bag whose bytes do not match its name is refused as bad-hash, nothing left staged', async () => {
    const { bytes, req } = await aBag('stage-worker-badhash', 10);
    const bad = Buffer.from(bytes);
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 0xff;
    const fd = openSync(req.part, 'w');
    writeSync(fd, bad);
    closeSync(fd);
    const r = await stageOnWorker(req, bad.length).done;
    expect(r).toMatchObject({ ok: false, refusal: { code: 'bad-hash' } });
    expect(existsSync(req.staging)).toBe(false);
  });

  it('stopped while it waits for bytes: rejects at once and removes HASH.d/', async () => {
    const { bytes, req } = await aBag('stage-worker-stop', 30);
    const fd = openSync(req.part, 'w');
    const half = Math.floor(bytes.length / 2);
    writeSync(fd, bytes, 0, half, 0);
    closeSync(fd);
    const w = stageOnWorker(req, half);
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    w.stop();
    const r = await w.done;
    expect(r.ok).toBe(false);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(existsSync(req.staging)).toBe(false);
  });

  it('on a worker that hangs: terminated after stallMs, the stager rejects', async () => {
    const { bytes, req } = await aBag('stage-worker-hang', 5);
    const fd = openSync(req.part, 'w');
    writeSync(fd, bytes);
    closeSync(fd);
    configureStageWorker({ script, workerData: { hang: true }, stallMs: 400 });
    const started = Date.now();
    const err = await stageOnWorker(req, bytes.length).done.catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/stage worker .*answered no request/);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(stageWorkerState().running).toBe(false);
  });
});

describe('a receiver whose stage worker stops mid-stage', () => {
  it('fails the bag and removes what the worker had staged in HASH.d/', async () => {
    const t = tempDir('stage-worker-dies');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    await enqueue(home, 'hub', messages(Array.from({ length: 80 }, (_, i) => 3000 + 101 * i), 9));
    const out = store(home, 'hub');
    await out.open();
    const bag = await out.buildBag(await out.queuedJobs(new Set()), 'none');
    const bytes = readFileSync(join(home.root, 'bags', 'out', 'hub', `${bag.bag}.bag`));
    const r = store(hub, 'home');
    await r.open();
    const half = Math.floor(bytes.length / 2);
    const w = await r.openPartial(bag.bag, 0);
    await w.write(bytes.subarray(0, half));
    const st = r.beginStage(bag.bag, 'none', CAPS, bytes.length, half);
    const staging = join(hub.root, 'bags', 'in', 'home', `${bag.bag}.d`);
    // wait (bounded) until the worker has staged jobs of the half it has
    for (let i = 0; i < 100 && !(existsSync(staging) && readdirSync(staging).length > 0); i++) await new Promise((res) => setTimeout(res, 50));
    expect(readdirSync(staging).length).toBeGreaterThan(0);
    await stopStageWorker();
    const err = await st.done.catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/stage worker/);
    expect(existsSync(staging)).toBe(false);
    await w.close(false);
  });
});

describe('the syncfs helper of the stage worker', () => {
  it('runs sync -f, again and again through the one helper', async () => {
    const t = tempDir('stage-worker-syncfs');
    cleanups.push(t.remove);
    expect(await syncfsOnWorker(t.dir)).toBe(true);
    expect(await syncfsOnWorker(t.dir)).toBe(true);
  });

  it('a worker terminated after a hang leaves no process of its helper behind (the shell was a zombie until the process exited)', async () => {
    const t = tempDir('stage-worker-zombie');
    cleanups.push(t.remove);
    await stopStageWorker();
    const before = new Set(shChildren());
    configureStageWorker({ script, workerData: { hangAt: 2 }, stallMs: 400 });
    expect(await syncfsOnWorker(t.dir)).toBe(true);
    // the second request finds the worker hung: it is terminated after stallMs
    const req: StageRequest = { bag: 'f'.repeat(64), codec: 'none', caps: CAPS, site: 'hub', peer: 'home', part: join(t.dir, 'x.part'), staging: join(t.dir, 'x.d'), size: 1 };
    const err = await stageOnWorker(req, 0).done.catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/stage worker .*answered no request/);
    // bounded: the thread ends and the helper's stdin closes with it
    const left = (): string[] => shChildren().filter((c) => !before.has(c));
    for (let i = 0; i < 100 && left().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(left()).toEqual([]);
  });

  it('answers false where sync cannot be run (the caller then fsyncs each file)', async () => {
    const t = tempDir('stage-worker-nosync');
    cleanups.push(t.remove);
    await stopStageWorker();
    // a worker copies the environment when it starts: one started now finds no `sync`
    const path = process.env.PATH;
    process.env.PATH = join(t.dir, 'empty');
    try {
      expect(await syncfsOnWorker(t.dir)).toBe(false);
    } finally {
      process.env.PATH = path;
    }
  });
});

/** this process's children that run sh (a zombie too), as "PID STATE" */
function shChildren(): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(pid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(ppid) === process.pid && comm === 'sh') found.push(`${pid} ${state}`);
  }
  return found;
}

describe('the shared growth a stager on the worker waits on', () => {
  it('does not sleep through growth that lands between its look at the length and its wait', async () => {
    const t = tempDir('stage-worker-race');
    cleanups.push(t.remove);
    const part = join(t.dir, 'x.part');
    const bytes = Buffer.alloc(4096, 7);
    const fd = openSync(part, 'w');
    writeSync(fd, bytes);
    closeSync(fd);
    const words = new BigInt64Array(new SharedArrayBuffer(SHARED_WORDS * 8));
    // the session's thread stores the partial's new length (and notifies) just after the
    // stager has read the old one, before it starts to wait: the last DATA frame of a bag
    let raced = false;
    class Racing extends SharedGrowth {
      override available(): number {
        const n = super.available();
        if (!raced) {
          raced = true;
          Atomics.store(words, SHARED_AVAILABLE, BigInt(bytes.length));
          Atomics.notify(words, SHARED_AVAILABLE);
        }
        return n;
      }
    }
    const src = new PartialSource(part, bytes.length, new Racing(words), true);
    const started = Date.now();
    const first = await src.next();
    // the stager looks again at once; before, it slept the whole wait (1 s) on the new length
    expect(Date.now() - started).toBeLessThan(500);
    expect(first?.length).toBe(bytes.length);
    await src.close();
  });
});
