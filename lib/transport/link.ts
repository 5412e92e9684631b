// The shared machinery behind every Link: `done` settles exactly once (never rejects),
// close() half-closes and waits a bounded time before tearing down, abort() tears down
// at once, and the far side's stderr is kept as a bounded tail for error messages.

import { Writable, type Readable } from 'node:stream';
import { SessionError } from '../errors.js';
import type { CloseOptions, Link, LinkEnd } from './types.js';

/** how long close() waits for the far side to finish before it tears the link down */
export const CLOSE_GRACE_MS = 10_000;
/** bytes of the far side's stderr kept for error messages */
const STDERR_TAIL = 4096;

/** Keeps the last few KiB written to it; a Writable so stderr streams can be piped in. */
export class StderrTail extends Writable {
  private chunks: Buffer[] = [];
  private bytes = 0;

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push(Buffer.from(chunk));
    this.bytes += chunk.length;
    while (this.bytes - (this.chunks[0]?.length ?? 0) >= STDERR_TAIL && this.chunks.length > 1) {
      this.bytes -= this.chunks.shift()!.length;
    }
    cb();
  }

  /** the tail as text: its lines kept, any other control character (an escape sequence of the far side's) a '?' */
  text(): string {
    const all = Buffer.concat(this.chunks);
    // eslint-disable-next-line no-control-regex
    return all.subarray(Math.max(0, all.length - STDERR_TAIL)).toString('utf8').trim().replace(/\r/g, '').replace(/\t/g, ' ').replace(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/g, '?');
  }
}

export interface LinkParts {
  input: Readable;
  output: Writable;
  describe: string;
  /** destroy the underlying connection or process; called once, by abort() or a timed-out close() */
  teardown: (error: Error | undefined) => void;
  closeGraceMs?: number;
  /** called by close() right before our output is ended (ssh: TCP_NODELAY, so the EOF is not held back) */
  beforeEnd?: () => void;
  /**
   * let go of a far side that goes on without us (close({ detachAfterMs })), once our output
   * has finished: every byte of ours and our EOF reach it, and neither this process nor the
   * far side is killed (ssh: the TCP connection half-closed, as sshd then still writes what
   * it read to the far command's stdin, and sshd does not signal a command without a pty)
   */
  detach?: () => void;
  /**
   * close() is done once our output has finished: it does not wait for the far side's EOF
   * (the far end of a session on stdio, whose dialer waits for its exit instead)
   */
  closeWithoutEof?: boolean;
}

/** A Link over given streams; the transport calls settle() when it knows how the link ended. */
export class BaseLink implements Link {
  readonly input: Readable;
  readonly output: Writable;
  readonly done: Promise<LinkEnd>;
  readonly stderrTail = new StderrTail();
  private resolveDone!: (end: LinkEnd) => void;
  private settled = false;
  private tornDown = false;
  private abortError: Error | undefined;
  private readonly parts: LinkParts;

  constructor(parts: LinkParts) {
    this.parts = parts;
    this.input = parts.input;
    this.output = parts.output;
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    // a write after the far side vanished must not crash the process: the session
    // learns of it from `done` and from its own reads
    this.output.on('error', () => {});
  }

  describe(): string {
    return this.parts.describe;
  }

  /** record how the link ended (first call wins) */
  settle(end: Partial<LinkEnd>): void {
    if (this.settled) return;
    this.settled = true;
    let error = end.error;
    if (!error && this.abortError) {
      error =
        this.abortError instanceof SessionError
          ? this.abortError
          : new SessionError('link', `link aborted: ${this.abortError.message}`, { cause: this.abortError });
    }
    const ok = end.ok ?? (error === undefined && (end.exitCode ?? 0) === 0 && !end.signal);
    this.resolveDone({
      ok: ok && error === undefined,
      exitCode: end.exitCode ?? null,
      signal: end.signal ?? null,
      stderr: end.stderr ?? this.stderrTail.text(),
      error,
      ...(end.detached ? { detached: true } : {}),
    });
  }

  get isSettled(): boolean {
    return this.settled;
  }

  abort(error?: Error): void {
    this.abortError ??= error ?? new Error('aborted by the session');
    this.teardownOnce(this.abortError);
  }

  protected teardownOnce(error: Error | undefined): void {
    if (this.tornDown) return;
    this.tornDown = true;
    try {
      this.parts.teardown(error);
    } catch {
      // the connection is already gone
    }
  }

