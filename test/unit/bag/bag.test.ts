import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BagError, bagStream, expandedSizeOf, readBag, writeBag, type BagCodec, type BagJob } from '../../../lib/bag/index.js';
import { readAll, refusal } from './read-all.js';
import { paxRecord, tarOf, type RawEntry } from './craft.js';

function job(name: string, data: Buffer, chunk = 4096): BagJob {
  return {
    name,
    size: data.length,
    open: () => {
      const parts: Buffer[] = [];
      for (let i = 0; i < data.length; i += chunk) parts.push(data.subarray(i, i + chunk));
      return Readable.from(parts);
    },
  };
}

async function build(jobs: BagJob[], codec: BagCodec = 'br'): Promise<{ bytes: Buffer; sha256: string; expanded: number; entries: number }> {
  const { stream, summary } = bagStream(jobs, { codec });
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  const s = await summary;
  return { bytes: Buffer.concat(chunks), sha256: s.sha256, expanded: s.expanded, entries: s.entries };
}

/** feed `bytes` in the given chunk sizes (cycled) */
async function* chunked(bytes: Buffer, sizes: number[] = [65536]): AsyncGenerator<Buffer> {
  let i = 0;
  let k = 0;
  while (i < bytes.length) {
    const n = Math.max(1, sizes[k++ % sizes.length]!);
    yield bytes.subarray(i, i + n);
    i += n;
  }
}

const CODECS: BagCodec[] = ['br', 'gzip', 'none'];

describe('bag round trip', () => {
  it.each(CODECS)('keeps names, order and bytes (%s) and names the bag by its hash', async (codec) => {
    const jobs = [job('0190aa000001000aaaaaaaaa', Buffer.from('From a@b\nSubject: x\n\nhello\n')), job('empty', Buffer.alloc(0)), job('b.job', Buffer.alloc(70_000, 0x41))];
    const bag = await build(jobs, codec);
    expect(bag.sha256).toBe(createHash('sha256').update(bag.bytes).digest('hex'));
    expect(bag.entries).toBe(3);
    expect(bag.expanded).toBe(expandedSizeOf([28, 0, 70_000]));
    const { entries, summary } = await readAll(chunked(bag.bytes, [1, 7, 512, 3000]), { codec, expectSha256: bag.sha256 });
    expect(entries.map(([n]) => n)).toEqual(['0190aa000001000aaaaaaaaa', 'empty', 'b.job']);
    expect(entries[2]![1].equals(Buffer.alloc(70_000, 0x41))).toBe(true);
    expect(summary).toMatchObject({ sha256: bag.sha256, size: bag.bytes.length, entries: 3, codec });
  });

  it('is deterministic: the same jobs give the same bytes and name', async () => {
    const mk = (): BagJob[] => [job('x1', Buffer.from('one')), job('x2', Buffer.from('two'))];
    expect((await build(mk())).sha256).toBe((await build(mk())).sha256);
  });

  it('detects gzip and plain tar when the codec is not given', async () => {
    for (const codec of ['gzip', 'none'] as const) {
      const bag = await build([job('a', Buffer.from('x'))], codec);
      const { summary } = await readAll(chunked(bag.bytes));
      expect(summary.codec).toBe(codec);
    }
  });

  it('round-trips any set of jobs in any chunking (property)', async () => {
    const nameArb = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,30}$/).filter((n) => !n.includes('..'));
    const jobsArb = fc.uniqueArray(fc.record({ name: nameArb, data: fc.uint8Array({ maxLength: 3000 }), chunk: fc.integer({ min: 1, max: 1024 }) }), { selector: (j) => j.name, maxLength: 12 });
    await fc.assert(
      fc.asyncProperty(jobsArb, fc.constantFrom(...CODECS), fc.array(fc.integer({ min: 1, max: 2000 }), { minLength: 1, maxLength: 5 }), async (js, codec, sizes) => {
        const bag = await build(js.map((j) => job(j.name, Buffer.from(j.data), j.chunk)), codec);
        const { entries } = await readAll(chunked(bag.bytes, sizes), { codec, expectSha256: bag.sha256 });
        expect(entries.map(([n, b]) => [n, b.toString('hex')])).toEqual(js.map((j) => [j.name, Buffer.from(j.data).toString('hex')]));
      }),
      { numRuns: 60 },
    );
  });

  it('lets the caller skip an entry without reading it', async () => {
    const bag = await build([job('a', Buffer.alloc(100_000, 1)), job('b', Buffer.from('bee'))]);
    const seen: string[] = [];
    for await (const e of readBag(chunked(bag.bytes), { codec: 'br' })) {
      if (e.name === 'b') seen.push(String(await Readable.from(e.stream).toArray().then((a) => Buffer.concat(a as Buffer[]))));
      else seen.push('skipped');
    }
    expect(seen).toEqual(['skipped', 'bee']);
  });
});

