// The build's worker caches (scripts/bundle-front-doors.mjs): each build leaves exactly
// the caches its own sample sessions made, one per kind of run. A cache is named after the
// V8 flags it was made under, so one made by an earlier build under other flags (a build
// run with NODE_OPTIONS) has another name; it used to stay in dist/bin beside the new
// ones, for good. The build runs here on a private copy of dist/ (the script bundles from
// dist/lib; it writes only into the copy).

import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { INTERRUPT_BUDGET } from '../../../lib/memory.js';
import { haveBuild } from '../spool/built.js';

const repo = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const WORKERS = ['stage-worker', 'bag-worker'];

/** the flag hash V8 stamps on a cache in a node with `flags` (as the workers' loader reads it) */
function flagsOf(flags: string[]): string {
  return execFileSync(process.execPath, [...flags, '-e', "console.log(new (require('node:vm').Script)('0').createCachedData().readUInt32LE(12).toString(16))"], { encoding: 'utf8', timeout: 30_000, env: envWithout() }).trim();
}

function envWithout(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  delete env.MAILBAG_MAKE_CODE_CACHE;
  delete env.MAILBAG_MAKE_WORKER_CODE_CACHE;
  delete env.MAILBAG_FAULT;
  return { ...env, ...extra };
}

let dir: string | undefined;
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** a copy of the built tree the script can run in: dist/, the script, package.json, node_modules */
function copyOfBuild(): string {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-cache-build-'));
  cpSync(join(repo, 'dist'), join(dir, 'dist'), { recursive: true });
  mkdirSync(join(dir, 'scripts'));
  copyFileSync(join(repo, 'scripts', 'bundle-front-doors.mjs'), join(dir, 'scripts', 'bundle-front-doors.mjs'));
  copyFileSync(join(repo, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

function bundle(root: string, env: NodeJS.ProcessEnv): void {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'bundle-front-doors.mjs')], { cwd: root, encoding: 'utf8', timeout: 120_000, env });
  expect(r.status, r.stderr).toBe(0);
}

/** each worker's caches in `bin`, by worker */
function caches(bin: string): Record<string, string[]> {
  const files = readdirSync(bin);
  return Object.fromEntries(
    WORKERS.map((name) => {
      const loader = files.find((f) => new RegExp(`^mailbag-${name}\\.[0-9a-f]{16}\\.cjs$`).test(f));
      if (!loader) throw new Error(`no built ${name}`);
      const prefix = loader.replace(/\.cjs$/, '');
      return [name, files.filter((f) => f.startsWith(`${prefix}.`) && f.endsWith('.v8cache')).map((f) => f.slice(prefix.length + 1)).sort()];
    }),
  );
}

describe.runIf(haveBuild())('the build\'s worker caches', () => {
  it('a build leaves only the caches made under its own flags, also after a build under NODE_OPTIONS', { timeout: 300_000 }, () => {
    const root = copyOfBuild();
    const bin = join(root, 'dist', 'bin');
    const other = ['--max-semi-space-size=8'];
    const want = (flags: string[]): string[] => [`${flagsOf(flags)}.v8cache`, `${flagsOf([...flags, `--interrupt-budget=${INTERRUPT_BUDGET}`])}.v8cache`].sort();
    expect(want(other)).not.toEqual(want([]));
    // a build under NODE_OPTIONS: its sample sessions run under those flags
    bundle(root, envWithout({ NODE_OPTIONS: other.join(' ') }));
    for (const name of WORKERS) expect(caches(bin)[name], name).toEqual(want(other));
    // the next build, without: its own two caches, and none of the other's
    bundle(root, envWithout());
    for (const name of WORKERS) expect(caches(bin)[name], name).toEqual(want([]));
    // a stray cache of this very code under flags no build here used goes too
    const stray = join(bin, `${readdirSync(bin).find((f) => /^mailbag-stage-worker\.[0-9a-f]{16}\.cjs$/.test(f))!.replace(/\.cjs$/, '')}.0badf1a9.v8cache`);
    writeFileSync(stray, 'x');
    bundle(root, envWithout());
    for (const name of WORKERS) expect(caches(bin)[name], name).toEqual(want([]));
  });
});
