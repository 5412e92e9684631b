// The worker threads' V8 code caches (scripts/bundle-front-doors.mjs, workerLoader): the
// built stage worker and bag worker each start from a small loader that runs their code
// with a cache made under the process's own V8 flags (serve's stage worker runs after
// tierUpLater, sync's workers with V8's defaults), and a missing, short, damaged or
// foreign cache only costs the compile: the thread still answers, the process does not
// abort. Each worker runs in a child node (a V8 abort there is exit 133, not this runner's
// death), from a private copy of its files.

import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { INTERRUPT_BUDGET } from '../../../lib/memory.js';
import { haveBuild } from '../spool/built.js';

const repo = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const bin = join(repo, 'dist', 'bin');
const TIER = [`--interrupt-budget=${INTERRUPT_BUDGET}`];

/** each worker: a request it answers without touching a spool, and the answer's shape */
const WORKERS = {
  'stage-worker': { request: { id: 7, ops: [] }, answer: { id: 7, result: { ok: true } } },
  'bag-worker': { request: { type: 'ping' }, answer: { type: 'pong' } },
} as const;
type Name = keyof typeof WORKERS;

interface Built {
  /** mailbag-NAME.HASH */
  prefix: string;
  loader: string;
  code: string;
  caches: string[];
}

function built(name: Name, dir = bin): Built {
  const files = readdirSync(dir);
  const loader = files.find((f) => new RegExp(`^mailbag-${name}\\.[0-9a-f]{16}\\.cjs$`).test(f));
  if (!loader) throw new Error(`no built ${name} in ${dir}`);
  const prefix = loader.replace(/\.cjs$/, '');
  return { prefix, loader, code: `${prefix}.code.cjs`, caches: files.filter((f) => f.startsWith(`${prefix}.`) && f.endsWith('.v8cache')) };
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** a private copy of the worker's loader and code (and its caches, unless `caches` is false) */
function copyOf(name: Name, caches = true): { dir: string; b: Built } {
  const dir = mkdtempSync(join(tmpdir(), 'mailbag-wcache-'));
  dirs.push(dir);
  const b = built(name);
  for (const f of [b.loader, b.code, ...(caches ? b.caches : [])]) copyFileSync(join(bin, f), join(dir, f));
  // the bundles load zstd-napi from node_modules beside them (not needed by these requests)
  symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'));
  return { dir, b };
}

/** the flag hash V8 stamps on a cache in a node with `flags` (as the loader reads it) */
function flagsOf(flags: string[]): string {
  return execFileSync(process.execPath, [...flags, '-e', "console.log(new (require('node:vm').Script)('0').createCachedData().readUInt32LE(12).toString(16))"], { encoding: 'utf8', timeout: 30_000 }).trim();
}

/** start the worker from `loader` in a child node with `flags`, send it its request; its first answer and the child's status */
function runWorker(name: Name, loader: string, flags: string[] = [], env: NodeJS.ProcessEnv = {}): { answer: unknown; status: number | null; stderr: string } {
  const script = `
    const { Worker } = require('node:worker_threads');
    const w = new Worker(${JSON.stringify(loader)});
    const timer = setTimeout(() => { console.log('no answer'); process.exit(3); }, 20000);
    w.once('message', (m) => { clearTimeout(timer); console.log(JSON.stringify(m)); void w.terminate(); });
    w.once('error', (e) => { clearTimeout(timer); console.log('error ' + e.message); process.exitCode = 2; });
    w.postMessage(${JSON.stringify(WORKERS[name].request)});`;
  const env0 = { ...process.env };
  delete env0.MAILBAG_MAKE_CODE_CACHE;
  delete env0.MAILBAG_MAKE_WORKER_CODE_CACHE;
  const r = spawnSync(process.execPath, [...flags, '-e', script], { encoding: 'utf8', timeout: 30_000, env: { ...env0, ...env } });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  let answer: unknown = line;
  try {
    answer = JSON.parse(line);
  } catch {
    // not an answer: compared as the text
  }
  return { answer, status: r.status, stderr: r.stderr };
}

/** whether V8 in a node with `flags` takes `cache` (V8's bytes and their CRC-32, seeded with the code's) for `code` */
function taken(code: string, cache: string, flags: string[]): string {
  const script = `
    const { readFileSync } = require('node:fs');
    const { Script } = require('node:vm');
    const { crc32 } = require('node:zlib');
    const buf = readFileSync(${JSON.stringify(cache)});
    const n = buf.length - 4;
    if (buf.readUInt32LE(n) !== crc32(buf.subarray(0, n), crc32(readFileSync(${JSON.stringify(code)})))) console.log('bad crc');
    else console.log(new Script(readFileSync(${JSON.stringify(code)}, 'utf8'), { filename: ${JSON.stringify(code)}, cachedData: buf.subarray(0, n) }).cachedDataRejected ? 'refused' : 'taken');`;
  return execFileSync(process.execPath, [...flags, '-e', script], { encoding: 'utf8', timeout: 30_000 }).trim();
}

describe.runIf(haveBuild())('the worker bundles\' code caches', () => {
  it.each(Object.keys(WORKERS) as Name[])('%s: one cache for V8\'s default flags and one for serve\'s (tierUpLater), each taken under its own flags', (name) => {
    const b = built(name);
    const plain = flagsOf([]);
    const tier = flagsOf(TIER);
    expect(tier).not.toBe(plain);
    expect(b.caches.sort()).toEqual([`${b.prefix}.${plain}.v8cache`, `${b.prefix}.${tier}.v8cache`].sort());
    expect(taken(join(bin, b.code), join(bin, `${b.prefix}.${plain}.v8cache`), [])).toBe('taken');
    expect(taken(join(bin, b.code), join(bin, `${b.prefix}.${tier}.v8cache`), TIER)).toBe('taken');
    // and each is refused under the other's flags: the reason there are two
    expect(taken(join(bin, b.code), join(bin, `${b.prefix}.${plain}.v8cache`), TIER)).toBe('refused');
  });

  it.each(Object.keys(WORKERS) as Name[])('%s answers from its loader with its caches, under either flags', (name) => {
    const { dir, b } = copyOf(name);
    for (const flags of [[], TIER]) {
      expect(runWorker(name, join(dir, b.loader), flags)).toMatchObject({ answer: WORKERS[name].answer, status: 0 });
    }
  });

  const damages: [string, (file: string, b: Built, dir: string) => void][] = [
    ['missing', (file) => rmSync(file)],
    ['cut short', (file) => writeFileSync(file, readFileSync(file).subarray(0, 1000))],
    ['empty', (file) => writeFileSync(file, '')],
    [
      'bytes damaged (64 flipped in the middle, the CRC-32 as made)',
      (file) => {
        const buf = readFileSync(file);
        const at = Math.floor(buf.length / 2);
        for (let i = at; i < at + 64; i++) buf[i]! ^= 0xa5;
        writeFileSync(file, buf);
      },
    ],
    [
      'another code\'s cache (a valid CRC-32: V8 refuses it)',
      (file, b, dir) => {
        const other = built(b.prefix.startsWith('mailbag-stage-worker') ? 'bag-worker' : 'stage-worker');
        const theirs = other.caches.find((c) => c.endsWith(file.slice(file.lastIndexOf('.', file.length - '.v8cache'.length - 1))));
        copyFileSync(join(bin, theirs!), file);
        expect(existsSync(join(dir, b.code))).toBe(true);
      },
    ],
  ];

  it.each((Object.keys(WORKERS) as Name[]).flatMap((name) => damages.map(([what, f]) => [name, what, f] as const)))('%s with its cache %s: compiles as without one and answers, exit 0', (name, _what, damage) => {
    const { dir, b } = copyOf(name);
    for (const flags of [[], TIER]) {
      const file = join(dir, `${b.prefix}.${flagsOf(flags)}.v8cache`);
      if (existsSync(file)) damage(file, b, dir);
      expect(runWorker(name, join(dir, b.loader), flags)).toMatchObject({ answer: WORKERS[name].answer, status: 0 });
    }
  });

  it('the cache is made by the thread itself, named after the flags it runs under, when the build asks (MAILBAG_MAKE_WORKER_CODE_CACHE)', () => {
    const { dir, b } = copyOf('stage-worker', false);
    const code = join(dir, b.code);
    expect(readdirSync(dir).filter((f) => f.endsWith('.v8cache'))).toEqual([]);
    // not asked: nothing written
    expect(runWorker('stage-worker', join(dir, b.loader), TIER)).toMatchObject({ answer: WORKERS['stage-worker'].answer, status: 0 });
    expect(readdirSync(dir).filter((f) => f.endsWith('.v8cache'))).toEqual([]);
    for (const [flags, env] of [
      [TIER, { MAILBAG_MAKE_WORKER_CODE_CACHE: `/elsewhere/x.code.cjs\n${code}` }],
      [[], { MAILBAG_MAKE_CODE_CACHE: code }],
    ] as const) {
      expect(runWorker('stage-worker', join(dir, b.loader), [...flags], env)).toMatchObject({ answer: WORKERS['stage-worker'].answer, status: 0 });
      const cache = join(dir, `${b.prefix}.${flagsOf([...flags])}.v8cache`);
      expect(existsSync(cache)).toBe(true);
      const buf = readFileSync(cache);
      expect(buf.readUInt32LE(buf.length - 4)).toBe(crc32(buf.subarray(0, buf.length - 4), crc32(readFileSync(code))));
      expect(taken(code, cache, [...flags])).toBe('taken');
    }
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
