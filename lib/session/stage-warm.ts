// The stage worker's warm-up (lib/session/stage-worker.ts runs it when a receiver
// prestarts the worker: serve, at its start). A fresh worker paid its first uses on the
// first bag: node:crypto and the stream machinery loaded, the zstd binding opened, the
// bag reader's, tar parser's and job reader's code compiled at its first call. In the
// relay bench the first bag of 34 jobs took 70–120 ms to stage where later bags take
// 0.15–0.4 ms a job, and every later bag waited behind it. Here a small bag held in
// memory (WARM_BAG) goes through a stager's steps — hashed, decompressed, each entry
// gathered, split and its header encoded again, created through a StageBatches whose
// runner writes nothing — while the session's thread still opens its store and exchanges
// HELLOs, on a core the start-up leaves idle. Nothing touches the file system; it stops
// at its next step once a real request has come (`stop`), and it never fails anything: a
// failure here only means the first bag pays its own first uses.

import { createHash } from 'node:crypto';
import { readBag } from '../bag/reader.js';
import { zstdUnavailable } from '../bag/codec.js';
import { encodeJobHeader } from '../job/header.js';
import { StageBatches } from './stage-batch.js';
import { gather, splitJob } from './stage-bag.js';

/**
 * A zstd bag of 16 mail-like jobs (900–3,400 bytes, from warm-a to warm-b), 1,488 bytes.
 * Made with lib/bag/writer.ts's bagStream (zstd level 3): test/unit/session/stage-warm.test.ts
 * checks that it reads as such a bag and says how to make it again. Held as bytes, not
 * built here: building one cold (the writer's code, a compressor) cost 6–11 ms, more than
 * a pass over it.
 */
const WARM_BAG = [
  'KLUv/WQAwxUuADb5jiIwkdIBDCUdUez/MHz5NpAGCx6t2Motd5JJnsPlIBQGVAPquQB7AHMA0KUiESAQIJCaCQtIhQSCiFgk',
  'BAgQDDSNBRNRGsgEuqhAEgghoKPiAlUmKhIoch4PxImgyQXKOI8GB5KYsDwZkEHkIEVQxsJhgDgZh+hxHo5E5bFEDsSZXB6L',
  'BSNxHs5CSskAkpJCU0FTgbJkDsSZQBUPFEmchxPBVDgP5ymwRA+GA3EsmIjiPBwH4kwqDkdAmwgGosDhiUhUHksDED0VGYsE',
  '0Dxhm5rmrCwlgCYllVICSCklS/RgpGzn8/l8PttuoItt27Zt27Zt27Zt27Zt27Ztv6cS2mZmZmZmZmZmZuakama2bdtmtVqt',
  'VqvVam3btm3btm3btm3R7i2mwbZtmwvVz1YHzKTR2HgkIugC02QmLBYQTQaG0lwwMFGkiZBULCga6KGigaQGcngyGcjSUDBN',
  'agKZmZmZmZmZmZmZmZmZmZmZmZmZlrnWWmuttdZaa6211lprrbUQERERERERERERERERERERERERERERERERERERDVEppZRS',
  'SimllFJKKVWl/v///////////////////7//3d3d3d3d3d3d3d3d3TXQxedz//////////////////////////9TUrJT7u7u',
  '7u7u7u7uIDyorm3btm3btm3bniSzuydmZmZmZmZmJrEyk+RC9bM1F6qfrblQ/WzNhept27Zt27ZP24hCVAnbiOVC9bO1kaep',
  'zymnPpmZmQGC36hSiY8oKEhSRqEyHAIPRERGYZq0ARJIIBAIBoZBKAxBEARBEAZBEAKEACFACBoGQRAEYVlnOHn92yJQGAgI',
  'HAAKBAyAgEMAwUJAYQBQIBgABBwCBAsCAgOgIMEAEHCQ4Pv3OO9eX0C98lhiST5h4Fx+DjgE/O/73vmPW0CvelZREiEz/AA8',
  'EruyBkyG4HJDH3eHMbOUJ7EOQjSxNcSCieahrJClPIl1EKKJrSESTDQPWRihPRTpkAIGNCz9sH3Gywu+IGE+P5y6hgIDoIDA',
  'gf+P97477oR65bXEIgPUhLsZDMCO0jrIDoBM0pGKuyr6PYA5dsmkxpCKJxkH+P3uec/5+0Ff8ayiZPRySFwjOyAJ9QJBisBr',
  'AsGAIHAQEBhJCl9AnyEgMAAoEBhA81CV2HkAQkBgIEEwIOf1vGH3CICAADfmkcgVvsmOKNVOVF4Cp7Bw0P/Hv9d/D0KFrw/g',
  'RGJ27HwIfG2Tt3ZGyP3J4CG5bxL4DAYcss8+TC9diwkPLiNhH/a+VIgRtvvf673z6Dgj4Qi2pjywNRQD291/mux8BTZl/+nY',
  'eQQ2VkPuTwYPN2FCrER/z3ecd17/3H3e847z7nXO+dfrnPEGc66ZlcSFDKUkDDzLMPbvv/c7xznOcGs7w5SxSymUZGHwvDxA',
  '753/vPc956/7nOPv9737nvOee/5173Hevf5rnnGOM8ZPTeJFCksSBp4l2F3/ms+Y4xzjU5P4IoWShIHPUknXf+8793nnvPe+',
  '4/zrvvf8857PDLdcY0xPK4mLFKpEGDyTMeqvf+53jnOucdZyhiljlzJU2cJYmAF4JHbLGJCQ8NUGnYBY8FC8qp5IU0GSpVMq',
  'iGTplSqkkHCheFDfO+917zjevf5637nPC5UDFv3+E1sHPAyDR2D9vO8N4zhjLPvK+KUUSlKDYftOBeN/AI6YoPqfW+r7vLcZ',
  '61xnuP3K8YUMVQ4Ob93EsfwBO8gZJo5DjvueO/+3H8ryQT1dekoFSRtdU0HSTVeCKlSQKwVU09XXRuzne+cfznXGccsahiXj',
  'SzIUORjGEUEGsPun/lZ6ZwzuodPrc8mTQ3lPgncSeE4C3yR8TYI/k+CAqdtb5wzjrfpBBcdUWWEHtIo9nShJJSfJNLxkZ+aM',
  '3YRJyETDlwRosQ84jDFPiwHMuIJKSTj2Pfn1IIlBT787vMkaEgN02tG3Dyf5N5cQ',
].join('');

