// StageOps (lib/session/stage-ops.ts): a receiver's creates, renames and removals applied
// in order by the stage worker thread (or on the caller's thread), flush() settling only
// once every step is done, the first failure reported with its errno code, and a worker
// that hangs or dies failing its batches within bounded time instead of holding them.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configureStageWorker, StageOps, stageWorkerState, stopStageWorker } from '../../../lib/session/stage-ops.js';
import { SpoolError } from '../../../lib/errors.js';
import { tempDir } from './sites.js';

const script = new URL('./ts-stage-worker.mjs', import.meta.url);
const cleanups: (() => void)[] = [];
afterEach(async () => {
  while (cleanups.length) cleanups.pop()!();
  await stopStageWorker();
  configureStageWorker({ script });
});

function dirs(label: string): { a: string; b: string } {
  const t = tempDir(label);
  cleanups.push(t.remove);
  const a = join(t.dir, 'a');
  const b = join(t.dir, 'b');
  mkdirSync(a);
  mkdirSync(b);
  return { a, b };
}

describe.each(['worker', 'caller'] as const)('StageOps on the %s thread', (where) => {
  it('creates, renames and removes, in order, and flush() waits for all of it', async () => {
    const { a, b } = dirs(`stage-ops-${where}`);
    const ops = new StageOps(where);
    // more than one batch of bytes and of steps
    const files = Array.from({ length: 300 }, (_, i) => ({ name: `f${String(i).padStart(3, '0')}`, data: Buffer.alloc(1000 + i * 7, i % 251) }));
    for (const f of files) await ops.create(join(a, f.name), [f.data.subarray(0, 10), f.data.subarray(10)], f.data.length);
    for (const f of files.slice(0, 200)) ops.rename(join(a, f.name), join(b, f.name));
    for (const f of files.slice(0, 50)) ops.unlink(join(b, f.name));
    ops.unlink(join(b, 'not-there'));
    await ops.flush();
    expect(readdirSync(a).sort()).toEqual(files.slice(200).map((f) => f.name));
    expect(readdirSync(b).sort()).toEqual(files.slice(50, 200).map((f) => f.name));
    for (const f of files.slice(50, 200)) expect(readFileSync(join(b, f.name)).equals(f.data)).toBe(true);
    expect(ops.missing).toBe(1);
    if (where === 'worker') expect(stageWorkerState().running).toBe(true);
  });

  it('reports the first failure with its code (a create over an existing file) and stops that batch there', async () => {
    const { a } = dirs(`stage-ops-fail-${where}`);
    writeFileSync(join(a, 'taken'), 'x');
    const ops = new StageOps(where);
    await ops.create(join(a, 'one'), [Buffer.from('1')], 1);
    await ops.create(join(a, 'taken'), [Buffer.from('2')], 1);
    await ops.create(join(a, 'three'), [Buffer.from('3')], 1);
    const err = await ops.flush().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpoolError);
    expect((err as SpoolError).message).toMatch(/creating .*taken/);
    expect(((err as SpoolError).cause as NodeJS.ErrnoException).code).toBe('EEXIST');
    expect(readFileSync(join(a, 'taken'), 'utf8')).toBe('x');
    expect(existsSync(join(a, 'one'))).toBe(true);
    expect(existsSync(join(a, 'three'))).toBe(false);
  });
});

describe('a stage worker that fails', () => {
  it('one that hangs is terminated after stallMs and its batch rejects', async () => {
    const { a } = dirs('stage-ops-hang');
    configureStageWorker({ script, workerData: { hang: true }, stallMs: 400 });
    const ops = new StageOps('worker');
    await ops.create(join(a, 'one'), [Buffer.from('1')], 1);
    const started = Date.now();
    const err = await ops.flush().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpoolError);
    expect((err as Error).message).toMatch(/stage worker .*answered no request/);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(stageWorkerState().running).toBe(false);
  });

  // the watchdog runs on the monotonic clock: NTP stepping the wall clock forward an hour
  // (a board that booted weeks behind, whose link has just come up) while a batch is
  // answered slowly took a healthy worker for hung and failed the session
  it('a wall clock stepped forward while a batch is under way does not take the worker for hung', async () => {
    const { a } = dirs('stage-ops-clock-step');
    configureStageWorker({ script, workerData: { hangMs: 1_500 }, stallMs: 4_000 });
    const ops = new StageOps('worker');
    await ops.create(join(a, 'one'), [Buffer.from('1')], 1);
    const flushed = ops.flush();
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 3_600_000);
      await flushed;
    } finally {
      vi.useRealTimers();
    }
    expect(readFileSync(join(a, 'one'), 'utf8')).toBe('1');
    expect(stageWorkerState().running).toBe(true);
  });

  it('one that exits fails its batch, and the next batch gets a new worker', async () => {
    const { a } = dirs('stage-ops-exit');
    configureStageWorker({ script, workerData: { exit: 3 } });
    const ops = new StageOps('worker');
    await ops.create(join(a, 'one'), [Buffer.from('1')], 1);
    const err = await ops.flush().catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/stage worker stopped \(exit code 3/);
    configureStageWorker({ script });
    const again = new StageOps('worker');
    await again.create(join(a, 'two'), [Buffer.from('2')], 1);
    await again.flush();
    expect(readFileSync(join(a, 'two'), 'utf8')).toBe('2');
  });
});

describe('an idle stage worker never keeps its process alive', () => {
  it('a script that prestarts the worker and sends it nothing exits by itself (serve with nothing to receive)', async () => {
    const t = tempDir('stage-idle-exit');
    cleanups.push(t.remove);
    const hooks = new URL('../bag/ts-hooks.mjs', import.meta.url).href;
    const lib = new URL('../../../lib/session/stage-ops.ts', import.meta.url).href;
    const file = join(t.dir, 'prestart.mjs');
    writeFileSync(
      file,
      `import { register } from 'node:module';
register(${JSON.stringify(hooks)});
const ops = await import(${JSON.stringify(lib)});
ops.configureStageWorker({ script: new URL(${JSON.stringify(script.href)}) });
ops.prestartStageWorker();
await new Promise((r) => setTimeout(r, 200));
console.log(ops.stageWorkerState().running);
`,
    );
    const { execFile } = await import('node:child_process');
    const out = await new Promise<{ code: number | string | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [file], { timeout: 20_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number | string }).code ?? (err as { signal?: string }).signal ?? null) : 0, stdout, stderr }));
    });
    // before: the worker's port, ref'd again by its 'message' listener, held the process
    // until the timeout killed it (code null, SIGTERM)
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toBe('true\n');
  }, 30_000);
});
