// `npm run bench -- bag-codec`: how well and how fast each bag codec packs real mail.
// The corpus's bulk messages (sorted by name, as a queue would send them) are packed
// into bags of at most 8 MiB of jobs (the size the session builds; --bag-mib) with each codec
// and level, then every bag is read back through the full validating reader. Prints
// bytes, ratio to the raw messages, and compress/expand throughput (CPU time of this
// process, so a busy machine distorts it less than wall time would), then this process's
// peak RSS. Options measure what else was tried: bags split as the session splits them
// (--split session), entries ordered by thread inside each bag (--order thread), the
// engines on libuv's pool instead of the calling thread (--thread pool); and bags written
// into files with writeBagFile, in bag worker threads or on the calling thread, with one
// or more bags in flight (--where worker|caller|mixed, --parallel N, --workers N,
// --young MB): then wall time and the CPU of all threads of the pack phase, and its own
// peak RSS, are printed too.

import { execFileSync } from 'node:child_process';
import { closeSync, createReadStream, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { bagStream, bagWorkerState, configureBagWorkers, readBag, stopBagWorkers, writeBagFile, type BagCodec, type BagJob, type BagSummary, type CodecThread } from '../lib/bag/index.js';
import { LIMITS } from '../lib/limits.js';
import { planBags } from '../lib/session/store.js';

interface Variant {
  label: string;
  codec: BagCodec;
  level: number;
}

const VARIANTS: Variant[] = [
  { label: 'br q1', codec: 'br', level: 1 },
  { label: 'br q4', codec: 'br', level: 4 },
  { label: 'br q5', codec: 'br', level: 5 },
  { label: 'br q6', codec: 'br', level: 6 },
  { label: 'br q9', codec: 'br', level: 9 },
  { label: 'br q11', codec: 'br', level: 11 },
  { label: 'gzip -1', codec: 'gzip', level: 1 },
  { label: 'gzip -6', codec: 'gzip', level: 6 },
  { label: 'gzip -9', codec: 'gzip', level: 9 },
  // zstd through zstd-napi, always on the calling thread (or the bag worker's): --thread pool does not apply
  { label: 'zstd -3', codec: 'zstd', level: 3 },
  { label: 'zstd -6', codec: 'zstd', level: 6 },
  { label: 'zstd -7', codec: 'zstd', level: 7 },
  { label: 'zstd -8', codec: 'zstd', level: 8 },
  { label: 'zstd -9', codec: 'zstd', level: 9 },
  { label: 'zstd -12', codec: 'zstd', level: 12 },
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

/** bytes of a message's head read for --order (the header section; Subject can sit after 4 KB of ARC and DKIM headers) */
const HEAD_BYTES = 16 * 1024;

function headerOf(path: string): string {
  const buf = Buffer.alloc(HEAD_BYTES);
  const fd = openSync(path, 'r');
  let n: number;
  try {
    n = readSync(fd, buf, 0, HEAD_BYTES, 0);
  } finally {
    closeSync(fd);
  }
  const text = buf.subarray(0, n).toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  return (end < 0 ? text : text.slice(0, end)).replace(/\r?\n[ \t]+/g, ' ');
}

function field(header: string, name: string): string {
  return new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(header)?.[1]?.trim() ?? '';
}

/** Subject without Re:/Fwd:/AW: and [tags], lower case */
function baseSubject(s: string): string {
  let t = s;
  for (;;) {
    const u = t.replace(/^\s*((re|fwd?|aw|sv|antw)\s*(\[\d+\])?\s*:|\[[^\]]*\])\s*/i, '');
    if (u === t) break;
    t = u;
  }
  return t.replace(/\s+/g, ' ').trim().toLowerCase();
}

/**
 * --order thread: the bag's messages grouped by thread — a thread joins messages that
 * share the first References id (else In-Reply-To, else their own Message-ID) or the
 * base subject — threads in order of their first message, messages in queue order inside.
 */
function threadOrder<T extends { path: string }>(bag: T[]): T[] {
  const parent = new Map<string, string>();
  const find = (x: string): string => {
    let r = x;
    while (parent.get(r) !== r) r = parent.get(r)!;
    parent.set(x, r);
    return r;
  };
  const join2 = (a: string, b: string): void => {
    for (const x of [a, b]) if (!parent.has(x)) parent.set(x, x);
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent.set(rb, ra);
  };
  const keys = bag.map((f) => {
    const h = headerOf(f.path);
    const root = /<[^>]+>/.exec(field(h, 'References'))?.[0] ?? /<[^>]+>/.exec(field(h, 'In-Reply-To'))?.[0] ?? field(h, 'Message-ID');
    const r = `r:${root}`;
    join2(r, `s:${baseSubject(field(h, 'Subject'))}`);
    return r;
  });
  const first = new Map<string, number>();
  const cluster = keys.map((k, i) => {
    const c = find(k);
    if (!first.has(c)) first.set(c, i);
    return first.get(c)!;
  });
  return bag.map((f, i) => ({ f, c: cluster[i]!, i })).sort((a, b) => a.c - b.c || a.i - b.i).map((x) => x.f);
}

function peakRssMB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : Math.round(process.memoryUsage().rss / 1048576);
}

