import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BsmtpBodyEncoder } from '../../../lib/lmtp/body.js';
import { encodeXtext, envelopeLines, formatParams, wireAddress } from '../../../lib/lmtp/envelope.js';

function encode(chunks: Buffer[]): string {
  const e = new BsmtpBodyEncoder();
  return Buffer.concat([...chunks.map((c) => e.push(c)), e.end()]).toString('latin1');
}

/** what a BSMTP reader does: strip the final ".", unstuff */
function decode(body: string): string {
  expect(body.endsWith('.\n')).toBe(true);
  const lines = body.slice(0, -2).split('\n');
  lines.pop();
  return lines.map((l) => (l.startsWith('.') ? l.slice(1) : l)).join('\n') + (lines.length ? '\n' : '');
}

describe('BSMTP body encoder', () => {
  it('turns CRLF into LF, stuffs leading dots, ends with "."', () => {
    expect(encode([Buffer.from('a\r\n.b\r\n..c\r\n.\r\n')])).toBe('a\n..b\n...c\n..\n.\n');
    expect(encode([])).toBe('.\n');
    expect(encode([Buffer.from('no newline')])).toBe('no newline\n.\n');
    expect(encode([Buffer.from('bare\rcr\r\nbare\nlf\r\n')])).toBe('bare\rcr\nbare\nlf\n.\n');
    expect(encode([Buffer.from('x\r\nend\r')])).toBe('x\nend\r\n.\n');
  });
  it('does not depend on where the chunks are cut (CR|LF, LF|dot)', () => {
    expect(encode([Buffer.from('a\r'), Buffer.from('\n.b\r\n')])).toBe('a\n..b\n.\n');
    expect(encode([Buffer.from('a\r\n'), Buffer.from('.b\r\n')])).toBe('a\n..b\n.\n');
    expect(encode([Buffer.from('a\r'), Buffer.from('.b\r\n')])).toBe('a\r.b\n.\n');
  });
  it('round-trips any bytes, however chunked', () => {
    const byte = fc.constantFrom(0x2e, 0x0d, 0x0a, 0x61, 0x00, 0xff, 0x20);
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 20 }).map(Buffer.from), { maxLength: 8 }), fc.array(byte, { maxLength: 60 }), (_c, bytes) => {
      const whole = Buffer.from(bytes);
      const cuts = [..._c.map((c) => c.length % (whole.length + 1))].sort((a, b) => a - b);
      const chunks: Buffer[] = [];
      let at = 0;
      for (const cut of cuts) {
        chunks.push(whole.subarray(at, Math.max(at, cut)));
        at = Math.max(at, cut);
      }
      chunks.push(whole.subarray(at));
      const out = encode(chunks);
      expect(out).toBe(encode([whole]));
      let expected = whole.toString('latin1').replace(/\r\n/g, '\n');
      if (expected.length && !expected.endsWith('\n')) expected += '\n';
      expect(decode(out)).toBe(expected);
    }), { numRuns: 500 });
  });
});

describe('envelope lines', () => {
  it('re-encodes xtext and keeps parameter order and flags', () => {
    expect(encodeXtext('a+b=c d\u00e9')).toBe('a+2Bb+3Dc+20d+E9');
    expect(formatParams({ SIZE: '12', SMTPUTF8: true, ENVID: 'x=y' })).toBe(' SIZE=12 SMTPUTF8 ENVID=x+3Dy');
    expect(formatParams(false)).toBe('');
  });
  it('gives an IDN domain back in ASCII unless SMTPUTF8', () => {
    expect(wireAddress('u@bücher.example', false)).toBe('u@xn--bcher-kva.example');
    expect(wireAddress('u@bücher.example', true)).toBe('u@bücher.example');
    expect(wireAddress('u@Example.ORG', false)).toBe('u@Example.ORG');
  });
  it('builds MAIL, RCPT… and DATA with <> for the null sender', () => {
    const l = envelopeLines({ address: '', args: { RET: 'FULL' } }, [{ address: 'a@x.test', args: { NOTIFY: 'NEVER' } }], false);
    expect(l.prefix).toBe('MAIL FROM:<> RET=FULL\nRCPT TO:<a@x.test> NOTIFY=NEVER\nDATA\n');
    expect(l.sender).toBe('');
  });
});