describe('bag writer refuses', () => {
  it.each(['../etc/passwd', '/abs', 'a/b', '.hidden', 'x..y', '', 'a'.repeat(101), 'sp ace', 'nul\0'])('the name %j', async (name) => {
    const { summary } = bagStream([job(name, Buffer.from('x'))]);
    await expect(summary).rejects.toMatchObject({ issue: 'bad-name' });
  });

  it('a job that gives more or fewer bytes than it declared', async () => {
    const more = bagStream([{ name: 'a', size: 2, open: () => Readable.from([Buffer.from('abc')]) }]);
    more.stream.resume();
    await expect(more.summary).rejects.toMatchObject({ issue: 'size-mismatch' });
    const fewer = bagStream([{ name: 'a', size: 5, open: () => Readable.from([Buffer.from('abc')]) }]);
    fewer.stream.resume();
    await expect(fewer.summary).rejects.toMatchObject({ issue: 'size-mismatch' });
  });

  it('writeBag rejects with the reason, not a broken pipe', async () => {
    const sink = new (await import('node:stream')).PassThrough();
    sink.resume();
    await expect(writeBag([job('ok', Buffer.from('1')), job('../x', Buffer.from('2'))], sink)).rejects.toMatchObject({ issue: 'bad-name' });
  });
});

