// Bag reader: compressed bytes → decompressor → tar → one entry at a time, each with a
// stream of its bytes. Everything a hostile peer could send is refused with a BagError
// before it costs much: entries that are not plain files or have names that are not job
// file names, an entry over the size cap (refused at its header, before its bytes are
// inflated), more entries than allowed, and a decompressed total over its cap (the
// inflater is stopped within one 64 KiB chunk of the cap: a decompression bomb never
// unfolds). Memory stays bounded: every stage has backpressure.
//
// A bag is good only when the iteration completes: the caller commits nothing before
// that (entries already yielded may be staged, never committed).

import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import tar from 'tar-stream';
import { LIMITS } from '../limits.js';
import { chunksOf } from './chunks.js';
import { createDecompressor, sniffCodec, type BagCodec, type CodecThread } from './codec.js';
import { BagError } from './errors.js';
import { isValidEntryName, showName } from './names.js';
import type { BagSummary } from './writer.js';

export interface ReadBagOptions {
  /** the codec the bag was offered in; 'auto' (default) recognises zstd, gzip and plain tar, else assumes brotli */
  codec?: BagCodec | 'auto';
  /** largest entry, bytes (default LIMITS.maxJobSizeCeiling) */
  maxEntrySize?: number;
  /** largest decompressed bag, tar headers included (default LIMITS.maxBagExpanded) */
  maxExpanded?: number;
  /** most entries (default LIMITS.maxJobsPerBag) */
  maxEntries?: number;
  /** largest compressed bag (default: no cap here; the session caps the offer) */
  maxCompressed?: number;
  /** lower-case hex SHA-256 the compressed bytes must have; checked when the stream ends */
  expectSha256?: string;
  /** a stricter name rule than the default (isValidEntryName is always applied first) */
  isValidName?: (name: string) => boolean;
  /** where the decompressor runs (default 'caller': see lib/bag/stepped.ts) */
  thread?: CodecThread;
}

export interface BagEntry {
  /** job file name, already validated */
  name: string;
  /** bytes the stream will give (from the tar header, under the cap) */
  size: number;
  /** 0-based position in the bag */
  index: number;
  /** the entry's bytes; errors are BagErrors. Read it (or not) before asking for the next entry. */
  stream: Readable;
}

const BLOCK = 512;
/** bytes looked at to check the codec: one tar block */
const HEAD_BYTES = 512;

/** Turn what a stage threw into a BagError; I/O errors of the source pass unchanged. */
export function classifyBagError(err: unknown): unknown {
  if (err instanceof BagError) return err;
  const e = err as (Error & { code?: string; errno?: number }) | undefined;
  const message = e?.message ?? String(err);
  if (/unexpected end of (file|data)/i.test(message)) return new BagError('truncated', `bag is truncated: ${message}`, { cause: err });
  if (/invalid tar header|header exceeds max size|invalid header|size mismatch|pax/i.test(message)) return new BagError('corrupt', `bag is not a valid tar stream: ${message}`, { cause: err });
  if (e?.code && (e.code.startsWith('Z_') || e.code.startsWith('ERR_BROTLI') || e.code.startsWith('ERR__'))) {
    return new BagError('corrupt', `bag does not decompress: ${message}`, { cause: err });
  }
  if (e?.errno !== undefined && typeof e.errno === 'number' && e.code === undefined) return new BagError('corrupt', `bag does not decompress: ${message}`, { cause: err });
  return err;
}

function codecError(said: BagCodec, seen: BagCodec | undefined): BagError | undefined {
  if (said === 'zstd' && seen !== 'zstd') return new BagError('codec', 'bag was said to be zstd but does not start with the zstd magic 28 B5 2F FD');
  if (said !== 'zstd' && seen === 'zstd') return new BagError('codec', `bag was said to be ${said === 'br' ? 'brotli' : said} but is zstd (starts with 28 B5 2F FD)`);
  if (said === 'gzip' && seen !== 'gzip') return new BagError('codec', 'bag was said to be gzip but does not start with the gzip magic 1F 8B');
  if (said === 'br' && seen === 'gzip') return new BagError('codec', 'bag was said to be brotli but is gzip (starts with 1F 8B)');
  if (said === 'br' && seen === 'none') return new BagError('codec', 'bag was said to be brotli but is an uncompressed tar stream');
  if (said === 'none' && seen !== 'none') return new BagError('codec', 'bag was said to be an uncompressed tar stream but has no ustar header');
  return undefined;
}

