// The zstd bag codec: libzstd through zstd-napi's Node-API binding (node:zlib has no
// zstd before Node 22.15). The binding is loaded from node_modules the first time it is
// needed, never at start-up: a session decides whether to offer zstd by loading it
// (zstdUnavailable: one dlopen, so a binding that exists but cannot load is not offered),
// and so does the first zstd bag built or read. Both directions are stepped synchronously on the calling thread as
// the zlib engines are (stepped.ts), so a bag worker compresses on its own thread and a
// receiver inflates without libuv's pool, each context reused bag after bag on its thread.
//
// Compression: the window is at most 4 MiB (windowLog 22, as brotli's), the bag's size is
// pledged when known (the frame then carries it, and zstd sizes its tables to it), and the
// frame ends in a checksum (XXH64, cheap). Decompression refuses a frame that asks for a
// window over 8 MiB (windowLogMax 23), bytes after the frame, and a frame cut short; the
// reader's cap on the expanded size is checked per output chunk, as for every codec.

import { createRequire } from 'node:module';
import { MailbagError } from '../errors.js';
import { BagError } from './errors.js';
import { SteppedTransform, type StepResult } from './stepped.js';

// What we use of zstd-napi's binding (its binding.d.ts), written out here: the package is
// an optional dependency, and the code must build and run where npm could not install it.
/** [bytes left to flush or a hint of input wanted, bytes written, bytes taken] */
type StreamResult = [number, number, number];
interface CCtx {
  reset(directive: number): void;
  setParameter(param: number, value: number): void;
  setPledgedSrcSize(size: number): void;
  compressStream2(dst: Uint8Array, src: Uint8Array, end: number): StreamResult;
}
interface DCtx {
  reset(directive: number): void;
  setParameter(param: number, value: number): void;
  decompressStream(dst: Uint8Array, src: Uint8Array): StreamResult;
}
interface Binding {
  CCtx: new () => CCtx;
  DCtx: new () => DCtx;
  CParameter: { compressionLevel: number; windowLog: number; checksumFlag: number };
  DParameter: { windowLogMax: number };
  EndDirective: { continue: number; end: number };
  ResetDirective: { sessionOnly: number; sessionAndParameters: number };
}

/**
 * zstd level used when none is given: on the bulk corpus (8 MiB bags) the level that
 * keeps the wire under 0.20 of raw with margin at the least CPU (bench/README.md
 * "bag-codec", zstd rows).
 */
export const DEFAULT_ZSTD_LEVEL = 8;
/** compression window (log2 bytes): 4 MiB, as brotli's, so a receiver needs little memory */
export const ZSTD_WINDOW_LOG = 22;
/** the largest window a reader accepts (log2 bytes): a frame asking for more is refused before anything is allocated */
export const ZSTD_WINDOW_LOG_MAX = 23;
/** the first four bytes of a zstd frame (0xFD2FB528, little-endian) */
export const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** a require() from this module's place (in a bundle: the bundle's, in dist/bin/), made on first use */
let req: NodeJS.Require | undefined;
const requireHere = (): NodeJS.Require => (req ??= createRequire(import.meta.url));
const defaultLoad = (): Binding => requireHere()('zstd-napi/binding.js') as Binding;

let load: () => Binding = defaultLoad;
let binding: Binding | undefined;
let loadError: MailbagError | undefined;
/** why zstd cannot be used here, once looked at ('' = it can) */
let unavailable: string | undefined;