  async close(options: CloseOptions = {}): Promise<LinkEnd> {
    if (!this.output.writableEnded && !this.output.destroyed) {
      try {
        this.parts.beforeEnd?.();
      } catch {
        // the connection is already gone: end() below finds out
      }
      this.output.end();
    }
    if (this.parts.closeWithoutEof) return this.closeOnFinish();
    // bytes the far side sent that nobody will read must not hold the link open (an SSH
    // channel, for one, reports its close only after its data has been consumed)
    if (!this.input.destroyed && this.input.listenerCount('data') === 0 && this.input.listenerCount('readable') === 0) this.input.resume();
    const grace = this.parts.closeGraceMs ?? CLOSE_GRACE_MS;
    const started = performance.now();
    const detachAfter = this.parts.detach && options.detachAfterMs !== undefined ? Math.min(options.detachAfterMs, grace) : undefined;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.done.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), detachAfter ?? grace);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    if (timedOut && detachAfter !== undefined && (await this.outputFinished(grace - (performance.now() - started)))) {
      // the far side is still at work after our end: it goes on without us
      try {
        this.parts.detach!();
      } catch {
        // the connection is already gone
      }
      this.settle({ ok: true, detached: true });
      return this.done;
    }
    if (timedOut && !this.settled) {
      this.teardownOnce(undefined);
      // the transport settles on teardown; if it somehow does not, settle here
      this.settle({ ok: false, error: new SessionError('timeout', `${this.describe()}: the far side did not close within ${grace} ms`) });
    }
    return this.done;
  }

  /** true once our output has finished (every byte handed to the transport), false if not within `ms` or it broke */
  private async outputFinished(ms: number): Promise<boolean> {
    const out = this.output;
    if (out.writableFinished) return !this.settled;
    if (out.destroyed || ms <= 0) return false;
    let timer: NodeJS.Timeout | undefined;
    const ok = await Promise.race([
      new Promise<boolean>((resolve) => {
        out.once('finish', () => resolve(true));
        out.once('close', () => resolve(out.writableFinished));
        out.once('error', () => resolve(false));
      }),
      this.done.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), ms);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    return ok && !this.settled;
  }

  /**
   * closeWithoutEof: done (ok) once our output has finished, bounded by the grace time;
   * what the far side may still send is not read (after both BYEs nothing is due, and
   * the far side's EOF can trail by a delayed ACK: its ssh sends it as a small segment
   * behind our last one, with Nagle on)
   */
  private async closeOnFinish(): Promise<LinkEnd> {
    const out = this.output;
    const grace = this.parts.closeGraceMs ?? CLOSE_GRACE_MS;
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      this.done.then(() => true),
      new Promise<boolean>((resolve) => {
        if (out.writableFinished) return resolve(true);
        const done = (): void => resolve(!out.destroyed || out.writableFinished);
        out.once('finish', done);
        out.once('close', done);
        out.once('error', () => resolve(false));
      }),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), grace);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    if (finished) {
      this.settle({ ok: true });
      // not read any more: an open input would keep the process (and the far side's wait for our exit) going
      this.input.destroy();
    } else {
      this.teardownOnce(undefined);
      this.settle({ ok: false, error: new SessionError('timeout', `${this.describe()}: our output did not finish within ${grace} ms`) });
    }
    return this.done;
  }
}

/**
 * A Link over two existing streams — the far end of a session run as a forced command
 * (`mailbag serve` on its stdin/stdout). Done when the input has ended and the output
 * has finished, or, after close(), once the output has finished: the dialer waits for
 * this process's exit (its ssh reports the exit status), not the other way round, so
 * close() does not wait for the dialer's EOF, which its ssh may hold back behind the
 * last frame for a delayed ACK (~40 ms at every session's end).
 */
export function streamLink(input: Readable, output: Writable, describe = 'stdio'): Link {
  const link: BaseLink = new BaseLink({
    input,
    output,
    describe,
    closeWithoutEof: true,
    teardown: (error) => {
      const err = new SessionError('link', `${describe} aborted${error ? `: ${error.message}` : ''}`, { cause: error });
      link.settle({ ok: false, error: err });
      input.destroy();
      output.destroy();
    },
  });
  let parts = 0;
  const onePart = (): void => {
    if (++parts === 2) link.settle({ ok: true });
  };
  // the input is done at its end, or once destroyed: the session's read loop destroys it
  // when it stops early (an ERROR sent, chunksOf), and then no 'end' ever comes — `done`
  // never settled, the process ran out of work and `mailbag serve` exited 0 in silence
  let inputDone = false;
  const inputPart = (): void => {
    if (inputDone) return;
    inputDone = true;
    onePart();
  };
  input.once('end', inputPart);
  input.once('close', inputPart);
  output.once('finish', onePart);
  input.once('error', (e) => link.settle({ ok: false, error: new SessionError('link', `${describe}: ${e.message}`, { cause: e }) }));
  output.once('error', (e) => link.settle({ ok: false, error: new SessionError('link', `${describe}: ${e.message}`, { cause: e }) }));
  return link;
}


// chunksOf moved to lib/bag/chunks.ts (the bag reader uses it too); links' readers import it from here
export { chunksOf } from '../bag/chunks.js';
