// The snippets of a page in docs/, read from the page itself, for the docs-*.test.ts
// tests: each marks a fenced block with `<!-- test: NAME -->` on the line before it.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../lib/config/index.js';

export function docPage(name: string): string {
  return readFileSync(join(packageRoot(), 'docs', name), 'utf8');
}

/** the fenced block right after `<!-- test: NAME -->` in docs/PAGE */
export function docSnippet(page: string, name: string): string {
  const text = docPage(page);
  const at = text.indexOf(`<!-- test: ${name} -->\n`);
  if (at < 0) throw new Error(`docs/${page} has no snippet "${name}"`);
  const m = /^```[^\n]*\n([\s\S]*?)^```$/m.exec(text.slice(at));
  if (!m) throw new Error(`docs/${page}: snippet "${name}" has no code block`);
  return m[1]!;
}
