// Review: LmtpBodyEncoder (lib/lmtp/body.ts) against BsmtpBodyEncoder (lib/bsmtp/writer.ts)
// on bodies of CRs, LFs and dots only (the bytes that matter), cut at every place and at
// random places in many pieces, long lines and lines of dots only.

import { describe, expect, it } from 'vitest';
import { BsmtpBodyEncoder } from '../../../lib/bsmtp/writer.js';
import { LmtpBodyEncoder } from '../../../lib/lmtp/body.js';

function both(pieces: Buffer[]): [Buffer, Buffer] {
  const a = new LmtpBodyEncoder();
  const b = new BsmtpBodyEncoder();
  const outA: Buffer[] = [];
  const outB: Buffer[] = [];
  for (const p of pieces) {
    outA.push(Buffer.from(a.push(p)));
    outB.push(Buffer.from(b.push(p)));
  }
  outA.push(a.end());
  outB.push(b.end());
  return [Buffer.concat(outA), Buffer.concat(outB)];
}

let seed = 7;
const rnd = (n: number): number => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed % n;
};

describe('LmtpBodyEncoder: the same bytes as BsmtpBodyEncoder (review)', () => {
  it('bodies of CR, LF, dot and x, in random pieces (empty ones too)', () => {
    const alphabet = [0x0d, 0x0a, 0x2e, 0x78];
    for (let t = 0; t < 3000; t++) {
      const len = rnd(80);
      const body = Buffer.from(Array.from({ length: len }, () => alphabet[rnd(4)]!));
      const pieces: Buffer[] = [];
      for (let i = 0; i < len; ) {
        const n = rnd(6);
        pieces.push(body.subarray(i, i + n));
        i += n;
      }
      const [a, b] = both(pieces);
      expect(a.toString('latin1'), JSON.stringify(body.toString('latin1'))).toBe(b.toString('latin1'));
    }
  });

  it('dot lines only, CRs only, and long lines, cut at every place', () => {
    const bodies = [
      Buffer.from('.\n'.repeat(500)),
      Buffer.from('.\r\n'.repeat(300) + '.'),
      Buffer.from('\r'.repeat(200) + '\n.' + '\r'.repeat(70)),
      Buffer.from('..' + 'y'.repeat(5000) + '\r\r\n.' + 'z'.repeat(70) + '\r'),
      Buffer.concat([Buffer.from('.'), Buffer.alloc(3000, 0x0a)]),
    ];
    for (const body of bodies) {
      for (let cut = 0; cut <= body.length; cut += 1 + Math.floor(body.length / 200)) {
        const [a, b] = both([body.subarray(0, cut), body.subarray(cut)]);
        expect(a.equals(b)).toBe(true);
      }
      const [a, b] = both([...body].map((x) => Buffer.from([x])));
      expect(a.equals(b)).toBe(true);
    }
  });
});
