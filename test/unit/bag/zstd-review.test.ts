// Review of the zstd bag codec against hand-made hostile frames: a dictionary id, a
// content size that lies (either way), an endless run of empty blocks, a skippable frame,
// RLE bombs; and that the per-thread context zstd.ts keeps idle is sound after each of
// them (the next bag reads, and a bag built after them has the bytes of one built before).

import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BagError, bagStream, readBag, type BagJob, type ReadBagOptions } from '../../../lib/bag/index.js';

const MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

function job(name: string, data: Buffer): BagJob {
  return { name, size: data.length, open: () => Readable.from([data]) };
}

async function build(jobs: BagJob[]): Promise<Buffer> {
  const { stream, summary } = bagStream(jobs, { codec: 'zstd' });
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  await summary;
  return Buffer.concat(chunks);
}

async function* chunked(bytes: Buffer, size = 65536): AsyncGenerator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function readAll(source: AsyncIterable<Uint8Array>, options: ReadBagOptions = {}): Promise<[string, Buffer][]> {
  const entries: [string, Buffer][] = [];
  for await (const e of readBag(source, options)) {
    const parts: Buffer[] = [];
    for await (const c of e.stream) parts.push(c as Buffer);
    entries.push([e.name, Buffer.concat(parts)]);
  }
  return entries;
}

async function refusal(bytes: Buffer, options: ReadBagOptions = { codec: 'zstd' }): Promise<BagError> {
  try {
    await readAll(chunked(bytes), options);
  } catch (err) {
    expect(err).toBeInstanceOf(BagError);
    return err as BagError;
  }
  throw new Error('the bag was accepted');
}

const body = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => `line ${i} of the review body\n`).join(''));
const good = [job('a', body(2_000)), job('b', body(3))];

/** block header: last flag, type (0 raw, 1 RLE), size */
const block = (last: boolean, type: number, size: number): number[] => {
  const v = (size << 3) | (type << 1) | (last ? 1 : 0);
  return [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff];
};

describe('zstd bags: hostile frames (review)', () => {
  it('refuses each hostile frame, and the context kept idle is sound after each', async () => {
    const before = await build(good);
    const expected = await readAll(chunked(before), { codec: 'zstd' });
    const raw5 = [...block(true, 0, 5), 0x68, 0x65, 0x6c, 0x6c, 0x6f];
    const cases: [string, Buffer, string[]][] = [
      // FHD 0x01: a 1-byte dictionary id (5), window descriptor 2^10, an empty last raw block
      ['dictionary id', Buffer.from([...MAGIC, 0x01, 0x00, 0x05, ...block(true, 0, 0)]), ['corrupt']],
      // single segment, 1-byte content size 10, but 5 bytes of content
      ['content size too large', Buffer.from([...MAGIC, 0x20, 10, ...raw5]), ['corrupt']],
      // single segment, content size 2, 5 bytes of content
      ['content size too small', Buffer.from([...MAGIC, 0x20, 2, ...raw5]), ['corrupt']],
      // window 4 MiB, 300,000 empty raw blocks, none the last: cut short
      ['endless empty blocks', Buffer.concat([Buffer.from([...MAGIC, 0x00, 0x60]), Buffer.from(Array.from({ length: 300_000 }, () => block(false, 0, 0)).flat())]), ['truncated']],
      // RLE blocks of 128 KiB of zeros, 2,000 of them (250 MiB): the expanded cap
      ['RLE bomb', Buffer.concat([Buffer.from([...MAGIC, 0x00, 0x60]), Buffer.from(Array.from({ length: 2000 }, () => [...block(false, 1, 128 * 1024), 0]).flat())]), ['too-expanded']],
      // a checksum flag and a wrong checksum
      ['bad checksum', Buffer.from([...MAGIC, 0x24, 5, ...raw5, 1, 2, 3, 4]), ['corrupt']],
      // a skippable frame first: not the zstd magic
      ['skippable frame', Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]), before]), ['codec']],
      // a good bag, then a skippable frame
      ['skippable after', Buffer.concat([before, Buffer.from([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4])]), ['corrupt']],
    ];
    for (const [what, bytes, issues] of cases) {
      const err = await refusal(bytes, { codec: 'zstd', maxExpanded: 16 * 1024 * 1024 });
      expect(issues, `${what}: ${err.issue} ${err.message}`).toContain(err.issue);
      // the next bag on this thread reads and builds as before
      expect(await readAll(chunked(before, 7), { codec: 'zstd' }), what).toEqual(expected);
      expect((await build(good)).equals(before), what).toBe(true);
    }
  });

  it('a valid bag fed one byte at a time, and its frame end in every position of a chunk', async () => {
    const bytes = await build([job('x', body(50))]);
    const expected = await readAll(chunked(bytes), { codec: 'zstd' });
    expect(await readAll(chunked(bytes, 1), { codec: 'zstd' })).toEqual(expected);
    for (const size of [2, 3, 5, 64, bytes.length - 1]) expect(await readAll(chunked(bytes, size), { codec: 'zstd' })).toEqual(expected);
  });

  it('a bag abandoned mid-frame by its reader (the caller stops iterating) leaves a context that reads the next bag', async () => {
    const big = await build([job('a', body(200_000)), job('b', body(200_000))]);
    const gen = readBag(chunked(big, 4096), { codec: 'zstd' });
    const first = await gen.next();
    expect(first.done).toBe(false);
    await gen.return(undefined as never);
    const before = await build(good);
    expect((await readAll(chunked(before), { codec: 'zstd' })).map(([n]) => n)).toEqual(['a', 'b']);
  });
});
