// review9d: the worker threads' V8 code caches (fbf7fc7, scripts/bundle-front-doors.mjs
// workerLoader), two defects of /work/brief/req-review9d.md, as `it.fails` until its diff
// is applied (then `it`):
//  W1: V8 compares only the source's length with the one a cache was made from. A worker's
//      code file changed in place with the same length (a hot patch of a constant, a
//      packager's same-length substitution) keeps running the cached functions of the
//      code before the change: here the bag worker answers 'pong' from a code file that
//      says 'PONG'. Nothing ties a cache to the code's bytes but the file names.
//  W2: the cache a worker writes for the build takes the build's umask: built under
//      umask 077 (root's, on a hardened host) every cache is 0600 beside 0644 code, and
//      `mailbag serve` as the mailbag user silently runs without one (EACCES, caught).
// Each worker runs in a child node from a private copy of its built files.

import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { INTERRUPT_BUDGET } from '../../lib/memory.js';
import { haveBuild } from '../unit/spool/built.js';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const bin = join(repo, 'dist', 'bin');
const TIER = [`--interrupt-budget=${INTERRUPT_BUDGET}`];

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** a private copy of a built worker: its loader, its code and (unless `caches` is false) its caches */
function copyOf(name: 'bag-worker' | 'stage-worker', caches = true): { dir: string; loader: string; code: string } {
  const files = readdirSync(bin);
  const loader = files.find((f) => new RegExp(`^mailbag-${name}\\.[0-9a-f]{16}\\.cjs$`).test(f));
  if (!loader) throw new Error(`no built ${name} in ${bin}`);
  const prefix = loader.replace(/\.cjs$/, '');
  const code = `${prefix}.code.cjs`;
  const dir = mkdtempSync(join(tmpdir(), 'review9d-wcache-'));
  dirs.push(dir);
  const wanted = [loader, code, ...(caches ? files.filter((f) => f.startsWith(`${prefix}.`) && f.endsWith('.v8cache')) : [])];
  for (const f of wanted) copyFileSync(join(bin, f), join(dir, f));
  symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'));
  return { dir, loader: join(dir, loader), code: join(dir, code) };
}

/** start the worker from `loader` in a child node (`flags`, `umask`), send `request`: its first answer */
function answer(loader: string, request: unknown, flags: string[] = [], env: NodeJS.ProcessEnv = {}, umask?: number): unknown {
  const script = `
    ${umask === undefined ? '' : `process.umask(${umask});`}
    const { Worker } = require('node:worker_threads');
    const w = new Worker(${JSON.stringify(loader)});
    const timer = setTimeout(() => { console.log('"no answer"'); process.exit(3); }, 20000);
    w.once('message', (m) => { clearTimeout(timer); console.log(JSON.stringify(m)); void w.terminate(); });
    w.once('error', (e) => { clearTimeout(timer); console.log(JSON.stringify('error ' + e.message)); process.exitCode = 2; });
    w.postMessage(${JSON.stringify(request)});`;
  const env0 = { ...process.env };
  delete env0.MAILBAG_MAKE_CODE_CACHE;
  delete env0.MAILBAG_MAKE_WORKER_CODE_CACHE;
  const r = spawnSync(process.execPath, [...flags, '-e', script], { encoding: 'utf8', timeout: 30_000, env: { ...env0, ...env } });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? 'null');
}

describe.runIf(haveBuild())('review9d: the worker code caches', () => {
  it('(sound) the bag worker answers ping from its built loader with its caches, under either flags', () => {
    const { loader } = copyOf('bag-worker');
    for (const flags of [[], TIER]) expect(answer(loader, { type: 'ping' }, flags)).toEqual({ type: 'pong' });
  });

  it('W1: a code file changed in place (same length) runs as changed, not the functions cached from the code before', () => {
    const { loader, code } = copyOf('bag-worker');
    const before = readFileSync(code, 'utf8');
    expect(before).toContain('{type:"pong"}');
    const after = before.replace('{type:"pong"}', '{type:"PONG"}');
    expect(after.length).toBe(before.length);
    writeFileSync(code, after);
    // the caches made from the code before are still there (V8's flags and serve's)
    expect(readdirSync(join(loader, '..')).filter((f) => f.endsWith('.v8cache')).length).toBeGreaterThan(0);
    for (const flags of [[], TIER]) expect(answer(loader, { type: 'ping' }, flags)).toEqual({ type: 'PONG' });
  });

  it('W2: a cache the build has a worker write is readable by every user (0644) under a umask of 077, as the code beside it', () => {
    const { dir, loader, code } = copyOf('stage-worker', false);
    expect(answer(loader, { id: 7, ops: [] }, TIER, { MAILBAG_MAKE_WORKER_CODE_CACHE: code }, 0o077)).toMatchObject({ id: 7, result: { ok: true } });
    const made = readdirSync(dir).filter((f) => f.endsWith('.v8cache'));
    expect(made).toHaveLength(1);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect((statSync(join(dir, made[0]!)).mode & 0o777).toString(8)).toBe('644');
  });
});