describe('hostile bags', () => {
  const gz = (entries: RawEntry[], end = true): Buffer => gzipSync(tarOf(entries, end));
  const br = (entries: RawEntry[], end = true): Buffer => brotliCompressSync(tarOf(entries, end));
  const data = Buffer.from('payload');

  it.each([
    ['a ../ path', { name: '../../etc/cron.d/x', data }, 'bad-name'],
    ['an absolute path', { name: '/etc/passwd', data }, 'bad-name'],
    ['a path with a directory', { name: 'in/peer/job', data }, 'bad-name'],
    ['a dot-dot name', { name: '..', data }, 'bad-name'],
    ['a symlink', { name: 'job1', type: '2', linkname: '/etc/passwd' }, 'bad-entry'],
    ['a hard link', { name: 'job1', type: '1', linkname: 'other' }, 'bad-entry'],
    ['a directory', { name: 'dir', type: '5' }, 'bad-entry'],
    ['a character device', { name: 'tty', type: '3' }, 'bad-entry'],
    ['a fifo', { name: 'fifo', type: '6' }, 'bad-entry'],
    ['a contiguous file', { name: 'c', type: '7', data }, 'bad-entry'],
  ] as [string, RawEntry, string][])('refuses %s', async (_what, entry, issue) => {
    const honest: RawEntry = { name: 'honest1', data: Buffer.from('ok') };
    const err = await refusal(chunked(gz([honest, entry])), { codec: 'gzip' });
    expect(err.issue).toBe(issue);
    expect(err.code).toBe('bad-bag');
    expect(err.message).toMatch(/entry/);
  });

  it('refuses a pax header that renames an entry to a path', async () => {
    const pax = Buffer.from(paxRecord('path', '../../evil'));
    const err = await refusal(chunked(br([{ name: 'PaxHeader', type: 'x', data: pax }, { name: 'job1', data }])), { codec: 'br' });
    expect(err.issue).toMatch(/bad-entry|bad-name/);
  });

  it('refuses a pax header even when the name it gives is harmless', async () => {
    const pax = Buffer.from(paxRecord('size', '3'));
    const err = await refusal(chunked(br([{ name: 'PaxHeader', type: 'x', data: pax }, { name: 'job1', data }])));
    expect(err.issue).toBe('bad-entry');
  });

  it('refuses a GNU long name that hides a path', async () => {
    const long = Buffer.from('../../../tmp/evil\0');
    const err = await refusal(chunked(gz([{ name: '././@LongLink', type: 'L', data: long }, { name: 'job1', data }])));
    expect(err.issue).toBe('bad-name');
  });

  it('refuses a ustar prefix that makes a path', async () => {
    const err = await refusal(chunked(gz([{ name: 'job1', prefix: '../..', data }])));
    expect(err.issue).toBe('bad-name');
  });

  it('refuses the same name twice', async () => {
    const err = await refusal(chunked(gz([{ name: 'a', data }, { name: 'a', data }])));
    expect(err.issue).toBe('duplicate');
  });

  it('refuses an oversized entry at its header, before inflating its bytes', async () => {
    // the header claims 5 GiB; no data follows: the reader must stop at the header
    const err = await refusal(chunked(gz([{ name: 'huge', size: 5 * 1024 ** 3, withData: false }], false)));
    expect(err.issue).toBe('entry-too-big');
    expect(err.code).toBe('too-big');
    const capped = await refusal(chunked(gz([{ name: 'big', data: Buffer.alloc(2000) }])), { maxEntrySize: 1000 });
    expect(capped.issue).toBe('entry-too-big');
  });

  it('refuses more entries than the cap', async () => {
    const entries = Array.from({ length: 11 }, (_, i) => ({ name: `j${i}`, data }));
    expect((await refusal(chunked(gz(entries)), { maxEntries: 10 })).issue).toBe('too-many');
    const { entries: ten } = await readAll(chunked(gz(entries.slice(0, 10))), { maxEntries: 10 });
    expect(ten).toHaveLength(10);
  });

  it('stops a decompression bomb early, without inflating the rest', async () => {
    // 256 MiB of zeros in one entry compresses to a few hundred KiB
    const size = 256 * 1024 * 1024;
    const bomb = bagStream([{ name: 'bomb', size, open: () => Readable.from((function* () { for (let i = 0; i < size / 65536; i++) yield Buffer.alloc(65536); })()) }], { codec: 'gzip', level: 9 });
    const parts: Buffer[] = [];
    for await (const c of bomb.stream) parts.push(c as Buffer);
    const bytes = Buffer.concat(parts);
    expect(bytes.length).toBeLessThan(size / 500);
    let fed = 0;
    async function* counted(): AsyncGenerator<Buffer> {
      for await (const c of chunked(bytes, [4096])) {
        fed += c.length;
        yield c;
      }
    }
    const cap = 8 * 1024 * 1024;
    const err = await refusal(counted(), { maxExpanded: cap });
    expect(err.issue).toBe('too-expanded');
    expect(err.code).toBe('too-big');
    // it stopped near the cap: about cap/size of the compressed input was read, not all of it
    expect(fed).toBeLessThan(bytes.length / 4);
  });

  it('refuses a truncated bag, whatever the codec', async () => {
    const bag = await build([job('a', Buffer.from('x'.repeat(50_000))), job('b', Buffer.from('y'))], 'br');
    for (const cut of [10, Math.floor(bag.bytes.length / 2), bag.bytes.length - 1]) {
      expect((await refusal(chunked(bag.bytes.subarray(0, cut)), { codec: 'br' })).issue).toBe('truncated');
    }
    const g = await build([job('a', Buffer.from('x'.repeat(50_000)))], 'gzip');
    expect((await refusal(chunked(g.bytes.subarray(0, g.bytes.length - 5)), { codec: 'gzip' })).issue).toBe('truncated');
    const t = await build([job('a', Buffer.from('x'.repeat(5000)))], 'none');
    expect((await refusal(chunked(t.bytes.subarray(0, 2048)), { codec: 'none' })).issue).toBe('truncated');
    expect((await refusal(chunked(Buffer.alloc(0)))).issue).toBe('truncated');
  });

  it('refuses corrupted bytes', async () => {
    const bag = await build([job('a', Buffer.from('hello world '.repeat(2000)))], 'gzip');
    const bad = Buffer.from(bag.bytes);
    bad[Math.floor(bad.length / 2)]! ^= 0xff;
    expect(['corrupt', 'truncated']).toContain((await refusal(chunked(bad), { codec: 'gzip' })).issue);
    const b = await build([job('a', Buffer.from('hello world '.repeat(2000)))], 'br');
    const badBr = Buffer.from(b.bytes);
    badBr[5]! ^= 0x55;
    badBr[6]! ^= 0x55;
    expect(['corrupt', 'truncated', 'bad-name', 'bad-entry']).toContain((await refusal(chunked(badBr), { codec: 'br' })).issue);
    // a tar header whose checksum is wrong
    const tarBytes = tarOf([{ name: 'a', data: Buffer.from('x') }]);
    tarBytes[0] = 0x62;
    expect((await refusal(chunked(gzipSync(tarBytes)))).issue).toBe('corrupt');
    // a header with a good checksum that is not ustar (a v7 or unknown format)
    const v7 = tarOf([{ name: 'a', data: Buffer.from('x') }]);
    v7.fill(0, 257, 265);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : v7[i]!;
    v7.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
    expect((await refusal(chunked(gzipSync(v7)))).issue).toBe('corrupt');
  });

  it('refuses a bag in another codec than it was offered in', async () => {
    const g = await build([job('a', Buffer.from('x'))], 'gzip');
    expect((await refusal(chunked(g.bytes), { codec: 'br' })).issue).toBe('codec');
    const b = await build([job('a', Buffer.from('x'))], 'br');
    expect((await refusal(chunked(b.bytes), { codec: 'gzip' })).issue).toBe('codec');
    expect((await refusal(chunked(b.bytes), { codec: 'none' })).issue).toBe('codec');
    const t = await build([job('a', Buffer.from('x'))], 'none');
    expect((await refusal(chunked(t.bytes), { codec: 'br' })).issue).toBe('codec');
  });

  it('refuses a bag whose hash is not the one offered', async () => {
    const b = await build([job('a', Buffer.from('x'))]);
    const err = await refusal(chunked(b.bytes), { expectSha256: '0'.repeat(64) });
    expect(err.issue).toBe('bad-hash');
  });

  it('refuses a compressed bag over its cap', async () => {
    const b = await build([job('a', Buffer.from(createHash('sha512').update('x').digest('hex').repeat(100)))], 'none');
    expect((await refusal(chunked(b.bytes), { maxCompressed: 1000 })).issue).toBe('too-big');
  });

  it('keeps reading honest entries before a hostile one, then refuses the bag', async () => {
    const got: string[] = [];
    await expect(
      (async () => {
        for await (const e of readBag(chunked(gz([{ name: 'good1', data }, { name: '../bad', data }])))) {
          e.stream.resume();
          got.push(e.name);
        }
      })(),
    ).rejects.toMatchObject({ issue: 'bad-name' });
    expect(got).toEqual(['good1']);
  });

  it('applies a stricter name rule given by the caller', async () => {
    const err = await refusal(chunked(gz([{ name: 'notajobid', data }])), { isValidName: (n) => /^[0-9a-f]{24}$/.test(n) });
    expect(err.issue).toBe('bad-name');
  });
});

