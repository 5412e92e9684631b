// Promise 7 (bounded memory): a few hundred MB stream through the bag writer and
// straight into the reader without the process growing with them. A sanity bound,
// generous on purpose: it catches buffering a whole entry or bag, not a few MB.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { bagStream, readBag, type BagCodec } from '../../../lib/bag/index.js';

const SIZE = 320 * 1024 * 1024;

/** mail-like text, different in every chunk so the compressor has real work */
function source(size: number): Readable {
  return Readable.from(
    (function* () {
      let n = 0;
      let i = 0;
      while (n < size) {
        const line = `Received: from relay${i % 977}.example.org by hub.example.net id ${(i * 2654435761) % 4294967296}; ${i}\n`.repeat(200);
        const chunk = Buffer.from(line).subarray(0, Math.min(size - n, 64 * 1024));
        n += chunk.length;
        i++;
        yield chunk;
      }
    })(),
  );
}

describe('bag memory', () => {
  it.each<BagCodec>(['br', 'gzip', 'zstd'])('streams %s bags of hundreds of MB in bounded memory', { timeout: 120_000 }, async (codec) => {
    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    const { stream, summary } = bagStream([{ name: 'big1', size: SIZE, open: () => source(SIZE) }, { name: 'small', size: 5, open: () => Readable.from([Buffer.from('small')]) }], { codec, level: 1 });
    const seen: [string, number, string][] = [];
    const expectHash = createHash('sha256');
    for await (const c of source(SIZE)) expectHash.update(c as Buffer);
    for await (const entry of readBag(stream, { codec, maxExpanded: 2 * SIZE, maxEntrySize: SIZE })) {
      const h = createHash('sha256');
      let n = 0;
      for await (const c of entry.stream) {
        h.update(c as Buffer);
        n += (c as Buffer).length;
      }
      seen.push([entry.name, n, h.digest('hex')]);
    }
    clearInterval(sample);
    const s = await summary;
    expect(seen[0]).toEqual(['big1', SIZE, expectHash.digest('hex')]);
    expect(seen[1]?.[1]).toBe(5);
    expect(s.expanded).toBeGreaterThan(SIZE);
    const growth = peak - before;
    // hundreds of MB went through; the process must not have held them
    expect(growth).toBeLessThan(128 * 1024 * 1024);
  });
});
