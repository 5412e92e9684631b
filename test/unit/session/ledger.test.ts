// The receiver's ledger: append and find, a torn last line cut off, pruning by age,
// an unknown version refused by name.

import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Ledger } from '../../../lib/session/ledger.js';
import { tempDir } from './sites.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function dirs(): { path: string; tmp: string } {
  const t = tempDir('ledger');
  cleanups.push(t.remove);
  mkdirSync(join(t.dir, 'tmp'));
  return { path: join(t.dir, 'ledger'), tmp: join(t.dir, 'tmp') };
}

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

describe('Ledger', () => {
  it('records bags and jobs durably and finds them after reopening', async () => {
    const d = dirs();
    const l = await Ledger.open(d.path, d.tmp, 1000);
    await l.record(A, ['0190000000001abcd', '0190000000002abcd']);
    const again = await Ledger.open(d.path, d.tmp, 1000 * 86400);
    expect(again.hasBag(A)).toBe(true);
    expect(again.hasJob('0190000000002abcd')).toBe(true);
    expect(again.hasBag(B)).toBe(false);
  });

  it('cuts a torn last line: that bag counts as not committed', async () => {
    const d = dirs();
    const l = await Ledger.open(d.path, d.tmp, 86400_000);
    await l.record(A, ['0190000000001abcd']);
    appendFileSync(d.path, `${Date.now()} ${B} 0190000000003ab`);
    const again = await Ledger.open(d.path, d.tmp, 86400_000);
    expect(again.hasBag(B)).toBe(false);
    expect(again.hasBag(A)).toBe(true);
    await again.record(B, ['0190000000003abcd']);
    expect(readFileSync(d.path, 'utf8').split('\n').filter(Boolean)).toHaveLength(3);
  });

  it('prunes entries older than the retention', async () => {
    const d = dirs();
    const now = Date.now();
    const l = await Ledger.open(d.path, d.tmp, 86400_000, now);
    await l.record(A, ['0190000000001abcd'], now - 20 * 86400_000);
    await l.record(B, ['0190000000002abcd'], now);
    const again = await Ledger.open(d.path, d.tmp, 14 * 86400_000, now);
    expect(again.hasBag(A)).toBe(false);
    expect(again.hasBag(B)).toBe(true);
    expect(readFileSync(d.path, 'utf8')).not.toContain(A);
  });

  it('refuses an unknown version by name', async () => {
    const d = dirs();
    writeFileSync(d.path, 'mailbag-ledger 7\n');
    await expect(Ledger.open(d.path, d.tmp, 1)).rejects.toThrow(/unknown version 7/);
  });
});
