// A node:zlib engine (brotli or gzip, either direction) driven synchronously on the
// calling thread, as a Transform. node:zlib's own streams run every chunk on whichever
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

/** Whether this Node's zlib engines can be stepped synchronously (they can since Node 10; checked, not assumed). */
export function canStep(engine: unknown): boolean {
  const e = engine as Partial<Engine> | undefined;
  return typeof e?._handle?.writeSync === 'function' && e._writeState instanceof Uint32Array && e._writeState.length >= 2;
}

export class SteppedCodec extends Transform {
  private readonly engine: Engine;
  private out: Buffer;
  private outOff = 0;
  /** set while a chunk waits for the reader (push returned false) */
  private waiting: (() => void) | undefined;

  /**
   * `engine` is a fresh node:zlib stream, used only for its native handle (never written
   * to); `processFlag` and `finishFlag` are its codec's flush values (Z_NO_FLUSH/Z_FINISH,
   * BROTLI_OPERATION_PROCESS/FINISH).
   */
  constructor(
    engine: unknown,
    private readonly processFlag: number,
    private readonly finishFlag: number,
    private readonly chunkSize: number,
  ) {
    super();
    if (!canStep(engine)) throw new TypeError('this node:zlib engine cannot be stepped synchronously');
    this.engine = engine as Engine;
    // the engine reports a native error by destroying itself, which also emits 'error'
    // on it: we read `errored` instead, and this keeps that event from being uncaught
    this.engine.on('error', () => {});
    this.out = Buffer.allocUnsafe(chunkSize);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.feed(chunk, this.processFlag, cb);
  }

  override _flush(cb: TransformCallback): void {
    this.feed(Buffer.alloc(0), this.finishFlag, cb);
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
    try {
      this.engine.close();
    } catch {
      // already closed by its own error
    }
    cb(err);
  }

  /** Run `input` through the engine, pushing output, until it is all taken in and nothing more comes out. */
  private feed(input: Buffer, flush: number, cb: TransformCallback): void {
    let inOff = 0;
    const step = (): void => {
      let worked = 0;
      for (;;) {
        if (this.destroyed) return;
        const handle = this.engine._handle;
        if (!handle) return cb(this.engine.errored ?? new Error('compression engine closed'));
        const availOutBefore = this.chunkSize - this.outOff;
        const availInBefore = input.length - inOff;
        try {
          handle.writeSync(flush, input, inOff, availInBefore, this.out, this.outOff, availOutBefore);
        } catch (err) {
          return cb(err as Error);
        }
        if (this.engine.errored) return cb(this.engine.errored);
        const availOut = this.engine._writeState[0]!;
        const availIn = this.engine._writeState[1]!;
        const produced = availOutBefore - availOut;
        inOff += availInBefore - availIn;
        worked += produced + availInBefore - availIn;
        let more = true;
        if (produced > 0) {
          more = this.push(this.out.subarray(this.outOff, this.outOff + produced));
          this.outOff += produced;
        }
        if (availOut !== 0) return cb();
        // the output chunk is full: there may be more to come, into a new one
        this.out = Buffer.allocUnsafe(this.chunkSize);
        this.outOff = 0;
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
