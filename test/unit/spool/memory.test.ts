// Promise 7, bounded memory: a payload far larger than any buffer we keep streams
// through writeJob and back out of readJob while the memory in use (heap and buffers)
// stays a fraction of its size. Each chunk is a fresh buffer, so keeping chunks would
// show.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newJobId } from '../../../lib/job/index.js';
import { Spool } from '../../../lib/spool/index.js';

const PAYLOAD = 256 * 1024 * 1024;
const CHUNK = 64 * 1024;
// garbage not yet collected stays well under this (about 32 MiB seen); a kept payload would not
const BOUND = 128 * 1024 * 1024;

function inUse(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

describe('bounded memory', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailbag-spool-mem-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it(`a ${PAYLOAD >> 20} MiB payload streams in and out with less than ${BOUND >> 20} MiB in use`, async () => {
    const spool = await Spool.open(join(dir, 'spool'), { create: true });
    const base = inUse();
    let peak = 0;
    async function* source(): AsyncGenerator<Buffer> {
      for (let off = 0; off < PAYLOAD; off += CHUNK) {
        peak = Math.max(peak, inUse() - base);
        yield Buffer.alloc(CHUNK, (off / CHUNK) & 0xff);
      }
    }
    const h = { id: newJobId(), from: 'home', to: 'hub', created: new Date().toISOString(), command: 'rmail', args: ['a@x'], sender: 'b@y', recipients: ['a@x'] };
    const ref = await spool.writeJob('out', 'hub', h, source(), { maxSize: PAYLOAD });
    expect(peak).toBeLessThan(BOUND);

    peak = 0;
    const job = await spool.readJob(ref);
    let n = 0;
    let wrong = 0;
    for await (const c of job.payload()) {
      const chunk = c as Buffer;
      // check a byte per source chunk: the payload is what went in
      for (let i = (CHUNK - (n % CHUNK)) % CHUNK; i < chunk.length; i += CHUNK) if (chunk[i] !== (((n + i) / CHUNK) & 0xff)) wrong++;
      n += chunk.length;
      peak = Math.max(peak, inUse() - base);
    }
    expect(n).toBe(PAYLOAD);
    expect(wrong).toBe(0);
    expect(peak).toBeLessThan(BOUND);
  }, 120_000);
});
