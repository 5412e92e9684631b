// chunksOf (lib/transport/link.ts): a session's read loop gets each chunk of its link as
// it came, never several concatenated, with the stream paused while a few wait, and ends
// and fails as the stream's own iterator does.
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { chunksOf } from '../../../lib/transport/link.js';

describe('chunksOf', () => {
  it('hands each chunk on as itself, also when the reader was busy while several came', async () => {
    const input = new PassThrough();
    const sent = Array.from({ length: 20 }, (_, i) => Buffer.alloc(1000 + i, i));
    for (const b of sent) input.write(b);
    input.end();
    const got: Buffer[] = [];
    for await (const c of chunksOf(input)) {
      got.push(c);
      // a slow reader: the stream's own iterator would give the rest concatenated
      await new Promise((r) => setTimeout(r, 1));
    }
    expect(got.map((b) => b.length)).toEqual(sent.map((b) => b.length));
    expect(Buffer.concat(got).equals(Buffer.concat(sent))).toBe(true);
  });

  it('pauses the stream while chunks wait, and resumes when they are read', async () => {
    const input = new PassThrough({ highWaterMark: 1024 });
    const it = chunksOf(input)[Symbol.asyncIterator]();
    for (let i = 0; i < 40; i++) input.write(Buffer.alloc(100, i));
    const first = await it.next();
    expect(first.value).toHaveLength(100);
    await new Promise((r) => setImmediate(r));
    expect(input.isPaused()).toBe(true);
    // the rest is not lost: read it all
    input.end();
    let n = 1;
    for (let r = await it.next(); !r.done; r = await it.next()) n++;
    expect(n).toBe(40);
  });

  it('throws the stream\'s error, and a close before the end', async () => {
    const failing = new PassThrough();
    setImmediate(() => failing.destroy(new Error('boom')));
    await expect((async () => { for await (const _ of chunksOf(failing)) void _; })()).rejects.toThrow('boom');
    const cut = new PassThrough();
    cut.write('x');
    setImmediate(() => cut.destroy());
    await expect((async () => { for await (const _ of chunksOf(cut)) void _; })()).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
  });

  it('a reader that stops early destroys the stream, as for await on the stream does', async () => {
    const input = new PassThrough();
    input.write('a');
    input.write('b');
    for await (const _ of chunksOf(input)) {
      void _;
      break;
    }
    expect(input.destroyed).toBe(true);
  });

  it('ends at the stream\'s end with nothing left over', async () => {
    const got: string[] = [];
    for await (const c of chunksOf(Readable.from([Buffer.from('one'), Buffer.from('two')]))) got.push(String(c));
    expect(got).toEqual(['one', 'two']);
  });
});
