// Real messages from the shared corpus through both job payload formats, byte for
// byte: as a BSMTP transaction (written in chunks, read back in other chunks; the
// only change is the documented normalisation: CRs before LF dropped, a final LF
// added) and as an rmail payload (our From_ line + the message, read back exactly).
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { describe, expect, test } from 'vitest';
import { corpusFiles, haveCorpus } from '../../helpers/corpus.js';
import { BsmtpBodyEncoder, BsmtpReader, formatBsmtpEnvelope, normaliseBody } from '../../../lib/bsmtp/index.js';
import { formatFromLine, leadingFromLines, parseUucpEnvelope } from '../../../lib/envelope/index.js';

const BULK_SAMPLE = 500;

function chunks(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

function bsmtpRoundTrip(message: Buffer, writeChunk: number, readChunk: number): Buffer {
  const enc = new BsmtpBodyEncoder();
  const stream = Buffer.concat([
    Buffer.from(formatBsmtpEnvelope({ sender: '', mailParams: [{ name: 'RET', value: 'HDRS' }], recipients: ['r@y.example'] })),
    ...chunks(message, writeChunk).map((c) => enc.push(c)),
    enc.end(),
  ]);
  const reader = new BsmtpReader();
  const parts: Buffer[] = [];
  let ends = 0;
  for (const e of [...chunks(stream, readChunk).flatMap((c) => reader.push(c)), ...reader.end()]) {
    if (e.type === 'error') throw new Error(e.issue.message);
    if (e.type === 'body') parts.push(e.chunk);
    if (e.type === 'end-of-message') ends++;
  }
  expect(ends).toBe(1);
  return Buffer.concat(parts);
}

const date = new Date(Date.UTC(2026, 10, 22, 4, 10, 0));

function rmailRoundTrip(message: Buffer): { dropped: number; rest: Buffer } {
  const dropped = leadingFromLines(message, true) ?? 0;
  const kept = message.subarray(dropped);
  const payload = Buffer.concat([Buffer.from(formatFromLine({ sender: 'owner-list@lists.example', date, remoteFrom: 'hub' })), kept]);
  const r = parseUucpEnvelope(payload);
  if (!r.ok) throw new Error(r.issue.message);
  expect(r.value.sender).toBe('hub!owner-list@lists.example');
  expect(r.value.lines).toBe(1);
  const rest = payload.subarray(r.value.length);
  expect(rest.equals(kept)).toBe(true);
  return { dropped, rest };
}

describe.runIf(haveCorpus())('corpus round trips', () => {
  test('every odd message through BSMTP and rmail', () => {
    const files = corpusFiles('odd');
    expect(files.length).toBeGreaterThanOrEqual(42);
    const startsWithFrom: string[] = [];
    for (const f of files) {
      const message = readFileSync(f);
      const expected = normaliseBody(message);
      for (const [w, r] of [
        [65536, 65536],
        [1, 7],
        [997, 13],
      ] as const) {
        expect(bsmtpRoundTrip(message, w, r).equals(expected), `${basename(f)} write ${w} read ${r}`).toBe(true);
      }
      const { dropped } = rmailRoundTrip(message);
      if (dropped > 0) startsWithFrom.push(basename(f));
    }
    // the three mbox-style messages lose exactly their leading From_ line (as Postfix's sendmail drops it)
    expect(startsWithFrom.sort()).toEqual([
      'odd.30-crlf-mbox-from-line-dup-subject.eml',
      'odd.35-crlf-pdf-attachment-mbox-from.eml',
      'odd.41-long-vm-header.eml',
    ]);
  });

  test('what the normalisation changes in the odd messages, exactly', () => {
    for (const f of corpusFiles('odd')) {
      const message = readFileSync(f);
      const n = normaliseBody(message);
      const crlf = (message.toString('latin1').match(/\r+\n/g) ?? []).reduce((s, m) => s + m.length - 1, 0);
      const finalLf = message.length > 0 && message[message.length - 1] !== 0x0a ? 1 : 0;
      const trailingCr = finalLf ? (message.toString('latin1').match(/\r+$/)?.[0].length ?? 0) : 0;
      expect(n.length, basename(f)).toBe(message.length - crlf - trailingCr + finalLf);
    }
  });

  test(`the first ${BULK_SAMPLE} bulk messages through BSMTP and rmail, byte for byte`, () => {
    const files = corpusFiles('bulk').slice(0, BULK_SAMPLE);
    expect(files).toHaveLength(BULK_SAMPLE);
    let bytes = 0;
    for (const f of files) {
      const message = readFileSync(f);
      bytes += message.length;
      expect(bsmtpRoundTrip(message, 4096, 1500).equals(normaliseBody(message)), basename(f)).toBe(true);
      rmailRoundTrip(message);
    }
    expect(bytes).toBeGreaterThan(1_000_000);
  });
});