/** Restart the kernel's count of this process's peak RSS (VmHWM) from its current RSS; false where it cannot. */
function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

function rssMB(): number {
  return Math.round(process.memoryUsage().rss / 1048576);
}

/** CPU of the main thread alone, ms (Linux: /proc/self/task/PID/stat, in clock ticks of 10 ms); NaN elsewhere */
function mainThreadCpuMs(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

/** CPU of this process: every thread (the main one, bag workers, libuv's pool) */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export async function main(argv: string[]): Promise<number> {
  let messages = Infinity;
  let only: string[] | undefined;
  // the session packs up to 8 MiB of jobs per bag (docs/protocol.md §3)
  let bagMiB = 8;
  let split = 'even' as 'even' | 'session';
  let order = 'queue' as 'queue' | 'thread';
  let thread = 'caller' as CodecThread;
  let where: 'worker' | 'caller' | 'mixed' | undefined;
  let parallel = 1;
  let workers: number | undefined;
  let young: number | undefined;
  let outDir = tmpdir();
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--messages') messages = Number(argv[++i]);
    else if (argv[i] === '--only') only = argv[++i]!.split(',');
    else if (argv[i] === '--bag-mib') bagMiB = Number(argv[++i]);
    else if (argv[i] === '--split' && ['even', 'session'].includes(argv[i + 1]!)) split = argv[++i] as typeof split;
    else if (argv[i] === '--order' && ['queue', 'thread'].includes(argv[i + 1]!)) order = argv[++i] as typeof order;
    else if (argv[i] === '--thread' && ['caller', 'pool'].includes(argv[i + 1]!)) thread = argv[++i] as CodecThread;
    else if (argv[i] === '--where' && ['worker', 'caller', 'mixed'].includes(argv[i + 1]!)) where = argv[++i] as typeof where;
    else if (argv[i] === '--parallel' && Number(argv[i + 1]) >= 1) parallel = Number(argv[++i]);
    else if (argv[i] === '--workers' && Number(argv[i + 1]) >= 1) workers = Number(argv[++i]);
    else if (argv[i] === '--young' && Number(argv[i + 1]) >= 0) young = Number(argv[++i]);
    else if (argv[i] === '--out' && argv[i + 1]) outDir = argv[++i]!;
    else {
      process.stderr.write(
        'usage: npm run bench -- bag-codec [--messages N] [--bag-mib 8] [--only "br q5,gzip -6"]\n' +
          '         [--split even|session] [--order queue|thread] [--thread caller|pool]\n' +
          '         [--where worker|caller|mixed [--parallel N] [--workers N] [--young MB] [--out DIR]]\n' +
          '  --where: write bag files with writeBagFile, in bag workers, on this thread, or (mixed)\n' +
          '           the first bag in flight in a worker and the others here; --parallel: bags in\n' +
          '           flight (default 1); --workers: bag worker threads (default: --parallel for\n' +
          '           worker, 1 for mixed); --young: the workers\' young generation cap in MB (0: V8\'s\n' +
          '           default; default 2, as in writeBagFile); --out: where the bag files go (default the temp dir)\n',
      );
      return 64;
    }
  }
  const dir = corpusDir();
  const names = readdirSync(dir).sort().slice(0, messages);
  const files = names.map((n) => ({ name: n.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100), path: join(dir, n), size: statSync(join(dir, n)).size }));
  const raw = files.reduce((s, f) => s + f.size, 0);
  const BAG_JOBS_BYTES = bagMiB * 1024 * 1024;
  let bags: (typeof files)[] = [];
  if (split === 'session') {
    // exactly as the session plans them (lib/session/store.ts planBags): 512 KiB, 2 MiB,
    // then 8 MiB bags, each message of 1 MiB or more alone
    const byId = new Map(files.map((f) => [f.name, f]));
    const plan = planBags(files.map((f) => ({ id: f.name, size: f.size })), { maxBag: LIMITS.maxBagExpanded, maxExpanded: LIMITS.maxBagExpanded, maxJobs: LIMITS.maxJobsPerBag, maxJob: LIMITS.maxJobSizeCeiling });
    bags = plan.bags.map((b) => b.map((j) => byId.get(j.id)!));
  } else {
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
  }
  let orderMs = 0;
  if (order === 'thread') {
    const t = cpuMs();
    bags = bags.map((b) => threadOrder(b));
    orderMs = cpuMs() - t;
  }
  const how = split === 'session' ? 'split as the session splits them' : `of <= ${bagMiB} MiB of jobs`;
  process.stdout.write(`bag-codec: ${files.length} messages, ${raw} raw bytes, ${bags.length} bags ${how}, entries in ${order} order, engines on the ${thread === 'caller' ? 'calling thread' : 'libuv pool'}; node ${process.version}\n`);
  if (where) return packToFiles({ files, bags, raw, only, thread, where, parallel, workers: workers ?? (where === 'worker' ? parallel : 1), young: young ?? 2, outDir });
  if (order === 'thread') process.stdout.write(`ordering by thread: ${orderMs.toFixed(0)} ms CPU (reading ${HEAD_BYTES / 1024} KiB of each message's head)\n`);
  process.stdout.write('\n');
  process.stdout.write(`${'codec'.padEnd(17)} ${'bytes'.padStart(12)} ${'ratio'.padStart(7)} ${'pack MB/s'.padStart(10)} ${'read MB/s'.padStart(10)}\n`);
  for (const v of VARIANTS) {
    if (only && !only.includes(v.label) && !only.includes(`${v.label} (default)`)) continue;
    let total = 0;
    let packCpu = 0;
    let readCpu = 0;
    for (const bag of bags) {
      const jobs: BagJob[] = bag.map((f) => ({ name: f.name, size: f.size, open: () => createReadStream(f.path) }));
      let t = cpuMs();
      const { stream, summary } = bagStream(jobs, { codec: v.codec, level: v.level, thread });
      const chunks: Buffer[] = [];
      for await (const c of stream) chunks.push(c as Buffer);
      const s = await summary;
      packCpu += cpuMs() - t;
      total += s.size;
      t = cpuMs();
      let n = 0;
      for await (const e of readBag(Readable.from(chunks), { codec: v.codec, expectSha256: s.sha256, thread })) {
        for await (const c of e.stream) n += (c as Buffer).length;
      }
      readCpu += cpuMs() - t;
      if (n !== bag.reduce((a, f) => a + f.size, 0)) throw new Error('read back a different number of bytes');
    }
    const mbs = (ms: number): string => (raw / 1e6 / (ms / 1000)).toFixed(1);
    process.stdout.write(`${v.label.padEnd(17)} ${String(total).padStart(12)} ${(total / raw).toFixed(4).padStart(7)} ${mbs(packCpu).padStart(10)} ${mbs(readCpu).padStart(10)}\n`);
  }
  process.stdout.write(`\npeak RSS of this process: ${peakRssMB()} MB\n`);
  return 0;
}

