// Child processes in these tests import the built library. The shared checkout's dist/
// may be rebuilt by someone else while a child is importing it, so each test file takes
// its own copy of dist/lib once, into a temp dir, and its children import from there.

import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { need } from '../../helpers/need.js';

const repo = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const distLib = join(repo, 'dist', 'lib');

/** true when dist/ is built (else a SKIP line, or a throw under CI) */
export function haveBuild(): boolean {
  return need('the built library (dist/lib)', [join(distLib, 'spool', 'index.js'), join(distLib, 'job', 'index.js')], 'run npm run build first');
}

let copy: string | undefined;

/** absolute path of a private copy of dist/lib (made on first call; see removeBuiltLib) */
export function builtLib(): string {
  if (!existsSync(distLib)) return distLib; // not built: the suite is skipped (haveBuild)
  if (copy && existsSync(copy)) return join(copy, 'lib');
  copy = mkdtempSync(join(tmpdir(), 'mailbag-built-'));
  cpSync(distLib, join(copy, 'lib'), { recursive: true });
  writeFileSync(join(copy, 'package.json'), '{"type":"module"}\n');
  return join(copy, 'lib');
}

/** remove the private copy (call from afterAll) */
export function removeBuiltLib(): void {
  if (copy) rmSync(copy, { recursive: true, force: true });
  copy = undefined;
}

/**
 * Run `script` as an ES module in a child node (MAILBAG_LOCK_RACE_DELAY_MS=30, so racers
 * meet), killed after `timeoutMs`; resolves to its exit code. Each child's exit and stderr
 * are pushed to `stderrs`, for a failing assertion to show why.
 */
export function runRacer(script: string, stderrs: string[], timeoutMs: number): Promise<number | null> {
  return new Promise((res, rej) => {
    const env = { ...process.env, MAILBAG_LOCK_RACE_DELAY_MS: '30' };
    const p = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'], env });
    let err = '';
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', rej);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      stderrs.push(`pid ${p.pid} exit ${code} ${signal ?? ''}: ${err.trim()}`);
      res(code);
    });
  });
}