describe('bag reader and a stalled source', () => {
  it('refuses a hostile entry without waiting for the rest of a source that never ends', async () => {
    const head = gzipSync(tarOf([{ name: '../evil', data: Buffer.from('x') }], false), { flush: 2 /* Z_SYNC_FLUSH: no gzip trailer */ });
    async function* stalled(): AsyncGenerator<Buffer> {
      yield head;
      await new Promise(() => {}); // the link went quiet
    }
    const err = await Promise.race([
      (async () => {
        try {
          for await (const e of readBag(stalled(), { codec: 'gzip' })) e.stream.resume();
          return 'accepted';
        } catch (e) {
          return (e as BagError).issue;
        }
      })(),
      new Promise((r) => setTimeout(() => r('hung'), 5000)),
    ]);
    expect(err).toBe('bad-name');
  });

  it('lets the caller stop early without hanging', async () => {
    const bag = await build([job('a', Buffer.from('1')), job('b', Buffer.from('2'))]);
    async function* stalled(): AsyncGenerator<Buffer> {
      yield bag.bytes.subarray(0, bag.bytes.length - 3);
      await new Promise(() => {});
    }
    const got = await Promise.race([
      (async () => {
        for await (const e of readBag(stalled(), { codec: 'br' })) return e.name;
        return 'none';
      })(),
      new Promise((r) => setTimeout(() => r('hung'), 5000)),
    ]);
    expect(got).toBe('a');
  });
});

