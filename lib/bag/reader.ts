// Bag reader: compressed bytes → decompressor → a walk of the tar stream (each 512-byte
// ustar header read in place: checksum, magic, type, name with its prefix, size) → one
// entry at a time, each with a stream of its bytes. The walk costs less CPU than
// tar-stream's extract did (its streams, entry objects and parser; bench/README.md,
// relay, sessions 7 and 9). Everything a hostile peer could send is refused with a BagError
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
import { LIMITS } from '../limits.js';
import { chunksOf } from './chunks.js';
import { createDecompressor, sniffCodec, type BagCodec, type CodecThread } from './codec.js';
import { BagError } from './errors.js';
import { isValidEntryName, showName } from './names.js';
import type { SteppedTransform } from './stepped.js';
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
  /**
   * the caller is done with an entry's bytes once it asks for the next entry (or stops):
   * the inflater then writes later chunks into the memory of those it has walked past,
   * instead of new buffers (the stager's promise: it copies or writes a job before it asks
   * for the next). Default false: every chunk stays the caller's.
   */
  recycle?: boolean;
}

export interface BagEntry {
  /** job file name, already validated */
  name: string;
  /** bytes the stream will give (from the tar header, under the cap) */
  size: number;
  /** 0-based position in the bag */
  index: number;
  /** the entry's bytes; errors are BagErrors. Read it (or not) before asking for the next entry. */
  readonly stream: Readable;
}

const BLOCK = 512;
/** inflater buffers remembered for recycling between two entries, at most (the rest of a large entry's are left to the collector) */
const PASSED_KEPT = 8;
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

/** One tar header as the walk needs it. */
interface TarHeader {
  name: string;
  size: number;
  type: 'file' | 'pax' | 'gnu-long-name' | string;
}

const TYPES: Record<string, string> = {
  '0': 'file',
  '\0': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'character-device',
  '4': 'block-device',
  '5': 'directory',
  '6': 'fifo',
  '7': 'contiguous-file',
  x: 'pax',
  g: 'pax',
  L: 'gnu-long-name',
  K: 'gnu-long-name',
};

/** a NUL-ended field */
function text(b: Buffer, start: number, length: number): string {
  let end = start;
  while (end < start + length && b[end] !== 0) end++;
  return b.toString('utf8', start, end);
}

/** an octal number field (spaces and NULs around it), or base-256 (first byte's high bit), as GNU tar writes large sizes */
function number(b: Buffer, start: number, length: number): number {
  if (b[start]! & 0x80) {
    let n = b[start]! & 0x7f;
    for (let i = start + 1; i < start + length; i++) n = n * 256 + b[i]!;
    return n;
  }
  let i = start;
  const end = start + length;
  while (i < end && b[i] === 0x20) i++;
  let n = 0;
  let digits = 0;
  for (; i < end && b[i]! >= 0x30 && b[i]! <= 0x37; i++, digits++) n = n * 8 + (b[i]! - 0x30);
  for (; i < end; i++) if (b[i] !== 0 && b[i] !== 0x20) return NaN;
  return digits ? n : NaN;
}

/**
 * A 512-byte tar header, or undefined for a block of zeros (the end blocks; skipped).
 * Throws BagError corrupt for a header whose checksum does not match or that is not ustar.
 */
