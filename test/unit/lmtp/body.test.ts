// LmtpBodyEncoder makes exactly the bytes of lib/bsmtp/writer.ts's BsmtpBodyEncoder (the
// job format, docs/formats.md) whatever the chunking: the fixed cases of the writer's own
// tests at every split, random bodies of the bytes that matter (CR, LF, dots) cut at
// random places, corpus-like CRLF text in large chunks, and its errors.

import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { BsmtpBodyEncoder } from '../../../lib/bsmtp/writer.js';
import { LmtpBodyEncoder } from '../../../lib/lmtp/body.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function encode(E: typeof BsmtpBodyEncoder | typeof LmtpBodyEncoder, parts: Uint8Array[]): string {
  const enc = new E();
  return Buffer.concat([...parts.map((p) => enc.push(p)), enc.end()]).toString('latin1');
}

describe('LmtpBodyEncoder', () => {
  const cases = ['', 'a\n', 'a', 'a\r\n', 'a\r\r\n', 'a\r', '\r', 'a\rb\n', '\r.x\n', '.', '.\n', '.\r\n',
    'x\n.\nFrom y\n', '\n\n', '\xff\x00\x80\n', '\r\r\r', '..\r\n.\r\n', 'x\r\r\ry', `${'L'.repeat(200)}\r\n.${'M'.repeat(100)}\r\n`];

  test.each(cases)('%j: the writer\'s bytes, whole, at every split and one byte at a time', (body) => {
    const bytes = b(body);
    const want = encode(BsmtpBodyEncoder, [bytes]);
    expect(encode(LmtpBodyEncoder, [bytes])).toBe(want);
    for (let cut = 0; cut <= bytes.length; cut++) {
      expect(encode(LmtpBodyEncoder, [bytes.subarray(0, cut), bytes.subarray(cut)]), `cut at ${cut}`).toBe(want);
    }
    expect(encode(LmtpBodyEncoder, [...bytes].map((x) => Uint8Array.of(x)))).toBe(want);
  });

  test('random bodies cut at random places: the same bytes as BsmtpBodyEncoder', () => {
    const piece = fc.oneof(fc.constantFrom('\r', '\n', '\r\n', '.', '..', '\r\r\n', 'a', ' '), fc.string({ maxLength: 70 }));
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 60 }), fc.array(fc.nat(), { maxLength: 8 }), (pieces, cuts) => {
        const bytes = b(pieces.join(''));
        const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((x, y) => x - y);
        const parts: Uint8Array[] = [];
        let from = 0;
        for (const c of at) {
          parts.push(bytes.subarray(from, c));
          from = c;
        }
        parts.push(bytes.subarray(from));
        expect(encode(LmtpBodyEncoder, parts)).toBe(encode(BsmtpBodyEncoder, [bytes]));
      }),
      { numRuns: 2000 },
    );
  });

  test('a line over maxLine sets lineTooLong exactly when BsmtpBodyEncoder refuses the body (an added dot counted, the LF not), whatever the cuts', () => {
    const piece = fc.oneof(fc.constantFrom('\r', '\n', '\r\n', '.', '..', '\r\r\n', 'a', ' '), fc.string({ maxLength: 12 }));
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 40 }), fc.array(fc.nat(), { maxLength: 8 }), fc.integer({ min: 1, max: 16 }), (pieces, cuts, maxLine) => {
        const bytes = b(pieces.join(''));
        const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((x, y) => x - y);
        const enc = new LmtpBodyEncoder(maxLine);
        let from = 0;
        for (const c of [...at, bytes.length]) {
          enc.push(bytes.subarray(from, c));
          from = c;
        }
        let refused = false;
        try {
          const w = new BsmtpBodyEncoder({ maxLine });
          w.push(bytes);
          w.end();
        } catch {
          refused = true;
        }
        expect(enc.lineTooLong).toBe(refused);
      }),
      { numRuns: 2000 },
    );
    // the edges: maxLine bytes pass, one more does not; a dot line counts its added dot
    const at = (body: string, maxLine: number): boolean => {
      const enc = new LmtpBodyEncoder(maxLine);
      enc.push(b(body));
      return enc.lineTooLong;
    };
    expect(at('12345\r\n', 5)).toBe(false);
    expect(at('123456\r\n', 5)).toBe(true);
    expect(at('.2345\r\n', 5)).toBe(true);
    expect(at('1234\r\r\r\n', 5)).toBe(false);
  });

  test('CRLF text in 16 KiB chunks (a socket read), and a plain Uint8Array', () => {
    const line = (i: number): string => (i % 7 === 0 ? `.dot line ${i}` : `Line ${i} ${'x'.repeat(i % 120)}`);
    const text = b(Array.from({ length: 3000 }, (_, i) => `${line(i)}\r\n`).join(''));
    const parts: Uint8Array[] = [];
    for (let i = 0; i < text.length; i += 16384) parts.push(new Uint8Array(text.subarray(i, i + 16384)));
    expect(encode(LmtpBodyEncoder, parts)).toBe(encode(BsmtpBodyEncoder, [text]));
  });

  test('a chunk of many dot lines with bare LFs (the output outgrows the chunk) at several cuts', () => {
    for (const body of ['.\n'.repeat(1000), `x${'\n.'.repeat(700)}`, '.a\n'.repeat(500)]) {
      const bytes = b(body);
      const want = encode(BsmtpBodyEncoder, [bytes]);
      expect(want.length).toBeGreaterThan(bytes.length + 16);
      for (const cut of [0, 1, 2, 3, 17, 999, bytes.length - 1, bytes.length]) {
        expect(encode(LmtpBodyEncoder, [bytes.subarray(0, cut), bytes.subarray(cut)]), `cut at ${cut}`).toBe(want);
      }
    }
  });

  test('push after end and end twice are programming errors', () => {
    const enc = new LmtpBodyEncoder();
    enc.end();
    expect(() => enc.push(b('x'))).toThrow();
    expect(() => enc.end()).toThrow();
  });
});
