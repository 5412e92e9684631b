// In-process transports for tests: two Links joined back to back, optionally through
// a cutter that drops the "connection" after N bytes in one direction, the way a
// broken TCP link would. No I/O; the session runs over these exactly as over SSH.

import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { SessionError } from '../errors.js';
import { BaseLink } from './link.js';
import type { Link, Transport } from './types.js';

export interface PairOptions {
  /** drop both sides after this many bytes went from the first link to the second */
  cutAfterAtoB?: number;
  /** drop both sides after this many bytes went from the second link to the first */
  cutAfterBtoA?: number;
  /** names for describe(); default 'pair:a' and 'pair:b' */
  names?: [string, string];
  /** bytes buffered per direction before the writer sees backpressure (default 64 KiB) */
  highWaterMark?: number;
}

/** Passes exactly `limit` bytes, then calls onCut (once). */
class Cutter extends Transform {
  private left: number;
  private readonly onCut: () => void;

  constructor(limit: number, onCut: () => void, highWaterMark: number) {
    super({ highWaterMark });
    this.left = limit;
    this.onCut = onCut;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.left <= 0) {
      // a cut at 0 bytes: the first write finds the line already dead
      setImmediate(this.onCut);
      return cb();
    }
    if (chunk.length < this.left) {
      this.left -= chunk.length;
      return cb(null, chunk);
    }
    const part = chunk.subarray(0, this.left);
    this.left = 0;
    this.push(part);
    cb();
    // let the last bytes reach the reader before the "connection" drops
    setImmediate(this.onCut);
  }
}

/** Two connected Links: what one writes to `output` the other reads from `input`. */
export function createPair(options: PairOptions = {}): [Link, Link] {
  const hwm = options.highWaterMark ?? 64 * 1024;
  const [nameA, nameB] = options.names ?? ['pair:a', 'pair:b'];
  const aOut = new PassThrough({ highWaterMark: hwm });
  const bOut = new PassThrough({ highWaterMark: hwm });
  let cut = false;
  const links: BaseLink[] = [];

  const dropAll = (error: Error | undefined): void => {
    for (const s of [aToB, bToA, aOut, bOut]) if (!s.destroyed) s.destroy(error);
  };
  const onCut = (): void => {
    if (cut) return;
    cut = true;
    const err = new SessionError('link', 'connection cut by the test pair');
    for (const l of links) l.settle({ ok: false, error: err });
    dropAll(err);
  };
  const aToB = options.cutAfterAtoB !== undefined ? new Cutter(options.cutAfterAtoB, onCut, hwm) : new PassThrough({ highWaterMark: hwm });
  const bToA = options.cutAfterBtoA !== undefined ? new Cutter(options.cutAfterBtoA, onCut, hwm) : new PassThrough({ highWaterMark: hwm });
  aOut.pipe(aToB);
  bOut.pipe(bToA);

  const teardown = (who: string) => (error: Error | undefined): void => {
    const err = new SessionError('link', `${who} aborted the link${error ? `: ${error.message}` : ''}`, { cause: error });
    for (const l of links) l.settle({ ok: false, error: err });
    dropAll(err);
  };
  const a = new BaseLink({ input: bToA, output: aOut, describe: nameA, teardown: teardown(nameA) });
  const b = new BaseLink({ input: aToB, output: bOut, describe: nameB, teardown: teardown(nameB) });
  links.push(a, b);
  // the streams are destroyed with an error on a cut or abort; readers learn of it
  // from their own reads and from `done`, so the errors are not unhandled
  for (const s of [aToB, bToA, aOut, bOut]) s.on('error', () => {});

  // the pair is done when both directions have been ended by their writers and delivered
  let ended = 0;
  const oneEnded = (): void => {
    if (++ended === 2) for (const l of links) l.settle({ ok: true });
  };
  aToB.on('end', oneEnded);
  bToA.on('end', oneEnded);
  return [a, b];
}

/**
 * A Transport whose connect() hands out the first link of a fresh pair each time and
 * gives the second to `accept` (the test's in-process server).
 */
export function pairTransport(accept: (far: Link) => void, options: PairOptions | (() => PairOptions) = {}): Transport {
  let n = 0;
  return {
    describe: () => 'pair',
    async connect(opts) {
      if (opts?.signal?.aborted) throw new SessionError('link', 'connect aborted');
      const [near, far] = createPair(typeof options === 'function' ? options() : { names: [`pair#${++n}:near`, `pair#${n}:far`], ...options });
      accept(far);
      return near;
    },
  };
}
