// `npm run bench -- bag-codec`: how well and how fast each bag codec packs real mail.
// The corpus's bulk messages (sorted by name, as a queue would send them) are packed
// into bags of at most 8 MiB of jobs (the size the session builds; --bag-mib) with each codec
// and level, then every bag is read back through the full validating reader. Prints
// bytes, ratio to the raw messages, and compress/expand throughput (CPU time of this
// process, so a busy machine distorts it less than wall time would).

import { execFileSync } from 'node:child_process';
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { bagStream, readBag, type BagCodec, type BagJob } from '../lib/bag/index.js';

interface Variant {
  label: string;
  codec: BagCodec;
  level: number;
}

const VARIANTS: Variant[] = [
  { label: 'br q1', codec: 'br', level: 1 },
  { label: 'br q4 (default)', codec: 'br', level: 4 },
  { label: 'br q5', codec: 'br', level: 5 },
  { label: 'br q6', codec: 'br', level: 6 },
  { label: 'br q9', codec: 'br', level: 9 },
  { label: 'br q11', codec: 'br', level: 11 },
  { label: 'gzip -1', codec: 'gzip', level: 1 },
  { label: 'gzip -6', codec: 'gzip', level: 6 },
  { label: 'gzip -9', codec: 'gzip', level: 9 },
];


function corpusDir(): string {
  const dest = join(tmpdir(), 'mailbag-corpus-bulk', 'cur');
  try {
    statSync(dest);
    return dest;
  } catch {
    const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
    const src = process.env.MAILBAG_CORPUS ?? resolve(root, '../shared/corpus');
    const work = join(tmpdir(), `mailbag-corpus-bulk.tmp-${process.pid}`);
    execFileSync('bash', [join(src, 'unpack.sh'), work, 'bulk'], { stdio: ['ignore', 'ignore', 'inherit'] });
    execFileSync('mv', [work, join(tmpdir(), 'mailbag-corpus-bulk')]);
    return dest;
  }
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export async function main(argv: string[]): Promise<number> {
  let messages = Infinity;
  let only: string[] | undefined;
  // the session packs up to 8 MiB of jobs per bag (docs/protocol.md §3)
  let bagMiB = 8;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--messages') messages = Number(argv[++i]);
    else if (argv[i] === '--only') only = argv[++i]!.split(',');
    else if (argv[i] === '--bag-mib') bagMiB = Number(argv[++i]);
    else {
      process.stderr.write('usage: npm run bench -- bag-codec [--messages N] [--bag-mib 8] [--only "br q4 (default),gzip -6"]\n');
      return 64;
    }
  }
  const dir = corpusDir();
  const names = readdirSync(dir).sort().slice(0, messages);
  const files = names.map((n) => ({ name: n.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100), path: join(dir, n), size: statSync(join(dir, n)).size }));
  const raw = files.reduce((s, f) => s + f.size, 0);
  const BAG_JOBS_BYTES = bagMiB * 1024 * 1024;
  const bags: (typeof files)[] = [];
  let cur: typeof files = [];
  let curBytes = 0;
  for (const f of files) {
    if (cur.length > 0 && curBytes + f.size > BAG_JOBS_BYTES) {
      bags.push(cur);
      cur = [];
      curBytes = 0;
    }
    cur.push(f);
    curBytes += f.size;
  }
  if (cur.length) bags.push(cur);
  process.stdout.write(`bag-codec: ${files.length} messages, ${raw} raw bytes, ${bags.length} bags of <= ${bagMiB} MiB of jobs; node ${process.version}\n\n`);
  process.stdout.write(`${'codec'.padEnd(17)} ${'bytes'.padStart(12)} ${'ratio'.padStart(7)} ${'pack MB/s'.padStart(10)} ${'read MB/s'.padStart(10)}\n`);
  for (const v of VARIANTS) {
    if (only && !only.includes(v.label)) continue;
    let total = 0;
    let packCpu = 0;
    let readCpu = 0;
    for (const bag of bags) {
      const jobs: BagJob[] = bag.map((f) => ({ name: f.name, size: f.size, open: () => createReadStream(f.path) }));
      let t = cpuMs();
      const { stream, summary } = bagStream(jobs, { codec: v.codec, level: v.level });
      const chunks: Buffer[] = [];
      for await (const c of stream) chunks.push(c as Buffer);
      const s = await summary;
      packCpu += cpuMs() - t;
      total += s.size;
      t = cpuMs();
      let n = 0;
      for await (const e of readBag(Readable.from(chunks), { codec: v.codec, expectSha256: s.sha256 })) {
        for await (const c of e.stream) n += (c as Buffer).length;
      }
      readCpu += cpuMs() - t;
      if (n !== bag.reduce((a, f) => a + f.size, 0)) throw new Error('read back a different number of bytes');
    }
    const mbs = (ms: number): string => (raw / 1e6 / (ms / 1000)).toFixed(1);
    process.stdout.write(`${v.label.padEnd(17)} ${String(total).padStart(12)} ${(total / raw).toFixed(4).padStart(7)} ${mbs(packCpu).padStart(10)} ${mbs(readCpu).padStart(10)}\n`);
  }
  return 0;
}