interface FilesRun {
  files: { name: string; path: string; size: number }[];
  bags: { name: string; path: string; size: number }[][];
  raw: number;
  only: string[] | undefined;
  thread: CodecThread;
  where: 'worker' | 'caller' | 'mixed';
  parallel: number;
  workers: number;
  young: number;
  outDir: string;
}

/**
 * --where: every bag written into a file by writeBagFile (lib/bag/workers.ts), with
 * `parallel` bags in flight; per variant the pack phase's wall time, CPU of all threads
 * and peak RSS (VmHWM, reset before it), then each file read back through readBag.
 */
async function packToFiles(r: FilesRun): Promise<number> {
  configureBagWorkers({ workers: r.workers, resourceLimits: r.young > 0 ? { maxYoungGenerationSizeMb: r.young } : {} });
  const dir = mkdtempSync(join(r.outDir, 'mailbag-bag-codec-'));
  const lanesSay = r.where === 'mixed' ? 'the first in a bag worker, the others on this thread' : r.where === 'worker' ? `in ${r.workers} bag worker thread(s)` : 'on this thread';
  process.stdout.write(`bag files (writeBagFile) in ${dir}: ${r.parallel} in flight, ${lanesSay}; workers' young generation ${r.young > 0 ? `${r.young} MB` : "V8's default"}\n`);
  try {
    if (r.where !== 'caller') {
      // what starting the workers costs: tiny bags, one per worker, all at once
      const f = r.files[0]!;
      const rss0 = rssMB();
      let c = cpuMs();
      let t = performance.now();
      await Promise.all(Array.from({ length: r.workers }, (_, k) => writeBagFile([f], join(dir, `start-${k}.bag`), { codec: 'br' })));
      const startWall = performance.now() - t;
      const startCpu = cpuMs() - c;
      const rss1 = rssMB();
      c = cpuMs();
      t = performance.now();
      await writeBagFile([f], join(dir, 'warm.bag'), { codec: 'br' });
      process.stdout.write(
        `bag worker start (${bagWorkerState().workers}, each building a 1-job bag): ${startWall.toFixed(1)} ms wall, ${startCpu.toFixed(1)} ms CPU (all threads), ` +
          `RSS ${rss0} -> ${rss1} MB; the next 1-job bag ${(performance.now() - t).toFixed(1)} ms wall, ${(cpuMs() - c).toFixed(1)} ms CPU\n`,
      );
      for (const name of readdirSync(dir)) rmSync(join(dir, name));
    }
    const canReset = resetPeakRss();
    process.stdout.write(`\n${'codec'.padEnd(10)} ${'bytes'.padStart(12)} ${'ratio'.padStart(7)} ${'pack wall s'.padStart(12)} ${'pack CPU s'.padStart(11)} ${'main thr s'.padStart(11)} ${'MB/CPU-s'.padStart(9)} ${'MB/wall-s'.padStart(10)} ${'pack peak RSS'.padStart(14)} ${'read MB/s'.padStart(10)}\n`);
    for (const v of VARIANTS) {
      if (r.only && !r.only.includes(v.label)) continue;
      global.gc?.();
      resetPeakRss();
      const summaries: BagSummary[] = new Array<BagSummary>(r.bags.length);
      let next = 0;
      const t = performance.now();
      const c = cpuMs();
      const mc = mainThreadCpuMs();
      await Promise.all(
        Array.from({ length: r.parallel }, async (_, lane) => {
          const where = r.where === 'mixed' ? (lane === 0 ? 'worker' : 'caller') : r.where;
          while (next < r.bags.length) {
            const i = next++;
            summaries[i] = await writeBagFile(r.bags[i]!, join(dir, `${i}.bag`), { codec: v.codec, level: v.level, where, thread: r.thread });
          }
        }),
      );
      const packWall = (performance.now() - t) / 1000;
      const packCpu = (cpuMs() - c) / 1000;
      const mainCpu = (mainThreadCpuMs() - mc) / 1000;
      const peak = canReset ? `${peakRssMB()} MB` : 'n/a';
      const total = summaries.reduce((a, s) => a + s.size, 0);
      const rc = cpuMs();
      for (let i = 0; i < r.bags.length; i++) {
        let n = 0;
        for await (const e of readBag(createReadStream(join(dir, `${i}.bag`)), { codec: v.codec, expectSha256: summaries[i]!.sha256 })) {
          for await (const chunk of e.stream) n += (chunk as Buffer).length;
        }
        if (n !== r.bags[i]!.reduce((a, f) => a + f.size, 0)) throw new Error('read back a different number of bytes');
        rmSync(join(dir, `${i}.bag`));
      }
      const readCpu = (cpuMs() - rc) / 1000;
      const mb = r.raw / 1e6;
      process.stdout.write(
        `${v.label.padEnd(10)} ${String(total).padStart(12)} ${(total / r.raw).toFixed(4).padStart(7)} ${packWall.toFixed(2).padStart(12)} ${packCpu.toFixed(2).padStart(11)} ${mainCpu.toFixed(2).padStart(11)} ` +
          `${(mb / packCpu).toFixed(1).padStart(9)} ${(mb / packWall).toFixed(1).padStart(10)} ${peak.padStart(14)} ${(mb / readCpu).toFixed(1).padStart(10)}\n`,
      );
    }
  } finally {
    await stopBagWorkers();
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`\npeak RSS of this process (since the last reset): ${peakRssMB()} MB\n`);
  return 0;
}
