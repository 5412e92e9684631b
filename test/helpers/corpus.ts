// The shared corpus of real messages (../shared/corpus beside the checkout, or
// MAILBAG_CORPUS). It is never copied into the project: it is unpacked once per
// machine into the system temp dir and read from there.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { need } from './need.js';

export type CorpusPart = 'bulk' | 'large' | 'odd';

const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export function corpusSource(): string {
  return process.env.MAILBAG_CORPUS ?? resolve(repoRoot, '../shared/corpus');
}

/** true when the corpus is there; false (after a SKIP line) when not, and throws under CI */
export function haveCorpus(): boolean {
  const src = corpusSource();
  return need('the shared mail corpus', [join(src, 'unpack.sh')], 'set MAILBAG_CORPUS or put shared/corpus beside the checkout');
}

/**
 * Unpack one part (once per machine; concurrent callers are safe) and return the
 * sorted absolute paths of its messages.
 */
export function corpusFiles(part: CorpusPart): string[] {
  const src = corpusSource();
  const dest = join(tmpdir(), `mailbag-corpus-${part}`);
  if (!existsSync(join(dest, 'cur'))) {
    const work = `${dest}.tmp-${process.pid}`;
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    execFileSync('bash', [join(src, 'unpack.sh'), work, part], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 300_000 });
    try {
      renameSync(work, dest);
    } catch {
      // another process unpacked it first
      rmSync(work, { recursive: true, force: true });
    }
  }
  const cur = join(dest, 'cur');
  return readdirSync(cur).sort().map((n) => join(cur, n));
}
