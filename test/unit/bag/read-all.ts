// Reading a whole bag in tests: every entry's bytes and the summary, or the refusal.

import { expect } from 'vitest';
import { BagError, readBag, type BagSummary, type ReadBagOptions } from '../../../lib/bag/index.js';

export async function readAll(source: AsyncIterable<Uint8Array>, options: ReadBagOptions = {}): Promise<{ entries: [string, Buffer][]; summary: BagSummary }> {
  const entries: [string, Buffer][] = [];
  const gen = readBag(source, options);
  for (;;) {
    const r = await gen.next();
    if (r.done) return { entries, summary: r.value };
    const parts: Buffer[] = [];
    for await (const c of r.value.stream) parts.push(c as Buffer);
    entries.push([r.value.name, Buffer.concat(parts)]);
  }
}

/** the BagError a bag is refused with (fails when it is accepted) */
export async function refusal(source: AsyncIterable<Uint8Array>, options: ReadBagOptions = {}): Promise<BagError> {
  try {
    await readAll(source, options);
  } catch (err) {
    expect(err).toBeInstanceOf(BagError);
    return err as BagError;
  }
  throw new Error('the bag was accepted');
}
