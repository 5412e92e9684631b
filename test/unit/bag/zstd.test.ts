// The zstd bag codec (lib/bag/zstd.ts): corpus mail through a zstd bag and back, byte
// for byte; and everything a hostile or broken zstd bag can be refused for: a bomb (the
// expanded cap), a frame asking for a huge window, a cut, bytes after the frame, a bad
// checksum. And what happens when the binding cannot be loaded.

import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { bagStream, createCompressor, usableCodecs, zstdUnavailable, type BagCodec, type BagJob, type BagSummary } from '../../../lib/bag/index.js';
import { readAll, refusal } from './read-all.js';
import { sniffCodec } from '../../../lib/bag/codec.js';
import { setZstdLoaderForTests, ZSTD_WINDOW_LOG_MAX } from '../../../lib/bag/zstd.js';
import { MailbagError } from '../../../lib/errors.js';
import { worstCompressed } from '../../../lib/session/store.js';
import { corpusFiles, haveCorpus } from '../../helpers/corpus.js';

function job(name: string, data: Buffer, chunk = 4096): BagJob {
  return {
    name,
    size: data.length,
    open: () => {
      const parts: Buffer[] = [];
      for (let i = 0; i < data.length; i += chunk) parts.push(data.subarray(i, i + chunk));
      return Readable.from(parts);
    },
  };
}

async function build(jobs: BagJob[], codec: BagCodec = 'zstd', level?: number): Promise<{ bytes: Buffer; summary: BagSummary }> {
  const { stream, summary } = bagStream(jobs, { codec, ...(level === undefined ? {} : { level }) });
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return { bytes: Buffer.concat(chunks), summary: await summary };
}

async function* chunked(bytes: Buffer, size = 65536): AsyncGenerator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

const text = (n: number, seed = 1): Buffer => {
  let x = seed;
  const words: string[] = [];
  let len = 0;
  while (len < n) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const w = `w${(x % 3000).toString(36)} `;
    words.push(w);
    len += w.length;
  }
  return Buffer.from(words.join('').slice(0, n));
};

afterEach(() => setZstdLoaderForTests());

