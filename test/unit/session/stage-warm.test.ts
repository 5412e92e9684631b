// The stage worker's warm-up (lib/session/stage-warm.ts): its bag held in memory is a
// good bag of WARM_JOBS jobs — the very bag lib/bag/writer.ts makes of the jobs below
// (how to make it again when they or the job format change is printed on failure) — a
// warm-up runs whole passes over it within its budget, touches no file, and stops at
// its next step once told to.

import { describe, expect, it } from 'vitest';
import { readBag } from '../../../lib/bag/reader.js';
import { bagStream, type BagJob } from '../../../lib/bag/writer.js';
import { encodeJobHeader, jobHeaderProblem, type JobHeader } from '../../../lib/job/header.js';
import { gather, splitJob } from '../../../lib/session/stage-bag.js';
import { WARM_JOBS, warmBagChunks, warmStager } from '../../../lib/session/stage-warm.js';

/** the jobs of WARM_BAG: from warm-a to warm-b, 900–3,400 bytes of mail-like text */
function warmJobs(): { name: string; data: Buffer }[] {
  const sizes = [1200, 2600, 900, 3400];
  return Array.from({ length: WARM_JOBS }, (_, i) => {
    const id = `${(0x190000000000 + i).toString(16).padStart(12, '0')}000warm${String(i).padStart(4, '0')}`;
    const header: JobHeader = {
      id, from: 'warm-a', to: 'warm-b', created: '2026-01-01T00:00:00.000Z', command: 'rmail',
      args: [`user${i}@warm-b.example`], sender: `sender${i}@warm-a.example`, recipients: [`user${i}@warm-b.example`],
    };
    const size = sizes[i % sizes.length]!;
    let text = `Received: from warm-a (warm-a.example)\r\nSubject: warm-up ${i}\r\n\r\n`;
    for (let line = 0; text.length < size; line++) text += `line ${line} of message ${i}: the quick brown fox jumps over the lazy dog\r\n`;
    return { name: id, data: Buffer.concat([encodeJobHeader(header), Buffer.from(text.slice(0, size), 'latin1')]) };
  });
}

async function entriesOf(chunks: Buffer[]): Promise<{ name: string; data: Buffer }[]> {
  const out: { name: string; data: Buffer }[] = [];
  for await (const e of readBag((async function* () { yield* chunks; })(), { codec: 'zstd' })) {
    out.push({ name: e.name, data: Buffer.concat(await gather(e.stream)) });
  }
  return out;
}

describe('the warm-up bag', () => {
  it('reads as a zstd bag of WARM_JOBS good jobs, the ones warmJobs() makes', async () => {
    const got = await entriesOf(warmBagChunks());
    const want = warmJobs();
    if (JSON.stringify(got.map((e) => [e.name, e.data.toString('base64')])) !== JSON.stringify(want.map((e) => [e.name, e.data.toString('base64')]))) {
      // the jobs or the job format changed: this is the bag to put into WARM_BAG
      const jobs: BagJob[] = want.map((j) => ({ name: j.name, size: j.data.length, open: () => (async function* () { yield j.data; })() }));
      const { stream, summary } = bagStream(jobs, { codec: 'zstd', level: 3 });
      const bytes: Buffer[] = [];
      for await (const c of stream) bytes.push(c as Buffer);
      await summary;
      console.error(`WARM_BAG should be (base64):\n${Buffer.concat(bytes).toString('base64')}`);
    }
    expect(got.map((e) => e.name)).toEqual(want.map((e) => e.name));
    expect(got.map((e) => e.data.equals(want.find((w) => w.name === e.name)!.data))).toEqual(want.map(() => true));
    for (const e of got) {
      const { header } = splitJob([e.data], e.name);
      expect(jobHeaderProblem(header)).toBeUndefined();
      expect(header.id).toBe(e.name);
    }
  });
});

describe('warmStager', () => {
  it('runs whole passes over the bag within its budget and resolves', async () => {
    const r = await warmStager({ stop: () => false, budgetMs: 150 });
    expect(r.passes).toBeGreaterThanOrEqual(1);
    expect(r.entries).toBe(r.passes * WARM_JOBS);
  });

  it('does nothing when a request has already come', async () => {
    const r = await warmStager({ stop: () => true });
    expect(r).toMatchObject({ passes: 0, entries: 0 });
  });

  it('stops at the entry after the one during which a request came', async () => {
    let seen = 0;
    const r = await warmStager({ stop: () => ++seen > 3, budgetMs: 10_000 });
    // stop() is asked before the first pass, then after each entry
    expect(r).toMatchObject({ passes: 0, entries: 3 });
  });
});