type TarEntry = tar.Extract extends AsyncIterable<infer S> ? S : never;
type StreamxState = { destroying?: boolean; destroyed?: boolean };

/** The entry's streamx stream as a node Readable whose errors are BagErrors. */
function wrapEntry(entry: TarEntry): Readable {
  const it = (entry as unknown as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  return new Readable({
    read() {
      it.next().then(
        (r) => this.push(r.done ? null : r.value),
        (err: unknown) => this.destroy(classifyBagError(err) as Error),
      );
    },
    destroy(err, cb) {
      Promise.resolve(it.return?.()).then(() => cb(err), () => cb(err));
    },
  });
}

function waitDrain(w: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      w.off('drain', done);
      w.off('close', done);
      resolve();
    };
    w.once('drain', done);
    w.once('close', done);
  });
}

/**
 * Read a bag. Yields each entry in order; returns the summary (hash, sizes) when the
 * whole stream has been read and found good. Throws BagError on anything hostile,
 * truncated or corrupt; the first problem stops all reading and inflating.
 */
export async function* readBag(source: AsyncIterable<Uint8Array>, options: ReadBagOptions = {}): AsyncGenerator<BagEntry, BagSummary, undefined> {
  const maxEntrySize = options.maxEntrySize ?? LIMITS.maxJobSizeCeiling;
  const maxExpanded = options.maxExpanded ?? LIMITS.maxBagExpanded;
  const maxEntries = options.maxEntries ?? LIMITS.maxJobsPerBag;
  const maxCompressed = options.maxCompressed ?? Number.MAX_SAFE_INTEGER;
  const hash = createHash('sha256');
  let compressed = 0;
  let expanded = 0;

  // look at the first bytes to decide or check the codec
  const said = options.codec ?? 'auto';
  // zstd, gzip and brotli are told apart by four bytes; a plain tar needs its first block.
  // Never wait for more than that: the source may be a link that has gone quiet.
  const headWanted = said === 'gzip' || said === 'br' || said === 'zstd' ? 4 : HEAD_BYTES;
  const input = source[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let headLength = 0;
  let inputEnded = false;
  while (headLength < headWanted) {
    const r = await input.next();
    if (r.done) {
      inputEnded = true;
      break;
    }
    const b = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    head.push(b);
    headLength += b.length;
  }
  if (headLength === 0) throw new BagError('truncated', 'bag is empty');
  const seen = sniffCodec(Buffer.concat(head));
  const codec: BagCodec = said === 'auto' ? (seen ?? 'br') : said;
  if (said !== 'auto') {
    const wrong = codecError(said, seen);
    if (wrong) {
      await input.return?.();
      throw wrong;
    }
  }

  const count = (b: Buffer): Buffer => {
    compressed += b.length;
    if (compressed > maxCompressed) throw new BagError('too-big', `bag is larger than the cap of ${maxCompressed} bytes`);
    hash.update(b);
    return b;
  };
  async function* compressedBytes(): AsyncGenerator<Buffer> {
    for (const b of head) yield count(b);
    if (inputEnded) return;
    for (;;) {
      const r = await input.next();
      if (r.done) return;
      yield count(Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength));
    }
  }

  const raw = Readable.from(compressedBytes(), { objectMode: false });
  const decompressor = createDecompressor(codec, options.thread === undefined ? {} : { thread: options.thread });
  raw.on('error', (err) => decompressor.destroy(err));
  raw.pipe(decompressor);
  const extract = tar.extract();
  const extractState = extract as unknown as StreamxState;
  let failure: unknown;
  const fail = (err: unknown): void => {
    failure ??= classifyBagError(err);
    if (!extractState.destroying && !extractState.destroyed) extract.destroy(failure as Error);
  };

  // feed the tar parser from the inflater, counting every decompressed byte
  const pump = (async (): Promise<void> => {
    try {
      // each inflated chunk as itself (the stream's own iterator concatenated what piled up
      // while the parser was busy); the inflater is paused while one waits
      for await (const chunk of chunksOf(decompressor, 1)) {
        expanded += chunk.length;
        if (expanded > maxExpanded) {
          throw new BagError('too-expanded', `bag expands to more than the cap of ${maxExpanded} bytes (stopped after ${expanded}; a decompression bomb?)`);
        }
        if (extractState.destroying || extractState.destroyed) return;
        if (!extract.write(chunk)) await waitDrain(extract as unknown as NodeJS.EventEmitter);
      }
      if (!extractState.destroying && !extractState.destroyed) (extract as unknown as { end(): void }).end();
    } catch (err) {
      fail(err);
    } finally {
      raw.destroy();
      decompressor.destroy();
    }
  })();

  let entries = 0;
  /** where the last entry's data (padded) ends in the tar stream: the end blocks must follow */
  let lastEntryEnd = 0;
  const names = new Set<string>();
  try {
    for await (const e of extract as unknown as AsyncIterable<TarEntry>) {
      const h = e.header;
      const name = h.name;
      const where = { entry: name };
      if (h.pax !== undefined && h.pax !== null) throw new BagError('bad-entry', `entry ${showName(name)} uses a pax extended header: bags carry plain ustar entries only`, where);
      if (h.type !== 'file') throw new BagError('bad-entry', `entry ${showName(name)} is a ${h.type ?? 'unknown'} entry, not a plain job file`, where);
      if (!isValidEntryName(name) || (options.isValidName && !options.isValidName(name))) {
        throw new BagError('bad-name', `entry name ${showName(name)} is not a job file name (no paths, no "..", at most ${LIMITS.maxBagEntryName} characters of [A-Za-z0-9._-])`, where);
      }
      const size = h.size ?? 0;
      if (size > maxEntrySize) throw new BagError('entry-too-big', `entry ${showName(name)} is ${size} bytes, over the cap of ${maxEntrySize}`, where);
      if (++entries > maxEntries) throw new BagError('too-many', `bag has more than the cap of ${maxEntries} entries`, where);
      if (names.has(name)) throw new BagError('duplicate', `entry ${showName(name)} appears twice in the bag`, where);
      names.add(name);
      lastEntryEnd = (e as unknown as { offset: number }).offset + BLOCK + Math.ceil(size / BLOCK) * BLOCK;
      const stream = wrapEntry(e);
      yield { name, size, index: entries - 1, stream };
      // the caller may have read the entry, part of it or nothing: skip the rest
      if (!stream.readableEnded) {
        if (stream.destroyed) throw (failure as Error | undefined) ?? new BagError('corrupt', `entry ${showName(name)} was abandoned before its end`, where);
        stream.resume();
        await finished(stream);
      }
    }
  } catch (err) {
    fail(err);
    // stop inflating at once, even when the source has stalled, before waiting for the pump
    raw.destroy();
    decompressor.destroy();
    await pump;
    throw failure;
  } finally {
    // also reached when the caller stops iterating early
    if (!extractState.destroyed) extract.destroy(undefined as unknown as Error);
    raw.destroy();
    decompressor.destroy();
  }
  await pump;
  if (failure) throw failure;
  // a tar stream cut at an entry boundary parses cleanly: only its end blocks tell
  if (expanded - lastEntryEnd < 2 * BLOCK) throw new BagError('truncated', 'bag is truncated: the tar stream lacks its end-of-archive blocks');
  const sha256 = hash.digest('hex');
  if (options.expectSha256 !== undefined && sha256 !== options.expectSha256.toLowerCase()) {
    throw new BagError('bad-hash', `bag hash is ${sha256}, not the ${options.expectSha256} it was offered as`);
  }
  return { sha256, size: compressed, expanded, entries, codec };
}
