// `npm run bench -- bag-codec`: how well and how fast each bag codec packs real mail.
// The corpus's bulk messages (sorted by name, as a queue would send them) are packed
// into bags of at most 8 MiB of jobs (the size the session builds; --bag-mib) with each codec
// and level, then every bag is read back through the full validating reader. Prints
// bytes, ratio to the raw messages, and compress/expand throughput (CPU time of this
// process, so a busy machine distorts it less than wall time would), then this process's
// peak RSS. Options measure what else was tried: bags split as the session splits them
// (--split session), entries ordered by thread inside each bag (--order thread), the
// engines on libuv's pool instead of the calling thread (--thread pool).

import { execFileSync } from 'node:child_process';
import { closeSync, createReadStream, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { bagStream, readBag, type BagCodec, type BagJob, type CodecThread } from '../lib/bag/index.js';
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
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--messages') messages = Number(argv[++i]);
    else if (argv[i] === '--only') only = argv[++i]!.split(',');
    else if (argv[i] === '--bag-mib') bagMiB = Number(argv[++i]);
    else if (argv[i] === '--split' && ['even', 'session'].includes(argv[i + 1]!)) split = argv[++i] as typeof split;
    else if (argv[i] === '--order' && ['queue', 'thread'].includes(argv[i + 1]!)) order = argv[++i] as typeof order;
    else if (argv[i] === '--thread' && ['caller', 'pool'].includes(argv[i + 1]!)) thread = argv[++i] as CodecThread;
    else {
      process.stderr.write(
        'usage: npm run bench -- bag-codec [--messages N] [--bag-mib 8] [--only "br q5,gzip -6"]\n' +
          '         [--split even|session] [--order queue|thread] [--thread caller|pool]\n',
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
