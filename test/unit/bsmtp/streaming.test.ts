// Promise 7 (bounded memory): a message far larger than any buffer we keep streams
// through the writer and the reader; what they hold does not grow with its size.
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { expect, test } from 'vitest';
import { BsmtpReader, createBsmtpStream } from '../../../lib/bsmtp/index.js';

const MiB = 1024 * 1024;

test('256 MiB through createBsmtpStream and BsmtpReader with flat memory', async () => {
  const total = 256 * MiB;
  // 64 KiB chunks of lines that need stuffing, CRLF ends and a line spanning chunks
  const line = Buffer.from('.stuffed line of text with a dot first, ending in CRLF\r\n');
  const block = Buffer.concat(Array.from({ length: Math.ceil((64 * 1024) / line.length) }, () => line)).subarray(0, 64 * 1024);
  let sent = 0;
  const source = Readable.from(
    (function* () {
      while (sent < total) {
        sent += block.length;
        yield block;
      }
    })(),
  );
  const reader = new BsmtpReader();
  let bodyBytes = 0;
  let ends = 0;
  let peak = 0;
  const baseline = process.memoryUsage();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const e of reader.push(chunk)) {
        if (e.type === 'error') return cb(new Error(e.issue.message));
        if (e.type === 'body') bodyBytes += e.chunk.length;
        if (e.type === 'end-of-message') ends++;
      }
      const m = process.memoryUsage();
      peak = Math.max(peak, m.arrayBuffers - baseline.arrayBuffers + (m.heapUsed - baseline.heapUsed));
      cb();
    },
  });
  await pipeline(source, createBsmtpStream({ sender: 'a@x', recipients: ['r@y'] }), sink);
  for (const e of reader.end()) expect(e.type).not.toBe('error');
  expect(ends).toBe(1);
  // every CRLF lost its CR (the block starts with ".", so no CRLF spans two blocks);
  // the body ends mid-line, so the writer added a final LF
  const blocks = sent / block.length;
  const crlfPerBlock = (block.toString('latin1').match(/\r\n/g) ?? []).length;
  expect(block[0]).toBe(0x2e);
  expect(block[block.length - 1]).not.toBe(0x0a);
  expect(block[block.length - 1]).not.toBe(0x0d);
  expect(bodyBytes).toBe(sent - blocks * crlfPerBlock + 1);
  // far below the message size: nothing accumulates
  expect(peak).toBeLessThan(64 * MiB);
}, 120_000);