describe('zstd bags', () => {
  it('the binding is built here (npm builds it at install)', () => {
    expect(zstdUnavailable()).toBeUndefined();
    expect(usableCodecs()).toEqual(['zstd', 'br', 'gzip', 'none']);
  });

  const present = haveCorpus();
  it.skipIf(!present)('corpus mail goes through a zstd bag and comes back byte for byte', async () => {
    // every 20th bulk message, the large part's first two (attachments) and the odd part
    const files = [...corpusFiles('bulk').filter((_, i) => i % 20 === 0), ...corpusFiles('large').slice(0, 2), ...corpusFiles('odd')];
    const jobs = files.map((f, i) => ({ name: `m${String(i).padStart(5, '0')}`, size: statSync(f).size, path: f, open: () => Readable.from([readFileSync(f)]) }));
    const { bytes, summary } = await build(jobs);
    expect(sniffCodec(bytes)).toBe('zstd');
    expect(summary.codec).toBe('zstd');
    expect(summary.entries).toBe(files.length);
    // the same jobs make the same bytes (the context is reused from the bag before)
    expect((await build(jobs)).summary.sha256).toBe(summary.sha256);
    for (const codec of ['zstd', 'auto'] as const) {
      const back = await readAll(chunked(bytes, 7000), { codec, expectSha256: summary.sha256 });
      expect(back.entries.length).toBe(files.length);
      back.entries.forEach(([name, data], i) => {
        expect(name).toBe(jobs[i]!.name);
        expect(data.equals(readFileSync(files[i]!))).toBe(true);
      });
      expect(back.summary).toEqual(summary);
    }
  });

  it('two bags at once on one thread, and a reused context, give the same bytes as a fresh one', async () => {
    const a = [job('a1', text(300_000, 1)), job('a2', text(90_000, 2))];
    const b = [job('b1', text(500_000, 3))];
    const first = await build(a);
    const [again, other] = await Promise.all([build(a), build(b)]);
    expect(again.bytes.equals(first.bytes)).toBe(true);
    const back = await readAll(chunked(other.bytes), { codec: 'zstd' });
    expect(back.entries[0]![1].equals(text(500_000, 3))).toBe(true);
    // the level is the zstd level: a different level, different bytes
    expect((await build(a, 'zstd', 1)).bytes.equals(first.bytes)).toBe(false);
  });

  it('pledges the size, checks a checksum, and stays under the bound the session plans with', async () => {
    const data = randomBytes(1024 * 1024);
    const { bytes, summary } = await build([job('rand', data)]);
    expect(bytes.length).toBeLessThanOrEqual(worstCompressed(summary.expanded));
    // frame header descriptor: a content size field (bits 6-7 or single segment) and the checksum flag (bit 2)
    const fhd = bytes[4]!;
    expect(fhd & 0x04).toBe(0x04);
    expect((fhd & 0xc0) !== 0 || (fhd & 0x20) !== 0).toBe(true);
    // a flipped bit in the checksum (the last 4 bytes) is refused
    const bad = Buffer.from(bytes);
    bad.writeUInt8(bad[bad.length - 2]! ^ 0x10, bad.length - 2);
    const err = await refusal(chunked(bad), { codec: 'zstd' });
    expect(err.issue).toBe('corrupt');
    expect(err.message).toMatch(/zstd/);
  });

  it('stops a zstd bomb at the expanded cap, without inflating the rest', async () => {
    const size = 256 * 1024 * 1024;
    const bomb = bagStream([{ name: 'bomb', size, open: () => Readable.from((function* () { for (let i = 0; i < size / 65536; i++) yield Buffer.alloc(65536); })()) }], { codec: 'zstd', level: 3 });
    const parts: Buffer[] = [];
    for await (const c of bomb.stream) parts.push(c as Buffer);
    const bytes = Buffer.concat(parts);
    expect(bytes.length).toBeLessThan(size / 1000);
    const cap = 8 * 1024 * 1024;
    const err = await refusal(chunked(bytes, 512), { codec: 'zstd', maxExpanded: cap });
    expect(err.issue).toBe('too-expanded');
    expect(err.code).toBe('too-big');
    // zstd packs 128 KiB of zeros in 4 bytes, so all of its input may be read ahead; what
    // counts is the inflating: stopped within one 64 KiB output chunk of the cap
    const stopped = Number(/stopped after (\d+)/.exec(err.message)?.[1]);
    expect(stopped).toBeGreaterThan(cap);
    expect(stopped).toBeLessThanOrEqual(cap + 64 * 1024);
  });

  it('refuses a frame that asks for a window over 8 MiB, and reads one of 4 MiB', async () => {
    // magic, frame header descriptor, window descriptor (windowLog = 10 + exponent), then
    // one last raw block of 0 bytes: an empty frame that asks for the window
    const frame = (windowLog: number): Buffer => Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, (windowLog - 10) << 3, 0x01, 0x00, 0x00]);
    for (const log of [ZSTD_WINDOW_LOG_MAX + 1, 30]) {
      const err = await refusal(chunked(frame(log)), { codec: 'zstd' });
      expect(err.issue).toBe('corrupt');
      expect(err.message).toMatch(/window over 8388608 bytes/);
    }
    // single segment, content size 1 GiB: the window is the content size
    const single = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xa0, 0x00, 0x00, 0x00, 0x40, 0x01, 0x00, 0x00]);
    expect((await refusal(chunked(single), { codec: 'zstd' })).message).toMatch(/window over/);
    // 4 MiB is fine: the frame decodes (to nothing, so the tar stream is cut short)
    expect((await refusal(chunked(frame(22)), { codec: 'zstd' })).issue).toBe('truncated');
  });

  it('refuses a truncated bag and bytes after the frame', async () => {
    const bag = await build([job('a', text(200_000)), job('b', Buffer.from('y'))]);
    for (const cut of [5, 40, Math.floor(bag.bytes.length / 2), bag.bytes.length - 1]) {
      const err = await refusal(chunked(bag.bytes.subarray(0, cut)), { codec: 'zstd' });
      expect(err.issue).toBe('truncated');
    }
    const empty = await build([]);
    const second = Buffer.concat([bag.bytes, empty.bytes]);
    for (const tail of [Buffer.from('garbage'), Buffer.alloc(1), empty.bytes]) {
      const joined = Buffer.concat([bag.bytes, tail]);
      // in the same chunk as the frame's end, and in a chunk of its own
      for (const source of [chunked(joined), (async function* () { yield bag.bytes; yield tail; })()]) {
        const err = await refusal(source, { codec: 'zstd' });
        expect(err.issue).toBe('corrupt');
        expect(err.message).toMatch(/after its zstd frame/);
      }
    }
    expect(second.length).toBeGreaterThan(bag.bytes.length);
  });

  it('knows zstd by its magic and refuses a bag said to be another codec', async () => {
    const bag = await build([job('a', text(10_000))]);
    expect([...bag.bytes.subarray(0, 4)]).toEqual([0x28, 0xb5, 0x2f, 0xfd]);
    expect((await refusal(chunked(bag.bytes), { codec: 'br' })).issue).toBe('codec');
    expect((await refusal(chunked(bag.bytes), { codec: 'gzip' })).issue).toBe('codec');
    const br = await build([job('a', text(10_000))], 'br');
    expect((await refusal(chunked(br.bytes), { codec: 'zstd' })).issue).toBe('codec');
  });

  it('without its binding: zstd is neither usable nor offered, says why, and the other codecs work', async () => {
    setZstdLoaderForTests(() => {
      throw new Error('simulated: binding.node cannot be opened');
    });
    const lines: string[] = [];
    expect(usableCodecs((l) => lines.push(l))).toEqual(['br', 'gzip', 'none']);
    expect(lines).toEqual([expect.stringMatching(/^zstd is not offered: cannot load zstd .*simulated/)]);
    expect(() => createCompressor('zstd')).toThrow(MailbagError);
    const br = await build([job('a', text(10_000))], 'br');
    expect((await readAll(chunked(br.bytes), { codec: 'br' })).entries[0]![1].equals(text(10_000))).toBe(true);
    setZstdLoaderForTests();
    expect(usableCodecs()).toContain('zstd');
  });
});
