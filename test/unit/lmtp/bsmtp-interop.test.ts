// What the listener writes is what the project's BSMTP reader (the runner's input) reads
// back: sender, recipients, every parameter with its value, and the message bytes.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BsmtpBodyEncoder } from '../../../lib/bsmtp/writer.js';
import { BsmtpReader, type BsmtpEvent } from '../../../lib/bsmtp/index.js';
import { envelopeLines, type ParsedAddress } from '../../../lib/lmtp/envelope.js';

function payload(mailFrom: ParsedAddress, rcpts: ParsedAddress[], chunks: Buffer[]): Buffer {
  const enc = new BsmtpBodyEncoder();
  return Buffer.concat([Buffer.from(envelopeLines(mailFrom, rcpts, false).prefix), ...chunks.map((c) => enc.push(c)), enc.end()]);
}

function read(bytes: Buffer): BsmtpEvent[] {
  const r = new BsmtpReader();
  return [...r.push(bytes), ...r.end()];
}

describe('LMTP job payload through the BSMTP reader', () => {
  it('keeps the envelope and its parameters', () => {
    const events = read(payload(
      { address: '', args: { SIZE: '42', RET: 'HDRS', ENVID: 'a+b=c', BODY: '8BITMIME', SMTPUTF8: true } },
      [{ address: 'x@a.test', args: { NOTIFY: 'SUCCESS,FAILURE', ORCPT: 'rfc822;x+1@a.test' } }, { address: 'y@a.test', args: false }],
      [Buffer.from('Subject: t\r\n\r\n.dot\r\n')],
    ));
    const msg = events.find((e) => e.type === 'message');
    expect(msg).toMatchObject({
      envelope: {
        sender: '',
        mailParams: [
          { name: 'SIZE', value: '42' }, { name: 'RET', value: 'HDRS' }, { name: 'ENVID', value: 'a+2Bb+3Dc' },
          { name: 'BODY', value: '8BITMIME' }, { name: 'SMTPUTF8', value: null },
        ],
        recipients: [
          { address: 'x@a.test', params: [{ name: 'NOTIFY', value: 'SUCCESS,FAILURE' }, { name: 'ORCPT', value: 'rfc822;x+2B1@a.test' }] },
          { address: 'y@a.test', params: [] },
        ],
      },
    });
    const body = Buffer.concat(events.flatMap((e) => (e.type === 'body' ? [e.chunk] : []))).toString();
    expect(body).toBe('Subject: t\n\n.dot\n');
    expect(events.some((e) => e.type === 'end-of-message')).toBe(true);
    expect(events.some((e) => e.type === 'error')).toBe(false);
  });

  it('any message bytes, however chunked, come back with LF line ends', () => {
    const byte = fc.constantFrom(0x2e, 0x0d, 0x0a, 0x61, 0x00, 0xff, 0x20);
    fc.assert(fc.property(fc.array(byte, { maxLength: 80 }), fc.array(fc.nat(80), { maxLength: 6 }), (bytes, cutsRaw) => {
      const whole = Buffer.from(bytes);
      const cuts = [...new Set(cutsRaw.map((c) => Math.min(c, whole.length)))].sort((a, b) => a - b);
      const chunks: Buffer[] = [];
      let at = 0;
      for (const c of cuts) {
        chunks.push(whole.subarray(at, c));
        at = c;
      }
      chunks.push(whole.subarray(at));
      const events = read(payload({ address: 's@x.test', args: false }, [{ address: 'r@x.test', args: false }], chunks));
      expect(events.some((e) => e.type === 'error')).toBe(false);
      const body = Buffer.concat(events.flatMap((e) => (e.type === 'body' ? [e.chunk] : []))).toString('latin1');
      // CR runs before LF go; trailing CRs go too and leave a line end behind
      let want = whole.toString('latin1').replace(/\r+\n/g, '\n');
      if (/\r+$/.test(want)) want = `${want.replace(/\r+$/, '')}\n`;
      else if (want.length && !want.endsWith('\n')) want += '\n';
      expect(body).toBe(want);
    }), { numRuns: 300 });
  });
});
