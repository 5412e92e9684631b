// readBag's `recycle`: the inflater writes later chunks into the memory of chunks the walk
// has passed, once the caller has asked for the next entry (the stager copies or writes
// each job before that). The bytes must stay exact, every refusal must stay the same, and
// a caller that keeps an entry's chunks without `recycle` must find them unchanged.

import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { bagStream, readBag, zstdUnavailable, type BagCodec, type BagJob, type ReadBagOptions } from '../../../lib/bag/index.js';
import { createDecompressor, INFLATE_CHUNK } from '../../../lib/bag/codec.js';
import type { SteppedTransform } from '../../../lib/bag/stepped.js';
import { tarOf, type RawEntry } from './craft.js';
import { readAll, refusal } from './read-all.js';

/** bytes that compress a little (a bag's inflater then gives many full chunks) */
function content(seed: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = (Math.imul(seed, 2654435761) + 1) >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = i % 7 === 0 ? 0x20 : 0x41 + ((x >>> 16) % 26);
  }
  return b;
}

function job(name: string, data: Buffer): BagJob {
  return { name, size: data.length, open: () => Readable.from([data]) };
}

async function build(jobs: BagJob[], codec: BagCodec): Promise<Buffer> {
  const { stream, summary } = bagStream(jobs, { codec });
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  await summary;
  return Buffer.concat(chunks);
}

async function* chunked(bytes: Buffer, size = 40_000): AsyncGenerator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

/** every entry read, its bytes copied before the next is asked for; the distinct memories its chunks were in */
async function readCopying(bytes: Buffer, options: ReadBagOptions): Promise<{ entries: Map<string, Buffer>; memories: number }> {
  const entries = new Map<string, Buffer>();
  const memories = new Set<ArrayBufferLike>();
  for await (const e of readBag(chunked(bytes), options)) {
    const parts: Buffer[] = [];
    for await (const c of e.stream) {
      memories.add((c as Buffer).buffer);
      parts.push(c as Buffer);
    }
    entries.set(e.name, Buffer.concat(parts));
  }
  return { entries, memories: memories.size };
}

const CODECS: BagCodec[] = zstdUnavailable() === undefined ? ['zstd', 'br', 'gzip', 'none'] : ['br', 'gzip', 'none'];

// 300 jobs of 1–20 KiB, two of 300 KiB and one of 1 MiB among them: about 4.6 MB expanded
const SIZES = Array.from({ length: 300 }, (_, i) => (i === 40 || i === 200 ? 300 * 1024 : i === 120 ? 1024 * 1024 : 1024 + ((i * 7919) % (19 * 1024))));
const DATA = SIZES.map((n, i) => content(i, n));
const NAMES = SIZES.map((_, i) => `job${String(i).padStart(4, '0')}`);

