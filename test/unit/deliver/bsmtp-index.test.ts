import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { indexBsmtp } from '../../../lib/deliver/bsmtp-index.js';
import { openPlain, openSmtpData } from '../../../lib/deliver/message.js';
import { parseEximBatchError } from '../../../lib/deliver/exim-bs.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-bsmtp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function file(text: string | Buffer, prefix = ''): string {
  const p = join(dir, `f${n++}`);
  writeFileSync(p, Buffer.concat([Buffer.from(prefix), Buffer.isBuffer(text) ? text : Buffer.from(text)]));
  return p;
}
async function read(s: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of s as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('latin1');
}

describe('indexBsmtp', () => {
  it('finds every transaction of an Exim-shaped batch with its byte range, after an offset', async () => {
    const text = 'MAIL FROM:<s@x> RET=FULL\nRCPT TO:<a@y> NOTIFY=NEVER\nRCPT TO:<b@y>\nDATA\nSubject: 1\n\n..dot\n.\nMAIL FROM:<>\nRCPT TO:<c@y>\nDATA\nbody2\n.\n';
    const p = file(text, 'HEADER\n');
    const idx = await indexBsmtp(p, 7);
    expect(idx.problem).toBeUndefined();
    expect(idx.transactions.map((t) => [t.index, t.sender, t.mailParams, t.recipients, t.line])).toEqual([
      [0, 's@x', ['RET=FULL'], [{ address: 'a@y', params: ['NOTIFY=NEVER'] }, { address: 'b@y', params: [] }], 1],
      [1, '', [], [{ address: 'c@y', params: [] }], 9],
    ]);
    expect(await read(openPlain(idx.transactions[0]!.body))).toBe('Subject: 1\n\n.dot\n');
    expect(await read(openSmtpData(idx.transactions[0]!.body))).toBe('Subject: 1\r\n\r\n..dot\r\n');
    expect(await read(openPlain(idx.transactions[1]!.body))).toBe('body2\n');
  });

  it('accepts HELO/EHLO, lower-case verbs, no brackets, CRLF and QUIT (what follows QUIT is not read)', async () => {
    const text = 'EHLO hub\r\nmail from: s@x\r\nrcpt to: a@y\r\ndata\r\nline\r\n.\r\nQUIT\r\ngarbage that is never read\n';
    const idx = await indexBsmtp(file(text), 0);
    expect(idx.transactions).toHaveLength(1);
    expect(idx.transactions[0]!.sender).toBe('s@x');
    expect(await read(openSmtpData(idx.transactions[0]!.body))).toBe('line\r\n');
    expect(await read(openPlain(idx.transactions[0]!.body))).toBe('line\r\n');
  });

  it('refuses a batch with nothing complete; reports a bad tail after complete transactions', async () => {
    await expect(indexBsmtp(file('MAIL FROM:<s@x>\nRCPT TO:<a@y>\nDATA\nno end\n'), 0)).rejects.toThrow(/incomplete/);
    await expect(indexBsmtp(file('From x\n'), 0)).rejects.toThrow(/unknown command/);
    await expect(indexBsmtp(file('RCPT TO:<a@y>\n'), 0)).rejects.toThrow(/RCPT before MAIL/);
    await expect(indexBsmtp(file('MAIL FROM:<a@y>\nDATA\n'), 0)).rejects.toThrow(/DATA without/);
    await expect(indexBsmtp(file('MAIL FROM:<a\0@y>\n'), 0)).rejects.toThrow(/NUL/);
    await expect(indexBsmtp(file(''), 0)).rejects.toThrow(/no transaction/);
    await expect(indexBsmtp(file(`MAIL FROM:<${'a'.repeat(5000)}@y>\n`), 0)).rejects.toThrow(/too long/);
    const idx = await indexBsmtp(file('MAIL FROM:<s@x>\nRCPT TO:<a@y>\nDATA\nok\n.\nMAIL FROM:<t@x>\nRCPT TO:<b@y>\nDATA\ncut'), 0);
    expect(idx.transactions).toHaveLength(1);
    expect(idx.problem).toMatch(/incomplete/);
  });

  it('round-trips any body through stuffing and indexing (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.stringMatching(/^[.a-zA-Z \x80-\xff]{0,20}$/), { maxLength: 12 }), async (lines) => {
        const body = lines.map((l) => `${l}\n`).join('');
        const stuffed = lines.map((l) => (l.startsWith('.') ? `.${l}\n` : `${l}\n`)).join('');
        const p = file(Buffer.from(`MAIL FROM:<s@x>\nRCPT TO:<a@y>\nDATA\n${stuffed}.\n`, 'latin1'));
        const idx = await indexBsmtp(p, 0);
        expect(await read(openPlain(idx.transactions[0]!.body))).toBe(body);
        expect(readFileSync(p, 'latin1').length).toBeGreaterThan(0);
      }),
      { numRuns: 60 },
    );
  });
});

describe('parseEximBatchError', () => {
  it('reads the reply and the lines Exim names', () => {
    const out = '501 <a@x>: malformed address: RET=HDRS may not follow <a@x>\nTransaction started in line 5\nError detected in line 5\n';
    expect(parseEximBatchError(out + '1 previous message was successfully processed.\n')).toEqual({ code: 501, text: '<a@x>: malformed address: RET=HDRS may not follow <a@x>', startLine: 5, errorLine: 5, previous: 1 });
    expect(parseEximBatchError('nothing useful')).toBeUndefined();
  });
});
