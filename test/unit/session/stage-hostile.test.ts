// The stager (lib/session/stage-bag.ts stageFrom) on hostile bag entries, on both of its
// paths: an entry of up to 256 KiB is gathered whole and split (splitJob), a larger one is
// streamed through readJobStream. Whatever the path, a job header is refused as
// readJobStream refuses it (bad-job, the same message), the envelope is checked, and what
// is staged is the job again with its header in its canonical form.

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeJobHeader, type JobHeader } from '../../../lib/job/header.js';
import { readJobStream } from '../../../lib/job/reader.js';
import { BagRefusal, DirectSink, LocalGrowth, PartialSource, stageFrom, type StageOutcome } from '../../../lib/session/stage-bag.js';
import { tempDir } from './sites.js';

const SMALL = 256 * 1024;
const CAPS = { maxBag: 64 * 1024 * 1024, maxExpanded: 64 * 1024 * 1024, maxJobs: 100, maxJob: 2 * 1024 * 1024 };
const ID = '0190a1b2c3d4abcdefgh';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function header(over: Partial<JobHeader> = {}): JobHeader {
  return { id: ID, from: 'home', to: 'hub', created: '2026-11-22T18:00:00.000Z', command: 'rmail', args: ['me@hub.example'], sender: 'a@home.example', recipients: ['me@hub.example'], ...over };
}

/** `payload` bytes: text lines ending in LF, `n` bytes in all */
function payload(n: number): Buffer {
  const line = Buffer.from('a line of the message body, nothing more to it at all\n');
  const b = Buffer.alloc(n);
  for (let off = 0; off < n; off += line.length) line.copy(b, off, 0, Math.min(line.length, n - off));
  return b;
}

async function tarOf(entries: { name: string; bytes: Buffer }[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) pack.entry({ name: e.name, size: e.bytes.length }, e.bytes);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** stage `bag` (gzip) from a complete partial: the outcome, or the refusal */
async function stage(bag: Buffer, opts: { accept?: string[]; caps?: typeof CAPS } = {}): Promise<{ outcome?: StageOutcome; refusal?: BagRefusal; staging: string }> {
  const t = tempDir('stage-hostile');
  cleanups.push(t.remove);
  const hash = createHash('sha256').update(bag).digest('hex');
  const inDir = join(t.dir, 'in');
  mkdirSync(inDir);
  const part = join(inDir, `${hash}.part`);
  writeFileSync(part, bag);
  const staging = join(inDir, `${hash}.d`);
  const src = new PartialSource(part, bag.length, new LocalGrowth(bag.length));
  const req = { bag: hash, codec: 'gzip' as const, caps: opts.caps ?? CAPS, site: 'hub', peer: 'home', accept: opts.accept ?? ['rmail'], part, staging, size: bag.length };
  try {
    return { outcome: await stageFrom(src, req, new DirectSink()), staging };
  } catch (err) {
    if (err instanceof BagRefusal) return { refusal: err, staging };
    throw err;
  }
}

/** what the streaming path (readJobStream) says about these bytes, as the stager words it */
async function oracle(bytes: Buffer, what: string): Promise<string> {
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let off = 0; off < bytes.length; off += 64 * 1024) yield bytes.subarray(off, off + 64 * 1024);
  }
  try {
    const { payload: p } = await readJobStream(chunks(), what);
    for await (const c of p) void c;
    return 'accepted';
  } catch (err) {
    return (err as Error).message;
  }
}

const magic = Buffer.from('mailbag-job 1\n');
const json = (h: unknown): Buffer => Buffer.from(JSON.stringify(h));