function parseTarHeader(b: Buffer): TarHeader | undefined {
  let sum = 0;
  let zero = true;
  for (let i = 0; i < BLOCK; i++) {
    const c = b[i]!;
    if (c !== 0) zero = false;
    sum += i >= 148 && i < 156 ? 0x20 : c;
  }
  if (zero) return undefined;
  if (number(b, 148, 8) !== sum) throw new BagError('corrupt', 'bag is not a valid tar stream: invalid tar header (its checksum does not match)');
  const magic = b.toString('latin1', 257, 263);
  if (magic !== 'ustar\0' && magic !== 'ustar ') throw new BagError('corrupt', 'bag is not a valid tar stream: invalid tar header (not ustar)');
  const flag = String.fromCharCode(b[156]!);
  const size = number(b, 124, 12);
  if (Number.isNaN(size)) throw new BagError('corrupt', 'bag is not a valid tar stream: invalid tar header (its size)');
  const prefix = magic === 'ustar\0' ? text(b, 345, 155) : '';
  const name = text(b, 0, 100);
  return { name: prefix ? `${prefix}/${name}` : name, size, type: TYPES[flag] ?? `type ${JSON.stringify(flag)}` };
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
  // the tar stream walked here, pulled as the caller reads: each inflated chunk as itself
  // (the inflater is paused while nobody asks), each header read in place
  const inflated = chunksOf(decompressor, 1);
  // the memory of inflated chunks the walk has passed the end of, given back to the
  // inflater between two entries (options.recycle)
  const recycler = options.recycle && typeof (decompressor as Partial<SteppedTransform>).recycle === 'function' ? (decompressor as SteppedTransform) : undefined;
  const passed: ArrayBufferLike[] = [];
  const giveBack = (): void => {
    for (const m of passed) recycler!.recycle(m);
    passed.length = 0;
  };
  let leftover: Buffer | undefined;
  let inflatedEnded = false;
  /** the next bytes of the tar stream (at most `max`), undefined at its end */
  const pull = async (max: number): Promise<Buffer | undefined> => {
    let b = leftover;
    leftover = undefined;
    if (!b) {
      if (inflatedEnded) return undefined;
      const r = await inflated.next();
      if (r.done) {
        inflatedEnded = true;
        return undefined;
      }
      b = r.value;
      expanded += b.length;
      if (expanded > maxExpanded) {
        throw new BagError('too-expanded', `bag expands to more than the cap of ${maxExpanded} bytes (stopped after ${expanded}; a decompression bomb?)`);
      }
    }
    if (b.length > max) {
      leftover = b.subarray(max);
      b = b.subarray(0, max);
    } else if (recycler && b.byteOffset + b.length === b.buffer.byteLength && passed.length < PASSED_KEPT) {
      // the last bytes of the inflater's buffer: all of it has been walked
      passed.push(b.buffer);
    }
    return b;
  };
  /** where the walk is in the tar stream */
  let offset = 0;
  const header = Buffer.alloc(BLOCK);
  /** the next header, undefined at the stream's end; blocks of zeros are skipped */
  const nextHeader = async (): Promise<TarHeader | undefined> => {
    for (;;) {
      let filled = 0;
      while (filled < BLOCK) {
        const b = await pull(BLOCK - filled);
        if (!b) {
          if (filled === 0) return undefined;
          throw new BagError('truncated', 'bag is truncated: unexpected end of data in a tar header');
        }
        b.copy(header, filled);
        filled += b.length;
      }
      offset += BLOCK;
      const h = parseTarHeader(header);
      if (h) return h;
    }
  };

  let entries = 0;
  /** where the last entry's data (padded) ends in the tar stream: the end blocks must follow */
  let lastEntryEnd = 0;
  const names = new Set<string>();
  let current: Readable | undefined;
  try {
    for (let h = await nextHeader(); h; h = await nextHeader()) {
      const name = h.name;
      const where = { entry: name };
      if (h.type === 'pax') throw new BagError('bad-entry', `entry ${showName(name)} is a pax extended header: bags carry plain ustar entries only`, where);
      if (h.type === 'gnu-long-name') throw new BagError('bad-name', `entry ${showName(name)} is a GNU long name: bags carry names of at most ${LIMITS.maxBagEntryName} characters`, where);
      if (h.type !== 'file') throw new BagError('bad-entry', `entry ${showName(name)} is a ${h.type} entry, not a plain job file`, where);
      if (!isValidEntryName(name) || (options.isValidName && !options.isValidName(name))) {
        throw new BagError('bad-name', `entry name ${showName(name)} is not a job file name (no paths, no "..", at most ${LIMITS.maxBagEntryName} characters of [A-Za-z0-9._-])`, where);
      }
      const size = h.size;
      if (size > maxEntrySize) throw new BagError('entry-too-big', `entry ${showName(name)} is ${size} bytes, over the cap of ${maxEntrySize}`, where);
      if (++entries > maxEntries) throw new BagError('too-many', `bag has more than the cap of ${maxEntries} entries`, where);
      if (names.has(name)) throw new BagError('duplicate', `entry ${showName(name)} appears twice in the bag`, where);
      names.add(name);
      const padded = Math.ceil(size / BLOCK) * BLOCK;
      lastEntryEnd = offset + padded;
      let remaining = size;
      /** the entry's next bytes, counted off; undefined once all are read */
      const more = async (): Promise<Buffer | undefined> => {
        if (remaining === 0) return undefined;
        // errors are BagErrors here already, whichever way the entry is read
        const b = await pull(remaining).catch((err: unknown) => {
          throw classifyBagError(err);
        });
        if (!b) throw new BagError('truncated', `bag is truncated: unexpected end of data in entry ${showName(name)}`, where);
        remaining -= b.length;
        offset += b.length;
        return b;
      };
      let stream: Readable | undefined;
      const entry: BagEntry = {
        name,
        size,
        index: entries - 1,
        get stream(): Readable {
          return (stream ??= current = new Readable({
            read() {
              more().then(
                (b) => this.push(b ?? null),
                (err: unknown) => this.destroy(classifyBagError(err) as Error),
              );
            },
          }));
        },
      };
      yield entry;
      // the caller may have read the entry, part of it or nothing: skip the rest
      if (stream) {
        if (!stream.readableEnded) {
          if (stream.destroyed) throw (stream.errored as Error | null) ?? new BagError('corrupt', `entry ${showName(name)} was abandoned before its end`, where);
          stream.resume();
          await finished(stream);
        }
      } else {
        while (await more());
      }
      current = undefined;
      // the padding to the next block
      for (let pad = padded - size; pad > 0; ) {
        const b = await pull(pad);
        if (!b) break;
        pad -= b.length;
        offset += b.length;
      }
      // the caller has asked for the next entry: it holds none of this one's bytes
      if (recycler) giveBack();
    }
  } catch (err) {
    const failure = classifyBagError(err);
    current?.destroy(failure as Error);
    raw.destroy();
    decompressor.destroy();
    throw failure;
  } finally {
    // also reached when the caller stops iterating early
    raw.destroy();
    decompressor.destroy();
    await inflated.return(undefined).catch(() => undefined);
  }
  // a tar stream cut at an entry boundary parses cleanly: only its end blocks tell
  if (expanded - lastEntryEnd < 2 * BLOCK) throw new BagError('truncated', 'bag is truncated: the tar stream lacks its end-of-archive blocks');
  const sha256 = hash.digest('hex');
  if (options.expectSha256 !== undefined && sha256 !== options.expectSha256.toLowerCase()) {
    throw new BagError('bad-hash', `bag hash is ${sha256}, not the ${options.expectSha256} it was offered as`);
  }
  return { sha256, size: compressed, expanded, entries, codec };
}
