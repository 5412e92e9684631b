// Review of the receiver-staging change (0aa6785): the stage worker creates the staged
// job files (O_EXCL) from names the stager validated. A bag that carries one job entry
// twice (a hostile or broken peer) must be refused as a bad bag — not end the session
// with a spool error, which the sender would retry with the same bag forever. (The bag
// reader refuses the second entry by name, before the worker is asked to create it.)

import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeJobHeader, type JobHeader } from '../../lib/job/header.js';
import { newJobId } from '../../lib/job/id.js';
import { DATA_CHUNK, FRAME, FrameDecoder, encodeDataHead, type Frame } from '../../lib/session/frame.js';
import { decodeError, decodeRefuse, encodeHello, encodeOffer } from '../../lib/session/messages.js';
import { runSession } from '../../lib/session/session.js';
import { createPair } from '../../lib/transport/pair.js';
import { CAPS, ids, makeSite, store, tempDir } from '../unit/session/sites.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe('a bag with one job entry twice', () => {
  it('is refused as a bad bag; nothing committed, nothing left staged', async () => {
    const t = tempDir('review4-twice');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const h: JobHeader = {
      id: newJobId(), from: 'home', to: 'hub', created: new Date().toISOString(), command: 'rmail',
      args: ['a@example.org'], sender: 'e@example.net', recipients: ['a@example.org'],
    };
    const bytes = Buffer.concat([encodeJobHeader(h), Buffer.from('From x\nSubject: twice\n\nhi\n')]);
    const pack = tar.pack();
    pack.entry({ name: h.id, size: bytes.length }, bytes);
    pack.entry({ name: h.id, size: bytes.length }, bytes);
    pack.finalize();
    const chunks: Buffer[] = [];
    for await (const c of pack) chunks.push(c as Buffer);
    const bag = gzipSync(Buffer.concat(chunks));
    const hash = createHash('sha256').update(bag).digest('hex');

    const s = store(hub, 'home', { accept: ['rmail'] });
    await s.open();
    const [evil, far] = createPair();
    const hubRun = runSession({ link: far, store: s, site: 'hub', peer: 'home', codecs: ['br', 'gzip'], caps: CAPS, keepaliveMs: 500, idleTimeoutMs: 5000 });
    hubRun.catch(() => {});
    const hello = { site: 'home', peer: 'hub', codecs: ['gzip'], maxBag: CAPS.maxBag, maxExpanded: CAPS.maxExpanded, maxJobs: CAPS.maxJobs, maxJob: CAPS.maxJob, keepalive: 500, software: 'evil' };
    evil.output.write(encodeHello(hello as Parameters<typeof encodeHello>[0]));
    evil.output.write(encodeOffer({ bag: hash, size: bag.length, codec: 'gzip', jobs: 2 }));
    for (let off = 0; off < bag.length; off += DATA_CHUNK) {
      const piece = bag.subarray(off, off + DATA_CHUNK);
      evil.output.write(Buffer.concat([encodeDataHead(hash, off, piece.length), piece]));
    }
    const got: Frame[] = [];
    const dec = new FrameDecoder();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 8000);
      evil.input.on('data', (c: Buffer) => {
        const r = dec.push(c);
        if (!r.ok) return;
        got.push(...r.value);
        if (r.value.some((f) => f.type === FRAME.REFUSE || f.type === FRAME.ERROR || f.type === FRAME.ACK)) {
          clearTimeout(timer);
          resolve();
        }
      });
      evil.input.on('end', () => resolve());
      evil.input.on('error', () => resolve());
    });
    evil.abort(new Error('test done'));
    await Promise.allSettled([hubRun]);
    const f = got.find((x) => x.type === FRAME.REFUSE || x.type === FRAME.ERROR || x.type === FRAME.ACK);
    expect(f?.type, `frames back: ${got.map((g) => g.type).join(',')}`).toBe(FRAME.REFUSE);
    const r = decodeRefuse(f!.payload);
    expect(r.ok && ['bad-bag', 'bad-job'].includes(r.value.code), JSON.stringify(r.ok ? r.value : decodeError(f!.payload))).toBe(true);
    expect(ids(hub, 'in', 'home')).toEqual([]);
    expect(readdirSync(join(hub.root, 'bags', 'in', 'home')).filter((n) => n.endsWith('.d'))).toEqual([]);
  });
});