/** each hostile start of a job; the entry is this, then a payload making it `size` bytes */
const HOSTILE: [string, Buffer][] = [
  ['a wrong magic', Buffer.concat([Buffer.from('mailbag-jab 1\n'), json(header()), Buffer.from('\n')])],
  ['a CRLF magic line', Buffer.concat([Buffer.from('mailbag-job 1\r\n'), json(header()), Buffer.from('\n')])],
  ['another version', Buffer.concat([Buffer.from('mailbag-job 2\n'), json(header()), Buffer.from('\n')])],
  ['a NUL in the header', Buffer.concat([magic, Buffer.from('{"id":"\0"}\n')])],
  ['a NUL in a recipient', Buffer.concat([magic, json(header({ recipients: ['a\u0000b@x'] })), Buffer.from('\n')])],
  ['a header that is not UTF-8', Buffer.concat([magic, Buffer.from('{"id":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')])],
  ['a header that is not JSON', Buffer.concat([magic, Buffer.from('{id: 1}\n')])],
  ['an unknown field', Buffer.concat([magic, json({ ...header(), extra: 1 }), Buffer.from('\n')])],
  ['a bad job id', Buffer.concat([magic, json(header({ id: '../../etc/passwd' })), Buffer.from('\n')])],
  ['a header over its cap', Buffer.concat([magic, json(header({ sender: 'x'.repeat(70_000) })), Buffer.from('\n')])],
];

describe('stageFrom on hostile job headers, small (gathered) and large (streamed) entries alike', () => {
  for (const [what, start] of HOSTILE) {
    it(`${what}: refused as bad-job with the message readJobStream gives`, async () => {
      for (const size of [start.length + 100, SMALL, SMALL + 1, SMALL + 70_000]) {
        const bytes = Buffer.concat([start, payload(size - start.length)]);
        const r = await stage(gzipSync(await tarOf([{ name: ID, bytes }])));
        expect(r.refusal, `${what}, ${size} bytes`).toBeDefined();
        expect(r.refusal!.code).toBe('bad-job');
        const hash = r.refusal!.message.match(/^bag ([0-9a-f]{12}) /)?.[1];
        expect(r.refusal!.message).toBe(await oracle(bytes, `bag ${hash} entry ${ID}`));
        expect(existsSync(r.staging)).toBe(false);
      }
    });
  }

  it('a job header with no end: cut inside the magic line, inside the header line, or never an LF at all', async () => {
    for (const bytes of [Buffer.from('mailbag-jo'), Buffer.from('mailbag-job 1'), Buffer.concat([magic, Buffer.from('{"id":"x"')]), Buffer.concat([magic, Buffer.alloc(SMALL - magic.length, 0x41)]), Buffer.concat([magic, Buffer.alloc(SMALL, 0x41)])]) {
      const r = await stage(gzipSync(await tarOf([{ name: ID, bytes }])));
      expect(r.refusal?.code).toBe('bad-job');
      const hash = r.refusal!.message.match(/^bag ([0-9a-f]{12}) /)?.[1];
      expect(r.refusal!.message).toBe(await oracle(bytes, `bag ${hash} entry ${ID}`));
    }
  });

  it('an empty entry is refused as a truncated job', async () => {
    const r = await stage(gzipSync(await tarOf([{ name: ID, bytes: Buffer.alloc(0) }])));
    expect(r.refusal?.code).toBe('bad-job');
    expect(r.refusal!.message).toMatch(new RegExp(`entry ${ID}: job file ends inside its first line$`));
  });

  it('an envelope that does not fit is refused on both paths: another id, another origin, another site, a command not accepted', async () => {
    for (const size of [2000, SMALL, SMALL + 1]) {
      for (const [over, code, text] of [
        [{ id: '0190a1b2c3d4zzzzzzzz' }, 'bad-job', `entry ${ID}: its header says id 0190a1b2c3d4zzzzzzzz`],
        [{ from: 'office' }, 'bad-job', `job ${ID} claims to come from office, not home`],
        [{ to: 'elsewhere' }, 'bad-job', `job ${ID} is for elsewhere, not hub`],
        [{ command: 'sh' }, 'forbidden-command', `job ${ID}: command sh is not accepted from home`],
      ] as const) {
        const head = encodeJobHeader(header(over));
        const r = await stage(gzipSync(await tarOf([{ name: ID, bytes: Buffer.concat([head, payload(size - head.length)]) }])));
        expect(r.refusal?.code, `${JSON.stringify(over)} at ${size}`).toBe(code);
        expect(r.refusal!.message).toBe(text);
      }
    }
  });

  it('entries at 256 KiB, one byte over, and far over are staged as the same job bytes, a non-canonical header in its canonical form', async () => {
    for (const size of [1, SMALL - 1, SMALL, SMALL + 1, 3 * SMALL]) {
      // the sender's header with its fields in another order and spaces: staged canonical
      const h = header();
      const loose = Buffer.concat([magic, Buffer.from(JSON.stringify({ recipients: h.recipients, sender: h.sender, args: h.args, command: h.command, created: h.created, to: h.to, from: h.from, id: h.id }, null, 1).replace(/\n/g, ' ')), Buffer.from('\n')]);
      const body = payload(Math.max(0, size - loose.length));
      const r = await stage(gzipSync(await tarOf([{ name: ID, bytes: Buffer.concat([loose, body]) }])));
      expect(r.refusal?.message, `${size} bytes`).toBeUndefined();
      expect(r.outcome!.committed).toEqual([ID]);
      expect(readdirSync(r.staging)).toEqual([ID]);
      expect(readFileSync(join(r.staging, ID)).equals(Buffer.concat([encodeJobHeader(h), body]))).toBe(true);
    }
  });

  it('a job larger than the cap the HELLO gave (plus its 1 MiB of slack) is refused at its tar header, before its bytes', async () => {
    const caps = { ...CAPS, maxJob: 100 * 1024 };
    const head = encodeJobHeader(header());
    const r = await stage(gzipSync(await tarOf([{ name: ID, bytes: Buffer.concat([head, payload(caps.maxJob + 1024 * 1024 + 1 - head.length)]) }])), { caps });
    expect(r.refusal?.code).toBe('too-big');
    expect(r.refusal!.message).toMatch(/over the cap/);
  });

  it('a bag that expands past its cap is refused as too-expanded whatever the size of its entries', async () => {
    const caps = { ...CAPS, maxExpanded: 150 * 1024 };
    const head = encodeJobHeader(header());
    for (const size of [200 * 1024, 400 * 1024]) {
      const r = await stage(gzipSync(await tarOf([{ name: ID, bytes: Buffer.concat([head, payload(size)]) }])), { caps });
      expect(r.refusal, `${size}`).toBeDefined();
      expect(r.refusal!.code).toBe('too-big');
      expect(r.refusal!.message).toMatch(/expands to more than the cap/);
    }
  });

  it('a bag cut inside a small entry, or whose tar header says more bytes than follow, is refused, not staged', async () => {
    const head = encodeJobHeader(header());
    const t = await tarOf([{ name: ID, bytes: Buffer.concat([head, payload(5000)]) }]);
    for (const cut of [t.subarray(0, 512 + 3000), t.subarray(0, 512 + 5000 + head.length)]) {
      const r = await stage(gzipSync(cut));
      expect(r.refusal).toBeDefined();
      expect(r.refusal!.code).toBe('bad-bag');
      expect(r.outcome).toBeUndefined();
    }
  });
});

