import fc from 'fast-check';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LIMITS } from '../../../lib/limits.js';
import { encodeJobHeader, JobHeaderReader, JOB_MAGIC_LINE, readJobStream, type JobHeader } from '../../../lib/job/index.js';

const header: JobHeader = {
  id: '019a9f0c2e1b000a1b2c3d4e',
  from: 'home',
  to: 'hub',
  created: '2026-11-22T05:21:36.123Z',
  command: 'rsmtp',
  args: [],
  sender: '',
  recipients: ['postmaster@example.org'],
};

function chunked(bytes: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  let i = 0;
  while (off < bytes.length) {
    const n = Math.max(1, sizes[i++ % Math.max(1, sizes.length)] ?? 1);
    out.push(bytes.subarray(off, off + n));
    off += n;
  }
  return out;
}

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

describe('reading a job from a stream', () => {
  it('gives header and payload back whatever the chunking (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 3000 }), fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 20 }), async (payload, sizes) => {
        const file = Buffer.concat([encodeJobHeader(header), payload]);
        const job = await readJobStream(Readable.from(chunked(file, sizes)));
        expect(job.header).toEqual(header);
        expect((await collect(job.payload)).equals(Buffer.from(payload))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a wrong magic on the first chunk, before reading more', async () => {
    let pulled = 0;
    async function* src(): AsyncGenerator<Buffer> {
      for (;;) {
        pulled++;
        yield Buffer.from('GET / HTTP/1.1\r\n');
      }
    }
    await expect(readJobStream(src(), 'bag entry x')).rejects.toThrow(/bag entry x: not a mailbag job file/);
    expect(pulled).toBe(1);
  });

  it('stops at the header cap on an endless header line (bounded memory)', async () => {
    let bytes = 0;
    async function* src(): AsyncGenerator<Buffer> {
      yield Buffer.from(JOB_MAGIC_LINE + '{"id":"');
      for (;;) {
        bytes += 65536;
        if (bytes > 4 * LIMITS.maxJobHeader) throw new Error('read far past the cap');
        yield Buffer.alloc(65536, 0x61);
      }
    }
    await expect(readJobStream(src())).rejects.toThrow(/header is over/);
    expect(bytes).toBeLessThanOrEqual(LIMITS.maxJobHeader + 2 * 65536);
  });

  it('reports a stream that ends inside the header as truncated', async () => {
    const file = encodeJobHeader(header);
    for (const n of [0, 5, 14, 30, file.length - 1]) {
      await expect(readJobStream(Readable.from([file.subarray(0, n)]))).rejects.toMatchObject({ code: 'bad-job' });
    }
  });

  it('refuses version 2 by name', async () => {
    const r = new JobHeaderReader().push(Buffer.from('mailbag-job 2\n{}\n'));
    expect(r).toEqual({ ok: false, issue: { code: 'bad-version', message: 'job format version 2 is not supported; this mailbag reads version 1' } });
  });
});
