// The message text as SMTP DATA (lib/deliver/message.ts ToSmtpData): CRLF line ends, a
// leading "." doubled (unless the job's text is stuffed already), every CR run before LF
// taken off, a final line end added, and a bare CR inside a line sent as a space — what
// Postfix's own sendmail makes of it, so that one message reads the same whether its job
// reached Postfix by `sendmail` (rmail) or by `sendmail -bs` (rsmtp); docs/formats.md,
// "End to end". Chunk borders anywhere must not matter.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ToSmtpData } from '../../../lib/deliver/message.js';

async function data(text: string, stuffed = false, chunk = 3): Promise<string> {
  const bytes = Buffer.from(text, 'latin1');
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) parts.push(bytes.subarray(i, i + chunk));
  const out: Buffer[] = [];
  for await (const c of Readable.from(parts).pipe(new ToSmtpData(stuffed)) as AsyncIterable<Buffer>) out.push(c);
  return Buffer.concat(out).toString('latin1');
}

describe('SMTP DATA from a job\'s message text', () => {
  it('keeps words apart: a bare CR becomes a space, never nothing', async () => {
    expect(await data('a: b\n\nline with a bare\rCR inside\nand\r.\nend\n')).toBe('a: b\r\n\r\nline with a bare CR inside\r\nand .\r\nend\r\n');
  });
  it('takes every CR of a run before LF off, as docs/formats.md normalises', async () => {
    expect(await data('x\r\r\ny\r\n')).toBe('x\r\ny\r\n');
    expect(await data('x\r\r')).toBe('x\r\n');
  });
  it('doubles a leading dot unless the text is stuffed, and ends the last line', async () => {
    expect(await data('.a\n..b\nc')).toBe('..a\r\n...b\r\nc\r\n');
    expect(await data('..a\n', true)).toBe('..a\r\n');
  });
  it('is the same whatever the chunk size', async () => {
    const text = 'h: v\r\n\r\n.x\ry\r\r\nz\rw\n';
    const one = await data(text, false, 1);
    for (const n of [2, 5, 64]) expect(await data(text, false, n)).toBe(one);
    expect(one).toBe('h: v\r\n\r\n..x y\r\nz w\r\n');
  });
});