describe('stageFrom when the session ends in the middle of an entry', () => {
  for (const size of [100 * 1024, SMALL + 100 * 1024]) {
    it(`ends (staging removed) instead of waiting for the rest: an entry of ${size} bytes, half of the bag written`, async () => {
      const t = tempDir('stage-stop');
      cleanups.push(t.remove);
      // stored, not compressed: half the bag is half the entry
      const head = encodeJobHeader(header());
      const bag = gzipSync(await tarOf([{ name: ID, bytes: Buffer.concat([head, payload(size)]) }]), { level: 0 });
      const hash = createHash('sha256').update(bag).digest('hex');
      const part = join(t.dir, `${hash}.part`);
      const half = bag.length >> 1;
      writeFileSync(part, bag.subarray(0, half));
      const growth = new LocalGrowth(half);
      const src = new PartialSource(part, bag.length, growth);
      const staging = join(t.dir, `${hash}.d`);
      const req = { bag: hash, codec: 'gzip' as const, caps: CAPS, site: 'hub', peer: 'home', accept: ['rmail'], part, staging, size: bag.length };
      const run = stageFrom(src, req, new DirectSink()).then(() => 'staged', (err: unknown) => (err as Error).message);
      await new Promise((r) => setTimeout(r, 100));
      expect(src.starved).toBe(true);
      growth.stop();
      const out = await Promise.race([run, new Promise((r) => setTimeout(() => r('still waiting'), 5000))]);
      expect(out).toMatch(/stopped/);
      expect(existsSync(staging)).toBe(false);
    });
  }
});
