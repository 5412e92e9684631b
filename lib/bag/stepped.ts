// A compression engine driven synchronously on the calling thread, as a Transform:
// SteppedTransform is the loop, SteppedCodec drives a node:zlib engine (brotli or gzip,
// either direction) and lib/bag/zstd.ts drives zstd's contexts the same way. node:zlib's own streams run every chunk on whichever
// libuv pool thread is free, and glibc gives each of those threads its own malloc arena:
// each bag's encoder or decoder (several MiB: the window, hash tables) is allocated in
// one arena and freed into another, and a session's RSS climbs with the number of bags
// (bench/README.md "bag-codec": 145 against 110 MB in a bare loop of 17 bags). Here the
// engine's native state lives and dies in one thread's arena, so the memory is reused.
// The bytes are the same as node:zlib's streams give: the same native engine, fed the same
// chunks. Output is pushed in chunks of at most `chunkSize` bytes with backpressure inside
// one input chunk too (a decompression bomb never runs ahead of its reader), and the work
// yields to the event loop every YIELD_BYTES so a long chunk does not starve the session.

import { Transform, type TransformCallback } from 'node:stream';

/** What we use of a node:zlib engine: its native handle and the state array it shares. */
interface Engine {
  _handle: { writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void } | null;
  _writeState: Uint32Array;
  errored?: Error | null;
  on(event: 'error', listener: (err: Error) => void): unknown;
  close(): void;
}

/** bytes of input or output after which a step gives the event loop a turn */
const YIELD_BYTES = 1024 * 1024;
/** output buffers given back (recycle) that a stream keeps for its next chunks, at most */
const SPARE_BUFFERS = 8;

/** Whether this Node's zlib engines can be stepped synchronously (they can since Node 10; checked, not assumed). */
export function canStep(engine: unknown): boolean {
  const e = engine as Partial<Engine> | undefined;
  return typeof e?._handle?.writeSync === 'function' && e._writeState instanceof Uint32Array && e._writeState.length >= 2;
}

/** What one call into an engine did: bytes taken from the input, bytes written to the output, and whether this input (or, finishing, the stream) is done. */
export interface StepResult {
  taken: number;
  produced: number;
  done: boolean;
}

/**
 * A compression engine stepped synchronously on the calling thread, as a Transform:
 * subclasses say what one call into their engine does (`step`, which throws on a bad
 * stream) and how to let it go (`release`). Output is pushed in chunks of at most
 * `chunkSize` bytes with backpressure inside one input chunk too, and the work yields to
 * the event loop every YIELD_BYTES. With `coalesce`, output is pushed only when a chunk
 * is full or the stream ends (a compressor: nothing waits for its partial output).
 */
export abstract class SteppedTransform extends Transform {
  private out: Buffer;
  private outOff = 0;
  /** start of the output not yet pushed (coalescing) */
  private outStart = 0;
  /** set while a chunk waits for the reader (push returned false) */
  private waiting: (() => void) | undefined;
  private released = false;
  /** output buffers given back by the reader, made the next chunks in instead of new ones */
  private readonly spare: Buffer[] = [];

  constructor(
    private readonly chunkSize: number,
    private readonly coalesce = false,
  ) {
    super();
    this.out = Buffer.allocUnsafe(chunkSize);
  }

  /** One call into the engine: take from input[inOff, inOff + inLen), write into out[outOff, outOff + outLen). */
  protected abstract step(input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number, finishing: boolean): StepResult;

  /** Let the engine go (once, when the stream is destroyed, ended or failed). */
  protected abstract release(): void;

  /**
   * Give back the memory of an output chunk whose bytes nobody reads any more: `memory` is
   * the ArrayBuffer under a chunk this stream pushed that ended at the end of its buffer
   * (the stream writes each output buffer from its start and moves to a new one only once
   * it is full, so every part of it has been pushed). The next chunks are written into it
   * instead of a new one: a reader that gives its chunks back leaves no garbage outside
   * V8's heap for a collection to find (at most SPARE_BUFFERS are kept). Anything else
   * (another size, the buffer being filled now) is ignored.
   */
  recycle(memory: ArrayBufferLike): void {
    if (memory.byteLength !== this.chunkSize || memory === this.out.buffer || this.spare.length >= SPARE_BUFFERS || this.destroyed) return;
    for (const b of this.spare) if (b.buffer === memory) return;
    this.spare.push(Buffer.from(memory, 0, this.chunkSize));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.feed(chunk, false, cb);
  }