/** The binding, loaded on first use. Throws a MailbagError ('internal') saying why when it cannot be loaded. */
function zstd(): Binding {
  if (binding) return binding;
  if (loadError) throw loadError;
  try {
    binding = load();
    return binding;
  } catch (err) {
    loadError = new MailbagError('internal', `cannot load zstd (the zstd-napi binding): ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    unavailable = loadError.message;
    throw loadError;
  }
}

/**
 * Why zstd cannot be used in this process, or undefined when it can. Loads the binding to
 * find out (its binding.js is one dlopen of binding.node: about 2.4 ms here, paid anyway
 * by every session that moves a zstd bag): a binding.node that exists but cannot be
 * loaded (built for another Node, a missing libc symbol) must not be offered in HELLO,
 * or every zstd bag the peer sends would fail, session after session.
 */
export function zstdUnavailable(): string | undefined {
  if (unavailable === undefined) {
    try {
      zstd();
      unavailable = '';
    } catch {
      // zstd() set the reason
    }
  }
  return unavailable === '' ? undefined : unavailable;
}

/**
 * Tests only: load the binding with `loader` from now on (one that throws stands for a
 * binding that cannot be loaded), or the real one again with no argument.
 */
export function setZstdLoaderForTests(loader?: () => unknown): void {
  load = loader ? (loader as () => Binding) : defaultLoad;
  binding = undefined;
  loadError = undefined;
  unavailable = undefined;
}

// One idle context of each kind is kept per thread and reused by the next bag: zstd keeps
// its tables and window when the parameters fit, so the memory is allocated once.
let idleC: CCtx | undefined;
let idleD: DCtx | undefined;

export interface ZstdCompressOptions {
  /** zstd level (default DEFAULT_ZSTD_LEVEL) */
  level?: number | undefined;
  /** exact bytes that will go in, when known: pledged in the frame header */
  pledgedSize?: number | undefined;
}

class ZstdCompress extends SteppedTransform {
  private readonly z: Binding;
  private cctx: CCtx | undefined;

  constructor(chunkSize: number, options: ZstdCompressOptions) {
    super(chunkSize, true);
    this.z = zstd();
    const cctx = idleC ?? new this.z.CCtx();
    idleC = undefined;
    const { CParameter } = this.z;
    cctx.reset(this.z.ResetDirective.sessionAndParameters);
    cctx.setParameter(CParameter.compressionLevel, options.level ?? DEFAULT_ZSTD_LEVEL);
    cctx.setParameter(CParameter.windowLog, ZSTD_WINDOW_LOG);
    cctx.setParameter(CParameter.checksumFlag, 1);
    if (options.pledgedSize !== undefined) cctx.setPledgedSrcSize(options.pledgedSize);
    this.cctx = cctx;
  }

  protected step(input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number, finishing: boolean): StepResult {
    const cctx = this.cctx;
    if (!cctx) throw new Error('zstd compressor closed');
    const { EndDirective } = this.z;
    let r: StreamResult;
    try {
      r = cctx.compressStream2(out.subarray(outOff, outOff + outLen), input.subarray(inOff, inOff + inLen), finishing ? EndDirective.end : EndDirective.continue);
    } catch (err) {
      this.dropContext();
      throw new Error(`zstd compression failed: ${(err as Error).message}`, { cause: err });
    }
    const [left, produced, taken] = r;
    // finishing: done when nothing is left to flush; else when the input is taken and
    // the output had room to spare
    return { taken, produced, done: finishing ? left === 0 : taken === inLen && produced < outLen };
  }

  /** a context that failed is not reused */
  private dropContext(): void {
    this.cctx = undefined;
  }

  protected release(): void {
    const cctx = this.cctx;
    this.cctx = undefined;
    if (cctx && !idleC) {
      cctx.reset(this.z.ResetDirective.sessionOnly);
      idleC = cctx;
    }
  }
}

class ZstdDecompress extends SteppedTransform {
  private readonly z: Binding;
  private dctx: DCtx | undefined;
  /** the frame has ended: nothing may follow */
  private ended = false;
  private started = false;

  constructor(chunkSize: number) {
    super(chunkSize);
    this.z = zstd();
    const dctx = idleD ?? new this.z.DCtx();
    idleD = undefined;
    dctx.reset(this.z.ResetDirective.sessionAndParameters);
    dctx.setParameter(this.z.DParameter.windowLogMax, ZSTD_WINDOW_LOG_MAX);
    this.dctx = dctx;
  }

  protected step(input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number, finishing: boolean): StepResult {
    if (finishing) {
      if (!this.ended) throw new BagError('truncated', this.started ? 'bag is truncated: its zstd frame ends early' : 'bag is empty: no zstd frame');
      return { taken: 0, produced: 0, done: true };
    }
    if (this.ended) {
      if (inLen > 0) throw trailing(inLen);
      return { taken: 0, produced: 0, done: true };
    }
    const dctx = this.dctx;
    if (!dctx) throw new Error('zstd decompressor closed');
    if (inLen > 0) this.started = true;
    let r: StreamResult;
    try {
      r = dctx.decompressStream(out.subarray(outOff, outOff + outLen), input.subarray(inOff, inOff + inLen));
    } catch (err) {
      this.dctx = undefined;
      const message = (err as Error).message;
      if (/too much memory|window/i.test(message)) {
        throw new BagError('corrupt', `bag does not decompress: its zstd frame asks for a window over ${2 ** ZSTD_WINDOW_LOG_MAX} bytes, the most a reader allows (zstd: ${message})`, { cause: err });
      }
      throw new BagError('corrupt', `bag does not decompress (zstd: ${message})`, { cause: err });
    }
    const [hint, produced, taken] = r;
    if (hint === 0) {
      // the frame is decoded, its checksum checked, and everything flushed
      this.ended = true;
      if (taken < inLen) throw trailing(inLen - taken);
      return { taken, produced, done: true };
    }
    return { taken, produced, done: taken === inLen && produced < outLen };
  }

  protected release(): void {
    const dctx = this.dctx;
    this.dctx = undefined;
    if (dctx && !idleD) {
      dctx.reset(this.z.ResetDirective.sessionOnly);
      idleD = dctx;
    }
  }
}

function trailing(n: number): BagError {
  return new BagError('corrupt', `bag has bytes after its zstd frame (at least ${n}): trailing garbage, or a second frame (a bag is one frame)`);
}

/** A zstd compressor stepped on the calling thread; output in chunks of `chunkSize` bytes. Throws MailbagError when the binding cannot be loaded. */
export function createZstdCompressor(chunkSize: number, options: ZstdCompressOptions = {}): SteppedTransform {
  return new ZstdCompress(chunkSize, options);
}

/** A zstd decompressor stepped on the calling thread; output in chunks of at most `chunkSize` bytes. Throws MailbagError when the binding cannot be loaded. */
export function createZstdDecompressor(chunkSize: number): SteppedTransform {
  return new ZstdDecompress(chunkSize);
}
