// Shared by the deliver-* integration tests: corpus messages a real MTA passes through
// unchanged (so bodies compare byte for byte), and BSMTP dot-stuffing.

import { readFileSync } from 'node:fs';
import { corpusFiles } from '../helpers/corpus.js';

/** Corpus messages Postfix passes unchanged: LF only, no long lines, a final newline, no leading From_. */
export function plainCorpus(count: number): Buffer[] {
  const files = corpusFiles('bulk');
  const out: Buffer[] = [];
  const step = Math.max(1, Math.floor(files.length / (count * 3)));
  for (let i = 0; i < files.length && out.length < count; i += step) {
    const m = readFileSync(files[i]!);
    if (m.includes(13) || m.includes(0) || m[m.length - 1] !== 10 || m.subarray(0, 5).toString() === 'From ') continue;
    if (m.toString('latin1').split('\n').some((l) => l.length > 990)) continue;
    out.push(m);
  }
  return out;
}

/** Dot-stuff a message for a BSMTP DATA section (LF line ends kept). */
export function stuff(message: Buffer): string {
  return message.toString('latin1').split('\n').map((l) => (l.startsWith('.') ? `.${l}` : l)).join('\n');
}