  override _flush(cb: TransformCallback): void {
    this.feed(Buffer.alloc(0), true, cb);
  }

  override _read(size: number): void {
    const waiting = this.waiting;
    if (waiting) {
      this.waiting = undefined;
      waiting();
    }
    super._read(size);
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    this.waiting = undefined;
    this.spare.length = 0;
    if (!this.released) {
      this.released = true;
      try {
        this.release();
      } catch {
        // already closed by its own error
      }
    }
    cb(err);
  }

  /** Run `input` through the engine, pushing output, until it is all taken in and nothing more comes out. */
  private feed(input: Buffer, finishing: boolean, cb: TransformCallback): void {
    let inOff = 0;
    let idle = 0;
    const step = (): void => {
      let worked = 0;
      for (;;) {
        if (this.destroyed) return;
        const outLen = this.chunkSize - this.outOff;
        let r: StepResult;
        try {
          r = this.step(input, inOff, input.length - inOff, this.out, this.outOff, outLen, finishing);
        } catch (err) {
          return cb(err as Error);
        }
        inOff += r.taken;
        worked += r.produced + r.taken;
        this.outOff += r.produced;
        const full = this.outOff === this.chunkSize;
        let more = true;
        if (this.outOff > this.outStart && (full || !this.coalesce || (finishing && r.done))) {
          more = this.push(this.out.subarray(this.outStart, this.outOff));
          this.outStart = this.outOff;
        }
        if (r.done) return cb();
        if (r.produced === 0 && r.taken === 0 && !full) {
          // an engine that neither takes nor gives with room to do both is stuck
          if (++idle > 2) return cb(new Error('compression engine made no progress'));
        } else idle = 0;
        if (full) {
          // the output chunk is full: there may be more to come, into a new one
          this.out = this.spare.pop() ?? Buffer.allocUnsafe(this.chunkSize);
          this.outOff = 0;
          this.outStart = 0;
        }
        if (!more) {
          this.waiting = step;
          return;
        }
        if (worked >= YIELD_BYTES) {
          setImmediate(step);
          return;
        }
      }
    };
    step();
  }
}

export class SteppedCodec extends SteppedTransform {
  private readonly engine: Engine;

  /**
   * `engine` is a fresh node:zlib stream, used only for its native handle (never written
   * to); `processFlag` and `finishFlag` are its codec's flush values (Z_NO_FLUSH/Z_FINISH,
   * BROTLI_OPERATION_PROCESS/FINISH).
   */
  constructor(
    engine: unknown,
    private readonly processFlag: number,
    private readonly finishFlag: number,
    chunkSize: number,
  ) {
    super(chunkSize);
    if (!canStep(engine)) throw new TypeError('this node:zlib engine cannot be stepped synchronously');
    this.engine = engine as Engine;
    // the engine reports a native error by destroying itself, which also emits 'error'
    // on it: we read `errored` instead, and this keeps that event from being uncaught
    this.engine.on('error', () => {});
  }

  protected step(input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number, finishing: boolean): StepResult {
    const handle = this.engine._handle;
    if (!handle) throw this.engine.errored ?? new Error('compression engine closed');
    handle.writeSync(finishing ? this.finishFlag : this.processFlag, input, inOff, inLen, out, outOff, outLen);
    if (this.engine.errored) throw this.engine.errored;
    const availOut = this.engine._writeState[0]!;
    const availIn = this.engine._writeState[1]!;
    // zlib and brotli stop only when the input is taken and nothing more comes out, or
    // when the output is full
    return { taken: inLen - availIn, produced: outLen - availOut, done: availOut !== 0 };
  }

  protected release(): void {
    this.engine.close();
  }
}