describe('bag reader and truncation anywhere', () => {
  it('refuses a bag cut at any byte, in every codec, and never hangs (property)', async () => {
    const bags = new Map<BagCodec, Buffer>();
    for (const codec of CODECS) bags.set(codec, (await build([job('a1', Buffer.from('x'.repeat(700))), job('b2', Buffer.alloc(512, 9)), job('c3', Buffer.from('tail'))], codec)).bytes);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...CODECS), fc.double({ min: 0, max: 1, noNaN: true }), async (codec, where) => {
        const full = bags.get(codec)!;
        const cut = Math.min(full.length - 1, Math.floor(where * full.length));
        const err = await refusal(chunked(full.subarray(0, cut), [97]), { codec });
        expect(['truncated', 'corrupt', 'codec']).toContain(err.issue);
      }),
      { numRuns: 150 },
    );
  });

  it('refuses a plain tar cut exactly at an entry boundary (no end blocks)', async () => {
    const t = tarOf([{ name: 'a', data: Buffer.from('x') }], false);
    expect((await refusal(chunked(t), { codec: 'none' })).issue).toBe('truncated');
  });
});

describe('bag reader and flipped bytes', () => {
  it('refuses a bag with any byte changed, with a BagError and nothing else (property)', async () => {
    const bags = new Map<BagCodec, { bytes: Buffer; sha256: string }>();
    for (const codec of CODECS) bags.set(codec, await build([job('a1', Buffer.from('Subject: hi\n\n'.repeat(90))), job('b2', Buffer.from('tail'))], codec));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...CODECS), fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 1, max: 255 }), async (codec, where, xor) => {
        const { bytes, sha256 } = bags.get(codec)!;
        const bad = Buffer.from(bytes);
        const at = Math.min(bad.length - 1, Math.floor(where * bad.length));
        bad[at] = bad[at]! ^ xor;
        const err = await refusal(chunked(bad, [333]), { codec, expectSha256: sha256 });
        expect(err.code === 'bad-bag' || err.code === 'too-big').toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});

describe('bag format (docs/bag.md)', () => {
  it('writes the documented bytes for the documented example', async () => {
    const bag = await build([job('0190aa000001000aaaaaaaaa', Buffer.from('hello'))], 'none');
    expect(bag.bytes.length).toBe(2048);
    expect(bag.sha256).toBe('11e969eb6e40b89df355182c910c4f40a20f3d4c2999af19b80ff168e8844eef');
    const h = bag.bytes.subarray(0, 512).toString('latin1');
    expect(h.slice(100, 108)).toBe('000600 \0');
    expect(h.slice(124, 136)).toBe('00000000005 ');
    expect(h.slice(136, 148)).toBe('00000000000 ');
    expect(h.slice(148, 156)).toBe('012420 \0');
    expect(h[156]).toBe('0');
    expect(h.slice(257, 265)).toBe('ustar\u000000');
    expect(bag.bytes.subarray(512, 517).toString()).toBe('hello');
    expect(bag.bytes.subarray(517).every((b) => b === 0)).toBe(true);
  });

  it('gzip bags start with the gzip magic', async () => {
    const bag = await build([job('a', Buffer.from('x'))], 'gzip');
    expect([...bag.bytes.subarray(0, 2)]).toEqual([0x1f, 0x8b]);
  });
});

