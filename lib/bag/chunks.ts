// The chunks of a byte stream one by one, as they came (see chunksOf).

import { finished, type Readable } from 'node:stream';

/** chunks a reader of chunksOf() holds, by default, before the stream is paused */
const CHUNKS_QUEUED = 8;

/**
 * The chunks of `input` as they came, one by one, for `for await`. Unlike the stream's own
 * async iterator, which takes everything buffered with read() and so concatenates several
 * chunks into a new buffer each time the reader was busy, each chunk is handed on as
 * itself (the session's read loop and the bag reader's inflater: each about 0.05–0.1 s of
 * `serve`'s main thread in 26 MB of bags). The stream is paused while `queued` chunks wait
 * (default CHUNKS_QUEUED). Ends and fails as the stream's iterator does: an error or a
 * close before the end is thrown, and a reader that stops early (break, return, throw)
 * destroys the stream.
 */
export async function* chunksOf(input: Readable, queued = CHUNKS_QUEUED): AsyncGenerator<Buffer> {
  const queue: Buffer[] = [];
  /** undefined while the stream runs; null at its clean end; the error otherwise */
  let end: Error | null | undefined;
  let wake: (() => void) | undefined;
  const onData = (chunk: Buffer): void => {
    queue.push(chunk);
    if (queue.length >= queued) input.pause();
    wake?.();
  };
  input.on('data', onData);
  const stop = finished(input, { writable: false }, (err) => {
    end = err ?? null;
    wake?.();
  });
  let clean = false;
  try {
    for (;;) {
      const chunk = queue.shift();
      if (chunk !== undefined) {
        if (queue.length === 0 && input.isPaused()) input.resume();
        yield chunk;
        continue;
      }
      if (end === null) {
        clean = true;
        return;
      }
      if (end) throw end;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
  } finally {
    input.off('data', onData);
    stop();
    // as the stream's own iterator does: destroyed when the reader stops early, and at the
    // end too when the stream destroys itself anyway (autoDestroy)
    if (!input.destroyed && (!clean || (input as Readable & { _readableState?: { autoDestroy?: boolean } })._readableState?.autoDestroy !== false)) input.destroy();
  }
}
