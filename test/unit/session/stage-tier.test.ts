// A receiver's prestart of the stage worker asks V8 to tier up later (lib/memory.ts,
// tierUpLater), and does so only once the worker has loaded its modules: Node's built-in
// modules carry code caches made under V8's default flags, refused under any other, so a
// thread that loads them after the change compiles each from its source (the worker's
// start: 44 ms of CPU instead of 20; bench/README.md, relay, session 10). A worker that
// never says it has loaded holds the change up for TIER_UP_WAIT_MS at most. V8's flags
// are the process's: each case runs in a child node (the TypeScript sources through the
// bag tests' module hooks), reading the tag V8 derives from them.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { INTERRUPT_BUDGET } from '../../../lib/memory.js';

const hooks = JSON.stringify(new URL('../bag/ts-hooks.mjs', import.meta.url).href);
const ops = JSON.stringify(new URL('../../../lib/session/stage-ops.ts', import.meta.url).href);
const tsWorker = fileURLToPath(new URL('./ts-stage-worker.mjs', import.meta.url));

const dir = mkdtempSync(join(tmpdir(), 'mailbag-stage-tier-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Seen {
  plain: number;
  right: number;
  after: number;
  loadedAtChange: boolean;
  waitedMs: number;
  wait: number;
}

let runs = 0;

/** prestart with `script` as the stage worker; the tags before, right after and once changed, and whether the worker had loaded then */
function prestart(script: string, tierUpWaitMs: number): Seen {
  const code = `
    import { register } from 'node:module';
    register(${hooks});
    const v8 = await import('node:v8');
    const m = await import(${ops});
    m.configureStageWorker({ script: ${JSON.stringify(script)}, tierUpWaitMs: ${tierUpWaitMs} });
    const plain = v8.cachedDataVersionTag();
    const t0 = Date.now();
    m.prestartStageWorker();
    const right = v8.cachedDataVersionTag();
    while (v8.cachedDataVersionTag() === right && Date.now() - t0 < 20000) await new Promise((r) => setTimeout(r, 2));
    const loadedAtChange = m.stageWorkerState().loaded;
    const after = v8.cachedDataVersionTag();
    console.log(JSON.stringify({ plain, right, after, loadedAtChange, waitedMs: Date.now() - t0, wait: ${tierUpWaitMs} }));
    await m.stopStageWorker();`;
  // a file, not -e: a worker inherits the process's execArgv, and --input-type fails it
  const file = join(dir, `prestart-${++runs}.mjs`);
  writeFileSync(file, code);
  const out = execFileSync(process.execPath, [file], { encoding: 'utf8', timeout: 60_000 });
  return JSON.parse(out.trim().split('\n').pop()!) as Seen;
}

const budget = Number(execFileSync(process.execPath, [`--interrupt-budget=${INTERRUPT_BUDGET}`, '-p', "require('node:v8').cachedDataVersionTag()"], { encoding: 'utf8', timeout: 30_000 }).trim());

describe('prestartStageWorker and V8\'s flags', () => {
  it('changes them only once the stage worker has loaded its modules', () => {
    // the sources through the hooks take longer to load than the built worker: the wait is long here
    const s = prestart(tsWorker, 30_000);
    expect(s.right).toBe(s.plain); // not at once
    expect(s.after).toBe(budget);
    expect(s.loadedAtChange).toBe(true);
  });

  it('changes them all the same when the worker never says it has loaded, after the wait (TIER_UP_WAIT_MS by default)', () => {
    const silent = join(dir, 'silent-worker.mjs');
    // a worker that runs but never loads the stager (nor sets the word)
    writeFileSync(silent, 'setInterval(() => {}, 1000);\n');
    const s = prestart(silent, 500);
    expect(s.right).toBe(s.plain);
    expect(s.after).toBe(budget);
    expect(s.loadedAtChange).toBe(false);
    expect(s.waitedMs).toBeGreaterThanOrEqual(s.wait - 20);
  });
});
