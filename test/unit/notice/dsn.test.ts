import { describe, expect, it } from 'vitest';
import { composeNotice, headerOf, rfc5322Date, NOTICE_FULL_LIMIT } from '../../../lib/notice/dsn.js';

const original = Buffer.from('From: a@x.example\nSubject: hi\nMessage-ID: <m1@x>\n\nbody\n');
const base = {
  site: 'home',
  sender: 'a@x.example',
  recipients: [{ recipient: 'r@y.example', status: '5.1.1', diagnostic: 'smtp; 550 5.1.1 no such user', originalRecipient: 'rfc822;R@Y.example' }],
  reason: 'refused',
  jobId: '01a2b3c4d5e6abcd',
  now: new Date(Date.UTC(2026, 10, 22, 5, 22, 39)),
  random: 'fixed',
};

/** Split a multipart body at its boundary (what a MIME reader does first). */
function parts(msg: string): string[] {
  const b = /boundary="([^"]+)"/.exec(msg)![1]!;
  const body = msg.slice(msg.indexOf('\r\n\r\n') + 4);
  const chunks = body.split(`\r\n--${b}`);
  expect(chunks.at(-1)!.startsWith('--')).toBe(true); // the close delimiter
  return chunks.slice(1, -1).map((c) => c.replace(/^\r\n/, ''));
}

describe('composeNotice (RFC 3464)', () => {
  it('is a multipart/report with a human part, a delivery-status part and the returned message', () => {
    const msg = composeNotice({ ...base, original, originalComplete: true, envid: 'abc+2B1', arrival: new Date(Date.UTC(2026, 10, 21)) }).toString();
    expect(msg).toMatch(/^From: Mail Delivery System <MAILER-DAEMON@home>\r\nTo: <a@x\.example>\r\n/);
    expect(msg).toMatch(/\r\nContent-Type: multipart\/report; report-type=delivery-status;\r\n\tboundary="mailbag-dsn-fixed"\r\n/);
    expect(msg).toContain('\r\nAuto-Submitted: auto-replied\r\n');
    expect(msg).toContain('\r\nDate: Sun, 22 Nov 2026 05:22:39 +0000\r\n');
    // every line ends in CRLF
    expect(/[^\r]\n/.test(msg)).toBe(false);
    const [human, status, returned] = parts(msg);
    expect(human).toMatch(/^Content-Description: Notification\r\nContent-Type: text\/plain; charset=us-ascii\r\n\r\n/);
    expect(human).toContain('<r@y.example>: smtp; 550 5.1.1 no such user');
    expect(status).toContain('Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; home\r\n');
    expect(status).toContain('Original-Envelope-Id: abc+2B1\r\n');
    expect(status).toContain('Arrival-Date: Sat, 21 Nov 2026 00:00:00 +0000\r\n');
    expect(status).toContain('\r\n\r\nOriginal-Recipient: rfc822; R@Y.example\r\nFinal-Recipient: rfc822; r@y.example\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n');
    expect(returned).toMatch(/^Content-Description: Undelivered Message\r\nContent-Type: message\/rfc822\r\n\r\nFrom: a@x\.example\r\n/);
    expect(returned).toContain('\r\n\r\nbody\r\n');
  });

  it('returns only the header for RET=HDRS, for a message over the limit, or an incomplete one', () => {
    for (const extra of [{ ret: 'HDRS' as const, originalComplete: true }, { originalComplete: false }]) {
      const msg = composeNotice({ ...base, original, ...extra }).toString();
      const returned = parts(msg)[2]!;
      expect(returned).toMatch(/^Content-Description: Undelivered Message Headers\r\nContent-Type: text\/rfc822-headers\r\n/);
      expect(returned).not.toContain('body');
    }
    const big = Buffer.concat([Buffer.from('Subject: big\n\n'), Buffer.alloc(NOTICE_FULL_LIMIT + 1, 'x')]);
    expect(parts(composeNotice({ ...base, original: big, originalComplete: true }).toString())[2]).toContain('text/rfc822-headers');
  });

  it('declares 8bit (on the returned part and the multipart) when what comes back has 8-bit bytes, and only then', () => {
    const latin = Buffer.concat([Buffer.from('Subject: caf'), Buffer.from([0xe9]), Buffer.from('\n\nna'), Buffer.from([0xef]), Buffer.from('ve\n')]);
    for (const extra of [{ originalComplete: true }, { ret: 'HDRS' as const, originalComplete: true }]) {
      const msg = composeNotice({ ...base, original: latin, ...extra }).toString('latin1');
      expect(msg.slice(0, msg.indexOf('\r\n\r\n'))).toMatch(/\r\nContent-Transfer-Encoding: 8bit$/);
      expect(parts(msg)[2]).toMatch(/^Content-Description: [^\r]*\r\nContent-Type: [^\r]*\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSubject: caf\xe9/);
    }
    const plain = composeNotice({ ...base, original, originalComplete: true }).toString();
    expect(plain).not.toContain('Content-Transfer-Encoding');
  });

  it('is never addressed to the null sender', () => {
    expect(() => composeNotice({ ...base, sender: '' })).toThrow(/never sent to the null sender/);
    expect(() => composeNotice({ ...base, sender: '<>' })).toThrow(/null sender/);
  });

  it('keeps hostile text out of the fields: CR/LF folded, non-ASCII replaced, status checked', () => {
    const msg = composeNotice({ ...base, reason: 'bad\r\nBcc: x@evil', recipients: [{ recipient: 'r\n@y', status: 'junk', diagnostic: 'x\u00e9' }] }).toString();
    expect(msg).not.toMatch(/\r\nBcc:/);
    expect(msg).toContain('Final-Recipient: rfc822; r @y\r\n');
    expect(msg).toContain('Status: 5.0.0\r\n');
    expect(msg).toContain('Diagnostic-Code: x-mailbag; x?\r\n');
  });

  it('helpers: headerOf with LF and CRLF, rfc5322Date', () => {
    expect(headerOf(Buffer.from('A: 1\r\n\r\nbody')).toString()).toBe('A: 1\r\n\r\n');
    expect(headerOf(Buffer.from('A: 1\n\nbody')).toString()).toBe('A: 1\n\n');
    expect(headerOf(Buffer.from('A: 1\n')).toString()).toBe('A: 1\n');
    expect(rfc5322Date(new Date(Date.UTC(2024, 1, 29, 23, 5, 9)))).toBe('Thu, 29 Feb 2024 23:05:09 +0000');
  });
});