describe('readBag recycle', () => {
  it.each(CODECS)('gives every entry exactly (%s), in few inflater buffers', async (codec) => {
    const bytes = await build(DATA.map((d, i) => job(NAMES[i]!, d)), codec);
    const fresh = await readCopying(bytes, { codec });
    const reused = await readCopying(bytes, { codec, recycle: true });
    for (const [i, name] of NAMES.entries()) {
      expect(fresh.entries.get(name)?.equals(DATA[i]!), name).toBe(true);
      expect(reused.entries.get(name)?.equals(DATA[i]!), name).toBe(true);
    }
    if (codec === 'none') return; // no inflater: the chunks are the source's
    // about 70 chunks of 64 KiB without; with, a few buffers go round (the large entries'
    // own are left to the collector past the few remembered)
    expect(fresh.memories).toBeGreaterThan(60);
    expect(reused.memories).toBeLessThan(fresh.memories / 2);
  });

  it('leaves a caller that keeps the chunks of every entry (no recycle) with unchanged bytes', async () => {
    const bytes = await build(DATA.map((d, i) => job(NAMES[i]!, d)), 'gzip');
    const kept: Buffer[][] = [];
    for await (const e of readBag(chunked(bytes), { codec: 'gzip' })) {
      const parts: Buffer[] = [];
      for await (const c of e.stream) parts.push(c as Buffer);
      kept.push(parts); // not copied: still the inflater's chunks
    }
    for (const [i, parts] of kept.entries()) expect(Buffer.concat(parts).equals(DATA[i]!), NAMES[i]).toBe(true);
  });

  it('refuses every hostile bag as it does without recycle', async () => {
    const data = content(1, 100_000);
    const honest: RawEntry = { name: 'job1', data };
    const cases: [string, Buffer, ReadBagOptions][] = [
      ['link', gzipSync(tarOf([honest, { name: 'evil', type: '2', linkname: '/etc/passwd' }])), {}],
      ['dot-dot', gzipSync(tarOf([honest, { name: '../evil', data }])), {}],
      ['prefix', gzipSync(tarOf([honest, { name: 'job2', prefix: '../..', data }])), {}],
      ['duplicate', gzipSync(tarOf([honest, honest])), {}],
      ['pax', gzipSync(tarOf([honest, { name: 'PaxHeader', type: 'x', data: Buffer.from('20 path=../../evil\n') }])), {}],
      ['long name', gzipSync(tarOf([honest, { name: '././@LongLink', type: 'L', data: Buffer.from('x'.repeat(300)) }])), {}],
      ['too big', gzipSync(tarOf([honest, { name: 'job2', data: content(2, 300_000) }])), { maxEntrySize: 200_000 }],
      ['too many', gzipSync(tarOf(Array.from({ length: 12 }, (_, i) => ({ name: `j${i}`, data: content(i, 70_000) })))), { maxEntries: 10 }],
      ['bomb', gzipSync(tarOf([{ name: 'zeros', data: Buffer.alloc(3_000_000) }])), { maxExpanded: 1_000_000 }],
      ['truncated', gzipSync(tarOf([honest, { name: 'job2', data }])).subarray(0, 60_000), {}],
      ['no end blocks', gzipSync(tarOf([honest, { name: 'job2', data }], false)), {}],
    ];
    for (const [what, bytes, options] of cases) {
      const plain = await refusal(chunked(bytes), { codec: 'gzip', ...options });
      const reused = await refusal(chunked(bytes), { codec: 'gzip', ...options, recycle: true });
      expect([what, reused.issue, reused.message]).toEqual([what, plain.issue, plain.message]);
    }
    // and an honest bag of the same entries is read whole
    const ok = await readAll(chunked(gzipSync(tarOf([honest, { name: 'job2', data }]))), { codec: 'gzip', recycle: true });
    expect(ok.entries.map(([n, b]) => [n, b.equals(data)])).toEqual([
      ['job1', true],
      ['job2', true],
    ]);
  });
});

describe('SteppedTransform.recycle', () => {
  /** the decompressor's output chunks, each copied, and the memories they were in */
  async function inflate(d: SteppedTransform, input: Buffer, giveBack: (c: Buffer) => void): Promise<{ out: Buffer; memories: Set<ArrayBufferLike> }> {
    const parts: Buffer[] = [];
    const memories = new Set<ArrayBufferLike>();
    const done = new Promise<void>((resolve, reject) => {
      d.on('data', (c: Buffer) => {
        memories.add(c.buffer);
        parts.push(Buffer.from(c));
        giveBack(c);
      });
      d.on('end', resolve);
      d.on('error', reject);
    });
    d.end(input);
    await done;
    return { out: Buffer.concat(parts), memories };
  }

  it('writes the next chunks into memory given back, never into one given twice or still being filled', async () => {
    const raw = content(7, 40 * INFLATE_CHUNK + 123);
    const gz = gzipSync(raw);
    const d = createDecompressor('gzip') as SteppedTransform;
    const inside = d as unknown as { out: Buffer; spare: Buffer[] };
    // the buffer being filled is never taken
    d.recycle(inside.out.buffer);
    expect(inside.spare.length).toBe(0);
    // each chunk that ends its buffer is given back (twice) once the next one has come
    let last: ArrayBufferLike | undefined;
    let given = 0;
    const r = await inflate(d, gz, (c) => {
      if (last) {
        d.recycle(last);
        d.recycle(last); // a second time: ignored
        given++;
      }
      last = c.byteOffset + c.length === c.buffer.byteLength ? c.buffer : undefined;
    });
    expect(r.out.equals(raw)).toBe(true);
    expect(given).toBeGreaterThan(30);
    expect(r.memories.size).toBeLessThanOrEqual(3);
    // memory of another size is never taken
    const other = createDecompressor('gzip') as SteppedTransform;
    const foreign = Buffer.alloc(1000);
    const o = await inflate(other, gz, () => other.recycle(foreign.buffer));
    expect(o.out.equals(raw)).toBe(true);
    expect(o.memories.has(foreign.buffer)).toBe(false);
  });
});