/** jobs in WARM_BAG */
export const WARM_JOBS = 16;
/** how long the warm-up may run in all when nothing stops it (ms) */
export const WARM_BUDGET_MS = 25;

export interface WarmOptions {
  /** true once a real request has come: the warm-up stops at its next step */
  stop(): boolean;
  /** default WARM_BUDGET_MS */
  budgetMs?: number;
}

/** what a warm-up did: whole passes over the bag, entries staged in all, ms spent */
export interface WarmResult {
  passes: number;
  entries: number;
  ms: number;
}

const turn = (): Promise<void> => new Promise<void>((r) => setImmediate(r));

/** WARM_BAG's bytes, in chunks as a partial file's reads would give them */
export function warmBagChunks(): Buffer[] {
  const bag = Buffer.from(WARM_BAG, 'base64');
  return [bag.subarray(0, 512), bag.subarray(512)];
}

/** Run the warm-up until `stop()`, the budget or an error; resolves with what it did (never rejects). */
export async function warmStager(o: WarmOptions): Promise<WarmResult> {
  const t0 = performance.now();
  const budget = o.budgetMs ?? WARM_BUDGET_MS;
  const res: WarmResult = { passes: 0, entries: 0, ms: 0 };
  const over = (): boolean => o.stop() || performance.now() - t0 > budget;
  try {
    // without the zstd binding a peer sends brotli or gzip bags: their engines are
    // node:zlib's, loaded with the reader anyway
    if (zstdUnavailable() !== undefined) return res;
    const bag = warmBagChunks();
    while (!over()) {
      const hash = createHash('sha256');
      const ops = new StageBatches(() => Promise.resolve({ ok: true, missing: 0 }), 32);
      const source = (async function* () {
        for (const c of bag) {
          hash.update(c);
          yield c;
        }
      })();
      let stopped = false;
      for await (const entry of readBag(source, { codec: 'zstd', maxEntrySize: 1024 * 1024 })) {
        const { header, payload } = splitJob(await gather(entry.stream), 'warm-up');
        const chunks = [encodeJobHeader(header), ...payload];
        let len = 0;
        for (const c of chunks) len += c.length;
        await ops.create(header.id, chunks, len);
        res.entries++;
        if (o.stop()) {
          stopped = true;
          break;
        }
      }
      await ops.flush();
      hash.digest('hex');
      if (stopped) break;
      res.passes++;
      await turn();
    }
  } catch {
    // a warm-up that failed leaves the first uses to the first bag
  } finally {
    res.ms = performance.now() - t0;
  }
  return res;
}
