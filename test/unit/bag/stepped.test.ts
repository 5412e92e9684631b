// The engines stepped on the calling thread (lib/bag/stepped.ts) against node:zlib's own
// streams: the same bytes both ways, backpressure inside one input chunk (a bomb does not
// run ahead of its reader), native errors reported as stream errors, and the event loop
// kept turning during a long chunk.
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { brotliCompressSync, constants } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BagError } from '../../../lib/bag/errors.js';
import { bagStream, readBag } from '../../../lib/bag/index.js';
import { classifyBagError } from '../../../lib/bag/reader.js';
import { INFLATE_CHUNK, createCompressor, createDecompressor, type BagCodec } from '../../../lib/bag/codec.js';
import { SteppedCodec } from '../../../lib/bag/stepped.js';

async function run(t: Transform, chunks: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks), t, async (source: AsyncIterable<Buffer>) => {
    for await (const c of source) out.push(c);
  });
  return Buffer.concat(out);
}

/** mail-like text with some noise, cut into chunks of the given sizes */
function chunked(seed: number, sizes: number[]): Buffer[] {
  return sizes.map((n, i) => {
    const line = Buffer.from(`Subject: Re: [PATCH v${(seed + i) % 7}] chunk ${i} of ${seed}\nReceived: by hub.example.net id ${(seed * 2654435761 + i) % 4294967296}\n`);
    const b = Buffer.alloc(n);
    for (let o = 0; o < n; o += line.length) line.copy(b, o);
    // a little noise, the same for the same seed
    for (let o = 0, x = seed + i + 1; o < n; o += 4099) b[o] = x = (x * 1103515245 + 12345) & 0xff;
    return b;
  });
}

