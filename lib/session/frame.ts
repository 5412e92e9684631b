// The frame codec of the session protocol (docs/protocol.md §1), pure: no I/O. The
// encoder builds `type | u32 length | payload`; the decoder is fed chunks and yields
// whole frames, refusing an unknown type or a length over its type's cap before it
// buffers the payload, so nothing larger than one capped frame is ever held.

import type { Result } from '../errors.js';

export const FRAME = {
  HELLO: 0x01,
  ERROR: 0x02,
  PING: 0x03,
  BYE: 0x04,
  OFFER: 0x10,
  DATA: 0x11,
  DONE: 0x12,
  ANSWER: 0x20,
  ACK: 0x21,
  REFUSE: 0x22,
  PROGRESS: 0x23,
} as const;

export type FrameType = (typeof FRAME)[keyof typeof FRAME];

export const FRAME_NAMES: Record<number, string> = Object.fromEntries(Object.entries(FRAME).map(([k, v]) => [v, k]));

/** bytes of a frame header: type and length */
export const FRAME_HEADER = 5;
/** the largest JSON payload of a control frame */
export const MAX_CONTROL = 65_536;
/** the largest chunk of bag bytes in one DATA frame */
export const MAX_DATA_CHUNK = 262_144;
/** DATA payload: 32-byte bag hash, 8-byte offset, then bytes */
export const DATA_PREFIX = 40;
/** a DATA frame's bytes before its chunk: header and prefix */
export const DATA_HEAD = FRAME_HEADER + DATA_PREFIX;
/**
 * the chunk a sender puts in one DATA frame: small, so a link that drops often still makes
 * progress, and such that the whole frame (65,536 bytes) fills exactly two SSH channel
 * packets of 32 KiB (OpenSSH's packet size; a 64 KiB chunk took three, one of them the
 * 45-byte head: 30 % more of ssh2's CPU per MB)
 */
export const DATA_CHUNK = 65_536 - DATA_HEAD;

/** The cap of each type's payload length; a type not listed here is unknown. */
export const FRAME_CAPS: Record<number, number> = {
  [FRAME.HELLO]: MAX_CONTROL,
  [FRAME.ERROR]: MAX_CONTROL,
  [FRAME.PING]: 0,
  [FRAME.BYE]: 0,
  [FRAME.OFFER]: MAX_CONTROL,
  [FRAME.DATA]: DATA_PREFIX + MAX_DATA_CHUNK,
  [FRAME.DONE]: 0,
  [FRAME.ANSWER]: MAX_CONTROL,
  [FRAME.ACK]: MAX_CONTROL,
  [FRAME.REFUSE]: MAX_CONTROL,
  [FRAME.PROGRESS]: 8,
};

/** PROGRESS payload: DATA bytes written to partial bags in this session so far (u64 BE) */
export function encodeProgress(bytes: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(bytes));
  return encodeFrame(FRAME.PROGRESS, b);
}

export interface Frame {
  type: FrameType;
  payload: Buffer;
}

export function frameName(type: number): string {
  return FRAME_NAMES[type] ?? `0x${type.toString(16).padStart(2, '0')}`;
}

