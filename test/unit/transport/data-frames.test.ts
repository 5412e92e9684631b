// The sender's DATA frames as they go onto the link: one write per frame, each frame 65,536
// bytes (header, prefix and DATA_CHUNK bytes: two 32 KiB SSH channel packets exactly) but the
// last of a bag, and the bytes those frames carry are the bag's, in order.
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { DATA_CHUNK, DATA_HEAD, FRAME, FrameDecoder, decodeData } from '../../../lib/session/frame.js';
import { createPair } from '../../../lib/transport/pair.js';
import { enqueue, ids, makeSite, session, tempDir } from '../session/sites.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe('DATA frames on the link', () => {
  it('fill two SSH packets each, one write each, and carry the bags whole', async () => {
    expect(DATA_HEAD + DATA_CHUNK).toBe(65_536);
    const t = tempDir('data-frames');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    // incompressible: the bag is about as large as the mail (several frames, a short last one)
    const up = await enqueue(home, 'hub', [randomBytes(150_000), randomBytes(90_000), randomBytes(7_000)]);
    const [a, b] = createPair();
    const writes: Buffer[] = [];
    const write = a.output.write.bind(a.output) as (chunk: Buffer, ...rest: unknown[]) => boolean;
    (a.output as unknown as { write: typeof write }).write = (chunk: Buffer, ...rest: unknown[]) => {
      if (chunk.length > 0) writes.push(Buffer.from(chunk));
      return write(chunk, ...rest);
    };
    const [rHome, rHub] = await Promise.all([session(home, 'hub', a), session(hub, 'home', b)]);
    expect(rHome.drained && rHub.drained).toBe(true);
    expect(ids(hub, 'in', 'home')).toEqual([...up.keys()].sort());

    const decoder = new FrameDecoder();
    const sizes = new Map<string, number[]>();
    const offsets = new Map<string, number>();
    for (const w of writes) {
      const frames = decoder.push(w);
      expect(frames.ok).toBe(true);
      if (!frames.ok) return;
      const data = frames.value.filter((f) => f.type === FRAME.DATA);
      if (data.length === 0) continue;
      // a write that carries DATA is exactly one whole frame
      expect(data).toHaveLength(1);
      expect(frames.value).toHaveLength(1);
      expect(w.length).toBe(5 + data[0]!.payload.length);
      const d = decodeData(data[0]!.payload);
      expect(d.ok).toBe(true);
      if (!d.ok) return;
      // in order, no gap
      expect(d.value.offset).toBe(offsets.get(d.value.bag) ?? 0);
      offsets.set(d.value.bag, d.value.offset + d.value.chunk.length);
      sizes.set(d.value.bag, [...(sizes.get(d.value.bag) ?? []), w.length]);
    }
    expect([...sizes.values()].flat().length).toBeGreaterThanOrEqual(4);
    // every frame but the last of its bag is 65,536 bytes
    for (const list of sizes.values()) {
      expect(list.slice(0, -1).every((n) => n === 65_536)).toBe(true);
      expect(list.at(-1)!).toBeLessThanOrEqual(65_536);
    }
    expect(rHome.sent.bytes).toBe([...offsets.values()].reduce((x, y) => x + y, 0));
  });
});