describe('stepped codecs', () => {
  it('are what createCompressor and createDecompressor give by default', () => {
    expect(createCompressor('br')).toBeInstanceOf(SteppedCodec);
    expect(createCompressor('gzip')).toBeInstanceOf(SteppedCodec);
    expect(createDecompressor('br')).toBeInstanceOf(SteppedCodec);
    expect(createDecompressor('gzip')).toBeInstanceOf(SteppedCodec);
    expect(createCompressor('br', { thread: 'pool' })).not.toBeInstanceOf(SteppedCodec);
    expect(createDecompressor('gzip', { thread: 'pool' })).not.toBeInstanceOf(SteppedCodec);
  });

  it('give the same bytes as node:zlib streams, and each reads the other (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<[BagCodec, number]>(['br', 1], ['br', 5], ['gzip', 1], ['gzip', 6]),
        fc.integer({ min: 0, max: 1000 }),
        fc.array(fc.integer({ min: 0, max: 300_000 }), { minLength: 0, maxLength: 6 }),
        async ([codec, level], seed, sizes) => {
          const input = chunked(seed, sizes);
          const whole = Buffer.concat(input);
          const stepped = await run(createCompressor(codec, { level, sizeHint: whole.length }), input);
          const pooled = await run(createCompressor(codec, { level, sizeHint: whole.length, thread: 'pool' }), input);
          expect(stepped.equals(pooled)).toBe(true);
          expect((await run(createDecompressor(codec), [stepped])).equals(whole)).toBe(true);
          expect((await run(createDecompressor(codec, { thread: 'pool' }), [stepped])).equals(whole)).toBe(true);
        },
      ),
      { numRuns: 25 },
    );
  }, 60_000);

  it('give the same bytes for the same chunks however fast they are written and read', async () => {
    // a bag's name is the hash of these bytes: they must not depend on timing
    for (const codec of ['br', 'gzip'] as const) {
      const input = chunked(3, [200_000, 256 * 1024, 5, 90_000]);
      // all written, then ended, then read slowly
      const eager = createCompressor(codec);
      for (const b of input) eager.write(b);
      eager.end();
      const first: Buffer[] = [];
      for await (const b of eager) {
        first.push(b as Buffer);
        await new Promise((r) => setTimeout(r, 2));
      }
      // read at once, each chunk written after the last was taken in, ended later
      const c = createCompressor(codec);
      const parts: Buffer[] = [];
      c.on('data', (b: Buffer) => parts.push(b));
      for (const b of input) {
        c.write(b);
        await new Promise((r) => setTimeout(r, 20));
      }
      c.end();
      await new Promise((r) => c.on('end', r));
      expect(Buffer.concat(parts).equals(Buffer.concat(first)), codec).toBe(true);
    }
  });

  it('do not inflate one small chunk past what the reader has taken (a bomb waits for its reader)', async () => {
    const bomb = brotliCompressSync(Buffer.alloc(256 * 1024 * 1024), { params: { [constants.BROTLI_PARAM_QUALITY]: 5 } });
    expect(bomb.length).toBeLessThan(64 * 1024);
    const d = createDecompressor('br');
    d.write(bomb);
    d.end();
    // nobody reads: give it many turns of the event loop
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(d.readableLength).toBeLessThanOrEqual(d.readableHighWaterMark + INFLATE_CHUNK);
    // now read a little: it goes on, still bounded, chunk by chunk
    let got = 0;
    for await (const c of d) {
      got += (c as Buffer).length;
      expect(d.readableLength).toBeLessThanOrEqual(d.readableHighWaterMark + INFLATE_CHUNK);
      if (got >= 8 * 1024 * 1024) break;
    }
    expect(got).toBeGreaterThanOrEqual(8 * 1024 * 1024);
    expect(d.destroyed).toBe(true);
  });

  it('let the event loop turn while one chunk inflates to many MB', async () => {
    const packed = brotliCompressSync(Buffer.alloc(32 * 1024 * 1024, 'a'));
    const d = createDecompressor('br');
    let turns = 0;
    const tick = setInterval(() => turns++, 0);
    let got = 0;
    let turnsBeforeEnd = 0;
    d.on('data', (c: Buffer) => {
      got += c.length;
      turnsBeforeEnd = turns;
    });
    d.end(packed);
    await new Promise((r) => d.on('end', r));
    clearInterval(tick);
    expect(got).toBe(32 * 1024 * 1024);
    expect(turnsBeforeEnd).toBeGreaterThan(0);
  });

  it('report corrupt and truncated input as stream errors that the bag reader classifies', async () => {
    const good = await run(createCompressor('br'), chunked(1, [100_000]));
    const corrupt = Buffer.from(good);
    corrupt[10] = corrupt[10]! ^ 0xff;
    corrupt[11] = corrupt[11]! ^ 0xff;
    const cases: [BagCodec, Buffer, string][] = [
      ['br', corrupt, 'corrupt'],
      ['br', good.subarray(0, good.length >> 1), 'truncated'],
      ['gzip', Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff]), 'corrupt'],
      ['gzip', (await run(createCompressor('gzip'), chunked(2, [50_000]))).subarray(0, 200), 'truncated'],
    ];
    for (const [codec, bytes, reason] of cases) {
      const err = await run(createDecompressor(codec), [bytes]).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, `${codec} ${reason}`).toBeInstanceOf(Error);
      const classified = classifyBagError(err);
      expect(classified).toBeInstanceOf(BagError);
      expect((classified as BagError).issue, `${codec} ${reason}`).toBe(reason);
    }
  });

  it('can be destroyed mid-stream and closed twice without throwing', async () => {
    const c = createCompressor('br');
    c.write(Buffer.alloc(300_000, 'x'));
    c.destroy();
    c.destroy();
    await new Promise((r) => setImmediate(r));
    expect(c.destroyed).toBe(true);
  });

  it('make the same bag (the same name) as the pool, and either reader reads either', async () => {
    const jobs = () => chunked(7, [120_000, 3, 0, 700_000]).map((b, i) => ({ name: `job${i}`, size: b.length, open: () => Readable.from([b]) }));
    for (const codec of ['br', 'gzip'] as const) {
      const made: Record<string, { bytes: Buffer; sha256: string }> = {};
      for (const thread of ['caller', 'pool'] as const) {
        const { stream, summary } = bagStream(jobs(), { codec, thread });
        const parts: Buffer[] = [];
        for await (const c of stream) parts.push(c as Buffer);
        made[thread] = { bytes: Buffer.concat(parts), sha256: (await summary).sha256 };
      }
      expect(made.caller!.sha256).toBe(made.pool!.sha256);
      for (const [by, bag] of Object.entries(made)) {
        for (const thread of ['caller', 'pool'] as const) {
          const sizes: number[] = [];
          for await (const e of readBag(Readable.from([bag.bytes]), { codec, thread, expectSha256: bag.sha256 })) {
            let n = 0;
            for await (const c of e.stream) n += (c as Buffer).length;
            sizes.push(n);
          }
          expect(sizes, `${codec} made by ${by}, read by ${thread}`).toEqual([120_000, 3, 0, 700_000]);
        }
      }
    }
  });
});