describe('bag writer and a failing destination', () => {
  it('writeBag rejects with the destination error (ENOSPC) and does not hang', async () => {
    const { Writable } = await import('node:stream');
    let got = 0;
    const full = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _e, cb) {
        got += chunk.length;
        if (got > 20_000) cb(Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }));
        else cb();
      },
    });
    const big = Array.from({ length: 50 }, (_, i) => job(`j${i}`, Buffer.from(createHash('sha256').update(String(i)).digest('hex').repeat(2000))));
    const outcome = await Promise.race([
      writeBag(big, full, { codec: 'none' }).then(() => 'written', (e: NodeJS.ErrnoException) => e.code),
      new Promise((r) => setTimeout(() => r('hung'), 10_000)),
    ]);
    expect(outcome).toBe('ENOSPC');
  });

  it('bagStream settles its summary when the reader goes away', async () => {
    const big = Array.from({ length: 50 }, (_, i) => job(`j${i}`, Buffer.alloc(100_000, i)));
    const { stream, summary } = bagStream(big, { codec: 'none' });
    stream.once('data', () => stream.destroy());
    const outcome = await Promise.race([summary.then(() => 'done', () => 'rejected'), new Promise((r) => setTimeout(() => r('hung'), 10_000))]);
    expect(outcome).toBe('rejected');
  });

  it('a job file that cannot be read is the reason given', async () => {
    const { createReadStream } = await import('node:fs');
    const sink = new (await import('node:stream')).PassThrough();
    sink.resume();
    await expect(writeBag([{ name: 'gone', size: 10, open: () => createReadStream('/nonexistent/mailbag/job') }], sink)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('bag writer reading small job files whole (BagJob.path)', () => {
  it('gives the same bytes as streaming them, and refuses a file that changed size', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'mailbag-bagpath-'));
    try {
      const datas = [Buffer.from('hello'), Buffer.alloc(0), Buffer.alloc(70_000, 7), Buffer.alloc(300_000, 9)];
      const named = datas.map((d, i) => ({ name: `j${i}`, data: d, path: join(dir, `j${i}`) }));
      for (const n of named) writeFileSync(n.path, n.data);
      const streamed = await build(named.map((n) => job(n.name, n.data)), 'none');
      // files up to 256 KiB are read through the path, never opened as streams
      const read = await build(named.map((n) => ({ ...job(n.name, n.data), path: n.path, ...(n.data.length <= 256 * 1024 ? { open: () => Readable.from([Buffer.from('not this')]) } : {}) })), 'none');
      expect(read.sha256).toBe(streamed.sha256);
      const grown = bagStream([{ ...job('g', Buffer.from('ab')), path: named[0]!.path }]);
      grown.stream.resume();
      await expect(grown.summary).rejects.toMatchObject({ issue: 'size-mismatch' });
      const short = bagStream([{ ...job('s', Buffer.from('123456789')), path: named[0]!.path }]);
      short.stream.resume();
      await expect(short.summary).rejects.toMatchObject({ issue: 'size-mismatch' });
      const gone = bagStream([{ ...job('n', Buffer.from('abc')), path: join(dir, 'nonexistent') }]);
      gone.stream.resume();
      await expect(gone.summary).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('readSync (the bag worker) gives the same bytes and chunks, and the same refusals', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'mailbag-bagsync-'));
    try {
      // sizes around the block, the chunk (256 KiB) and the fill buffer (1 MiB), one streamed
      const sizes = [5, 0, 511, 512, 513, 70_000, 262_143, 262_144, 300_000, 1_048_000, 4096];
      for (let i = 0; i < 120; i++) sizes.push((i * 7919) % 40_000);
      const named = sizes.map((n, i) => {
        const data = Buffer.from(`Subject: ${i}\n${'mail text '.repeat(Math.ceil(n / 10))}`.slice(0, n));
        return { name: `j${String(i).padStart(4, '0')}`, data, path: join(dir, `j${i}`) };
      });
      for (const n of named) writeFileSync(n.path, n.data);
      const jobs = (): BagJob[] => named.map((n) => ({ ...job(n.name, n.data), path: n.path }));
      const chunksOf = async (readSync: boolean, codec: BagCodec): Promise<{ sizes: number[]; bytes: Buffer; sha256: string; expanded: number }> => {
        // the tar chunks as the compressor gets them: codec 'none' passes them through
        const { stream, summary } = bagStream(jobs(), { codec, readSync });
        const out: Buffer[] = [];
        for await (const c of stream) out.push(c as Buffer);
        const s = await summary;
        return { sizes: out.map((b) => b.length), bytes: Buffer.concat(out), sha256: s.sha256, expanded: s.expanded };
      };
      for (const codec of ['none', 'br', 'zstd'] as const) {
        const a = await chunksOf(false, codec);
        const b = await chunksOf(true, codec);
        expect(b.sha256).toBe(a.sha256);
        expect(b.expanded).toBe(a.expanded);
        expect(b.bytes.equals(a.bytes)).toBe(true);
        if (codec === 'none') expect(b.sizes).toEqual(a.sizes);
      }
      const grown = bagStream([{ ...job('g', Buffer.from('ab')), path: named[0]!.path }], { readSync: true });
      grown.stream.resume();
      await expect(grown.summary).rejects.toMatchObject({ issue: 'size-mismatch', message: expect.stringContaining('grew') });
      const short = bagStream([{ ...job('s', Buffer.from('123456789')), path: named[0]!.path }], { readSync: true });
      short.stream.resume();
      await expect(short.summary).rejects.toMatchObject({ issue: 'size-mismatch', message: expect.stringContaining('gave 5 bytes') });
      const gone = bagStream([{ ...job('n', Buffer.from('abc')), path: join(dir, 'nonexistent') }], { readSync: true });
      gone.stream.resume();
      await expect(gone.summary).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