export function encodeFrame(type: FrameType, payload: Buffer = Buffer.alloc(0)): Buffer {
  const cap = FRAME_CAPS[type];
  if (cap === undefined || payload.length > cap) {
    throw new RangeError(`frame ${frameName(type)} of ${payload.length} bytes is over its cap`);
  }
  const head = Buffer.allocUnsafe(FRAME_HEADER);
  head.writeUInt8(type, 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

export function encodeJsonFrame(type: FrameType, value: unknown): Buffer {
  return encodeFrame(type, Buffer.from(JSON.stringify(value), 'utf8'));
}

/** The header and payload prefix of a DATA frame; the chunk itself follows unchanged (no copy). */
export function encodeDataHead(bagHex: string, offset: number, chunkLength: number): Buffer {
  const head = Buffer.allocUnsafe(DATA_HEAD);
  writeDataHead(head, bagHex, offset, chunkLength);
  return head;
}

/** encodeDataHead's bytes written into the first DATA_HEAD bytes of `frame` (whose chunk follows them). */
export function writeDataHead(frame: Buffer, bagHex: string, offset: number, chunkLength: number): void {
  if (chunkLength < 1 || chunkLength > MAX_DATA_CHUNK) throw new RangeError(`DATA chunk of ${chunkLength} bytes`);
  frame.writeUInt8(FRAME.DATA, 0);
  frame.writeUInt32BE(DATA_PREFIX + chunkLength, 1);
  frame.write(bagHex, FRAME_HEADER, 32, 'hex');
  frame.writeBigUInt64BE(BigInt(offset), FRAME_HEADER + 32);
}

export interface DataFrame {
  bag: string;
  offset: number;
  chunk: Buffer;
}

export function decodeData(payload: Buffer): Result<DataFrame, 'protocol'> {
  if (payload.length <= DATA_PREFIX) return { ok: false, issue: { code: 'protocol', message: 'DATA frame without bytes' } };
  const offset = payload.readBigUInt64BE(32);
  if (offset > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, issue: { code: 'protocol', message: 'DATA offset out of range' } };
  return {
    ok: true,
    value: { bag: payload.subarray(0, 32).toString('hex'), offset: Number(offset), chunk: payload.subarray(DATA_PREFIX) },
  };
}

/** What a decoder reports when the stream is not a valid frame sequence. */
export interface FrameIssue {
  code: 'protocol';
  message: string;
}

/**
 * A push decoder: feed it chunks with push(); it returns the frames completed by that
 * chunk, or an issue (after which it refuses everything). Holds at most one frame.
 */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private failed: FrameIssue | undefined;
  private seenFirst = false;
  /** bytes decoded so far (frames and partial frames) */
  bytesIn = 0;

  push(chunk: Buffer): Result<Frame[], 'protocol'> {
    if (this.failed) return { ok: false, issue: this.failed };
    this.bytesIn += chunk.length;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.pendingBytes < 1) break;
      const first = this.peek(Math.min(this.pendingBytes, FRAME_HEADER));
      const type = first[0]!;
      if (!this.seenFirst && type !== FRAME.HELLO && type !== FRAME.ERROR) {
        return this.fail(`peer did not speak mailbag: ${JSON.stringify(this.printable())}`);
      }
      const cap = FRAME_CAPS[type];
      if (cap === undefined) return this.fail(`unknown frame type ${frameName(type)}`);
      if (this.pendingBytes < FRAME_HEADER) break;
      const length = first.readUInt32BE(1);
      if (length > cap) {
        if (!this.seenFirst) return this.fail(`peer did not speak mailbag: ${JSON.stringify(this.printable())}`);
        return this.fail(`frame ${frameName(type)} too big: ${length} bytes, at most ${cap}`);
      }
      if (this.pendingBytes < FRAME_HEADER + length) break;
      const all = this.take(FRAME_HEADER + length);
      this.seenFirst = true;
      frames.push({ type: type as FrameType, payload: all.subarray(FRAME_HEADER) });
    }
    return { ok: true, value: frames };
  }

  /** bytes of an unfinished frame still held */
  get buffered(): number {
    return this.pendingBytes;
  }

  private fail(message: string): Result<Frame[], 'protocol'> {
    this.failed = { code: 'protocol', message };
    this.pending = [];
    this.pendingBytes = 0;
    return { ok: false, issue: this.failed };
  }

  private printable(): string {
    const text = this.peek(Math.min(this.pendingBytes, 200)).toString('latin1');
    // eslint-disable-next-line no-control-regex
    return text.replace(/[\x00-\x08\x0b-\x1f\x7f-\xff]/g, '?').trim();
  }

  /** the first n bytes held (n ≤ pendingBytes) as one buffer: only those n are copied when they span chunks */
  private peek(n: number): Buffer {
    const first = this.pending[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    let used = 0;
    while (off < n) {
      const c = this.pending[used]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k < c.length) {
        this.pending[used] = c.subarray(k);
        break;
      }
      used++;
    }
    this.pending.splice(0, used, out);
    return out;
  }

  private take(n: number): Buffer {
    const head = this.peek(n);
    const first = this.pending[0]!;
    if (first.length === n) this.pending.shift();
    else this.pending[0] = first.subarray(n);
    this.pendingBytes -= n;
    return head;
  }
}
