// Bag codecs: the compression around a bag's tar stream. zstd (zstd.ts: level 8 by
// default) is the one mailbag prefers when both sides have its binding; brotli (quality 5
// by default) otherwise; gzip is understood everywhere; none is for tests and links that
// compress themselves. Brotli has no magic number, so the codec travels in the protocol;
// zstd (28 B5 2F FD), gzip (1F 8B) and plain tar (`ustar` at byte 257, or an empty
// archive) can be recognised. The engines run on the calling thread (stepped.ts): one
// malloc arena, not one per libuv pool thread, so a session's memory does not climb bag
// after bag.

import { PassThrough, type Transform } from 'node:stream';
import { constants, createBrotliCompress, createBrotliDecompress, createGunzip, createGzip } from 'node:zlib';
import { canStep, SteppedCodec } from './stepped.js';
import { createZstdCompressor, createZstdDecompressor, zstdUnavailable } from './zstd.js';

export { DEFAULT_ZSTD_LEVEL, ZSTD_WINDOW_LOG, ZSTD_WINDOW_LOG_MAX, zstdUnavailable } from './zstd.js';

export type BagCodec = 'zstd' | 'br' | 'gzip' | 'none';

/** every codec, best first */
export const BAG_CODECS: readonly BagCodec[] = ['zstd', 'br', 'gzip', 'none'];

/**
 * The codecs this process can read and build, best first: BAG_CODECS without zstd when
 * its binding cannot be loaded (zstdUnavailable loads it: a binding that exists but fails to load is not offered).
 * `trace`, when given, gets one line saying why zstd is left out.
 */
export function usableCodecs(trace?: (line: string) => void): BagCodec[] {
  const why = zstdUnavailable();
  if (why === undefined) return [...BAG_CODECS];
  trace?.(`zstd is not offered: ${why}`);
  return BAG_CODECS.filter((c) => c !== 'zstd');
}

/**
 * brotli quality used when none is given. 5, not 4: on the bulk corpus (10,160 jobs,
 * 8 MiB bags) q4 makes 0.203 of raw on the wire, q5 0.193 — under issue 3's 0.20 —
 * and an in-process session took the same time with either (14.4 s against 14.6 s):
 * the receiver's file work, not the compressor, sets the pace. q6 and up cost 2-4 x
 * the CPU for 1-3 % fewer bytes (bench/README.md "bag-codec").
 */
export const DEFAULT_BROTLI_QUALITY = 5;
/** gzip level used when none is given */
export const DEFAULT_GZIP_LEVEL = 6;
/** brotli window (log2 bytes): 4 MiB, so a receiver needs little memory to inflate */
export const BROTLI_WINDOW_BITS = 22;

export function isBagCodec(s: string): s is BagCodec {
  return (BAG_CODECS as readonly string[]).includes(s);
}

export interface CompressOptions {
  /** zstd level (default 8), brotli quality 0–11 (default 5) or gzip level 1–9 (default 6) */
  level?: number;
  /**
   * bytes that will go in, when known: streaming brotli then packs as well as one-shot
   * compression (about 4 % smaller bags at quality 4; bench/README.md). For zstd it is
   * pledged in the frame and must be exact.
   */
  sizeHint?: number;
  /** where the engine runs (default 'caller'; see CodecThread) */
  thread?: CodecThread;
}

/** output chunk of the compressors */
const DEFLATE_CHUNK = 64 * 1024;
/** the smallest output buffer node:zlib allows: the engines we step never use their own */
const ENGINE_CHUNK = constants.Z_MIN_CHUNK;

/**
 * Where the engine runs: 'caller' (default) steps it synchronously on the calling thread;
 * 'pool' is node:zlib's own stream, on libuv's thread pool. Both give the same bytes.
 */
export type CodecThread = 'caller' | 'pool';

/**
 * The engine `make` builds, stepped on the calling thread unless `thread` is 'pool' or
 * this Node's engines cannot be stepped; `chunkSize` is the output chunk either way.
 */
function engineFor(make: (chunkSize: number) => Transform, processFlag: number, finishFlag: number, chunkSize: number, thread: CodecThread | undefined): Transform {
  if (thread !== 'pool') {
    const engine = make(ENGINE_CHUNK);
    if (canStep(engine)) return new SteppedCodec(engine, processFlag, finishFlag, chunkSize);
    engine.destroy();
  }
  return make(chunkSize);
}

export function createCompressor(codec: BagCodec, options: CompressOptions = {}): Transform {
  switch (codec) {
    case 'zstd':
      // stepped on the calling thread always: the binding has no thread pool of its own
      return createZstdCompressor(DEFLATE_CHUNK, { level: options.level, pledgedSize: options.sizeHint });
    case 'br': {
      const params = {
        [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
        [constants.BROTLI_PARAM_QUALITY]: options.level ?? DEFAULT_BROTLI_QUALITY,
        [constants.BROTLI_PARAM_LGWIN]: BROTLI_WINDOW_BITS,
        ...(options.sizeHint ? { [constants.BROTLI_PARAM_SIZE_HINT]: Math.min(options.sizeHint, 2 ** 30) } : {}),
      };
      return engineFor((chunkSize) => createBrotliCompress({ params, chunkSize }), constants.BROTLI_OPERATION_PROCESS, constants.BROTLI_OPERATION_FINISH, DEFLATE_CHUNK, options.thread);
    }
    case 'gzip': {
      const level = options.level ?? DEFAULT_GZIP_LEVEL;
      return engineFor((chunkSize) => createGzip({ level, chunkSize }), constants.Z_NO_FLUSH, constants.Z_FINISH, DEFLATE_CHUNK, options.thread);
    }
    case 'none':
      return new PassThrough();
  }
}

/** output chunk of the inflaters: the granularity at which the expanded-size cap is checked */
export const INFLATE_CHUNK = 64 * 1024;

export function createDecompressor(codec: BagCodec, options: { thread?: CodecThread } = {}): Transform {
  switch (codec) {
    case 'zstd':
      return createZstdDecompressor(INFLATE_CHUNK);
    case 'br':
      return engineFor((chunkSize) => createBrotliDecompress({ chunkSize }), constants.BROTLI_OPERATION_PROCESS, constants.BROTLI_OPERATION_FINISH, INFLATE_CHUNK, options.thread);
    case 'gzip':
      return engineFor((chunkSize) => createGunzip({ chunkSize }), constants.Z_NO_FLUSH, constants.Z_FINISH, INFLATE_CHUNK, options.thread);
    case 'none':
      return new PassThrough();
  }
}

/**
 * What the first bytes of a bag say about its codec: 'zstd' for 28 B5 2F FD, 'gzip' for
 * 1F 8B, 'none' for a ustar header, undefined when they say nothing (brotli, or too few
 * bytes).
 */
export function sniffCodec(head: Uint8Array): BagCodec | undefined {
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 262 && Buffer.from(head.subarray(257, 262)).toString('latin1') === 'ustar') return 'none';
  // an empty tar stream is all zeros (its end-of-archive blocks)
  if (head.length >= 512 && head.subarray(0, 512).every((b) => b === 0)) return 'none';
  return undefined;
}
