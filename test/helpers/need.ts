// Suites that need a real binary (sshd, Postfix, Exim, uux) or the shared corpus
// skip loudly when it is missing on a developer's machine, and fail under CI
// (CI=true), where .ci/run must have installed everything.

import { existsSync } from 'node:fs';

export const underCI = process.env.CI === 'true' || process.env.CI === '1';

/**
 * Returns true when every path exists. When one is missing: under CI throws (the
 * suite fails); elsewhere prints one clear line and returns false (the caller skips).
 */
export function need(what: string, paths: string[], hint: string): boolean {
  const missing = paths.filter((p) => !existsSync(p));
  if (missing.length === 0) return true;
  const line = `${what} missing (${missing.join(', ')}): ${hint}`;
  if (underCI) throw new Error(`under CI every test dependency must be installed: ${line}`);
  process.stderr.write(`SKIP ${line}\n`);
  return false;
}
