// Per-message cost of the enqueue front doors as whole processes, the way an MTA's
// pipe transport runs them (exec the bin, message on stdin, wait for the exit status),
// side by side in one run with a bare `node -e 0` and Taylor UUCP's `uux -r` spooling
// to a private config. Commands are interleaved round-robin so machine noise hits all
// alike; every run must exit 0 and every mailbag run must leave one job in the spool.

import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { taylorConfig } from './taylor.js';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
// built to dist/bench/: the repository is two levels up
const repoRoot = resolve(here, '../..');
const TAYLOR_UUX = '/usr/bin/uux';
const HYPERFINE = '/usr/bin/hyperfine';
const VALGRIND = '/usr/bin/valgrind';
/** V8 random seeds of the callgrind table: each fixes one run's hash seed too */
const SEEDS = [1, 2, 3, 4, 5];

interface Options {
  runs: number;
  warmup: number;
  messages: number;
  json?: string;
  /** also measure CPU time per message with hyperfine (default: when it is installed) */
  hyperfine: boolean;
  /** also count instructions with callgrind, paired per V8 random seed (default: when valgrind is installed) */
  callgrind: boolean;
}

const USAGE = `npm run bench -- enqueue [options]
  --runs N          timed runs per command (default 150)
  --warmup N        untimed runs first (default 10)
  --messages N      corpus messages to cycle through (default 40)
  --json FILE       figures as JSON too
  --no-hyperfine    skip the CPU table (hyperfine)
  --no-callgrind    skip the instruction table (valgrind's callgrind)`;

function parseArgs(argv: string[]): Options {
  const o: Options = { runs: 150, warmup: 10, messages: 40, hyperfine: existsSync(HYPERFINE), callgrind: existsSync(VALGRIND) };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    const num = () => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${a} needs a positive integer`);
      i++;
      return n;
    };
    if (a === '--runs') o.runs = num();
    else if (a === '--warmup') o.warmup = num();
    else if (a === '--messages') o.messages = num();
    else if (a === '--no-hyperfine') o.hyperfine = false;
    else if (a === '--no-callgrind') o.callgrind = false;
    else if (a === '--json' && v !== undefined) {
      o.json = v;
      i++;
    } else throw new Error(`unknown option ${a}\n${USAGE}`);
  }
  return o;
}

/** Real messages: an evenly spaced sample of the corpus's bulk part (unpacked once per machine). */
function sampleMessages(count: number): string[] {
  const src = process.env.MAILBAG_CORPUS ?? resolve(repoRoot, '../shared/corpus');
  const dest = join(tmpdir(), 'mailbag-corpus-bulk');
  if (!existsSync(join(dest, 'cur'))) {
    if (!existsSync(join(src, 'unpack.sh'))) throw new Error(`the corpus is missing at ${src} (set MAILBAG_CORPUS)`);
    const work = `${dest}.tmp-${process.pid}`;
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    execFileSync('bash', [join(src, 'unpack.sh'), work, 'bulk'], { stdio: ['ignore', 'ignore', 'inherit'] });
    renameSync(work, dest);
  }
  const all = readdirSync(join(dest, 'cur')).sort();
  const step = Math.max(1, Math.floor(all.length / count));
  return all.filter((_, i) => i % step === 0).slice(0, count).map((n) => join(dest, 'cur', n));
}

interface Command {
  name: string;
  argv: string[];
  env?: NodeJS.ProcessEnv;
  /** where this command leaves one file per run (checked at the end) */
  countJobs?: () => number;
}

function countFiles(dir: string, match: (path: string) => boolean): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) n += countFiles(p, match);
    else if (match(p)) n++;
  }
  return n;
}

/** a committed job file starts with the job magic */
function isJob(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(12);
    const got = readSync(fd, b, 0, b.length, 0);
    return b.subarray(0, got).toString('latin1') === 'mailbag-job ';
  } finally {
    closeSync(fd);
  }
}

/** One run: exec, stdin from the message file, wall time until the exit status. */
function once(cmd: Command, message: string): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const fd = openSync(message, 'r');
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd.argv[0]!, cmd.argv.slice(1), { stdio: [fd, 'ignore', 'pipe'], env: cmd.env ?? process.env });
    let err = '';
    child.stderr?.on('data', (b: Buffer) => (err += b.toString('utf8')));
    child.on('error', (e) => {
      closeSync(fd);
      reject(e);
    });
    child.on('exit', (code, signal) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      closeSync(fd);
      if (code !== 0) reject(new Error(`${cmd.name} exited ${code ?? signal} on ${message}: ${err.trim()}`));
      else resolvePromise(ms);
    });
  });
}

interface Stats {
  name: string;
  runs: number;
  mean: number;
  sd: number;
  median: number;
  min: number;
  p90: number;
  max: number;
}

function stats(name: string, xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  const sd = Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, s.length - 1));
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { name, runs: s.length, mean, sd, median: at(0.5), min: s[0]!, p90: at(0.9), max: s[s.length - 1]! };
}

/** bench/taylor.ts's configuration, owned by uucp: uux is set-uid uucp and writes the spool as uucp */
function uucpTaylorConfig(dir: string): string {
  let uucp: { uid: number; gid: number } | undefined;
  try {
    uucp = {
      uid: Number(execFileSync('id', ['-u', 'uucp'], { encoding: 'utf8' }).trim()),
      gid: Number(execFileSync('id', ['-g', 'uucp'], { encoding: 'utf8' }).trim()),
    };
  } catch {
    uucp = undefined;
  }
  return taylorConfig(dir, 'benchsite', uucp).config;
}

interface CpuStats {
  name: string;
  mean: number;
  user: number;
  system: number;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** hyperfine (shell mode: it has no stdin option here) reports user and system time from wait4. */
async function cpuWithHyperfine(commands: Command[], message: string, o: Options, dir: string): Promise<CpuStats[]> {
  const out = join(dir, 'hyperfine.json');
  const shellCommands = commands.map((c) => {
    const env = c.env?.MAILBAG_CONFIG ? `MAILBAG_CONFIG=${shellQuote(c.env.MAILBAG_CONFIG)} ` : '';
    return `${env}${c.argv.map(shellQuote).join(' ')} < ${shellQuote(message)} > /dev/null`;
  });
  const args = ['--style', 'none', '-w', String(o.warmup), '-r', String(o.runs), '--export-json', out, ...commands.flatMap((c, i) => ['-n', c.name, shellCommands[i]!])];
  await new Promise<void>((resolvePromise, reject) => {
    // the commands' own (clean) environment, for the shell hyperfine starts them from
    const child = spawn(HYPERFINE, args, { stdio: ['ignore', 'ignore', 'inherit'], env: commands[0]?.env ?? process.env });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolvePromise() : reject(new Error(`hyperfine exited ${code}`))));
  });
  const json = JSON.parse(readFileSync(out, 'utf8')) as { results: Array<{ command: string; mean: number; user: number; system: number }> };
  return json.results.map((r) => ({ name: r.command, mean: r.mean * 1000, user: r.user * 1000, system: r.system * 1000 }));
}

interface CallgrindStats {
  name: string;
  /** instructions per seed, in SEEDS order (the launcher's included) */
  instructions: number[];
  /** of those, what the bin's #! line runs before node (the same for every seed) */
  launcher: number;
}

/**
 * The instructions a bin's #! line costs before node starts: the bin exec'd as an MTA
 * execs it, under callgrind with node itself not traced (--trace-children-skip) and a
 * dump before each execve, so what is counted is the interpreter's work (sh's search for
 * node, or env's execvp through PATH) up to the exec of node; its parts are summed.
 */
function launcherInstructions(c: Command, message: string, dir: string): number {
  const prefix = join(dir, 'launcher.callgrind');
  for (const f of readdirSync(dir)) if (f.startsWith('launcher.callgrind.')) rmSync(join(dir, f));
  const fd = openSync(message, 'r');
  try {
    execFileSync(VALGRIND, ['--tool=callgrind', '--trace-children=yes', '--trace-children-skip=*/node,*/nodejs', '--dump-before=*execve*', `--callgrind-out-file=${prefix}.%p`, ...c.argv], {
      stdio: [fd, 'ignore', 'ignore'],
      env: c.env ?? process.env,
    });
  } finally {
    closeSync(fd);
  }
  let total = 0;
  for (const f of readdirSync(dir).filter((n) => n.startsWith('launcher.callgrind.'))) {
    for (const m of readFileSync(join(dir, f), 'latin1').matchAll(/^summary: (\d+)$/gm)) total += Number(m[1]);
  }
  if (total === 0) throw new Error(`${c.name}: no callgrind summary for its #! line`);
  return total;
}

/**
 * Instructions per command (all threads), counted by callgrind: independent of the load
 * on the machine. Node's hash seed is random per process and moves a start-up by ±5 %,
 * so each command runs once per seed of SEEDS with `node --random-seed=S` (which fixes
 * the hash seed too and, unlike --hash-seed, leaves every code cache usable), and the
 * ratios are of sums over the same seeds. The bins run as `node --random-seed=S BIN`,
 * since a #! line cannot take the flag; what runs before node (the #! line's program:
 * the launcher's sh since bin/launcher.ts, `env` before it) is counted once by
 * launcherInstructions and added to every seed's count.
 */
function countWithCallgrind(commands: Command[], message: string, dir: string): CallgrindStats[] {
  const out = join(dir, 'callgrind.out');
  return commands.map((c) => {
    const launcher = c.argv[0] === process.execPath ? 0 : launcherInstructions(c, message, dir);
    const instructions = SEEDS.map((seed) => {
      const argv = c.argv[0] === process.execPath ? c.argv.slice(1) : c.argv;
      const fd = openSync(message, 'r');
      try {
        execFileSync(VALGRIND, ['--tool=callgrind', `--callgrind-out-file=${out}`, process.execPath, `--random-seed=${seed}`, ...argv], {
          stdio: [fd, 'ignore', 'ignore'],
          env: c.env ?? process.env,
        });
      } finally {
        closeSync(fd);
      }
      const m = /^summary: (\d+)$/m.exec(readFileSync(out, 'latin1'));
      if (!m) throw new Error(`${c.name}: no callgrind summary`);
      return Number(m[1]) + launcher;
    });
    return { name: c.name, instructions, launcher };
  });
}

function fmt(n: number): string {
  return n.toFixed(1);
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const o = parseArgs(argv);
  // what npm installs: package.json "bin" (the CommonJS bundles), not the ESM wrappers
  const bins = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin;
  const mailbag = join(repoRoot, bins.mailbag!);
  const mailbagUux = join(repoRoot, bins['mailbag-uux']!);
  for (const f of [mailbag, mailbagUux]) if (!existsSync(f)) throw new Error(`${f} is missing: run npm run build`);
  const messages = sampleMessages(o.messages);
  const sizes = messages.map((m) => statSync(m).size).sort((a, b) => a - b);

  const dir = mkdtempSync(join(tmpdir(), 'mailbag-bench-'));
  chmodSync(dir, 0o755); // set-uid uux (uucp) must reach its spool inside
  try {
    const spool = join(dir, 'spool');
    const config = join(dir, 'mailbag.toml');
    writeFileSync(config, `site = "benchsite"\nspool = "${spool}"\n\n[peers.hub]\nhost = "hub.invalid"\n`);
    // the environment an MTA's pipe transport gives (Postfix exports only TZ, MAIL_CONFIG
    // and LANG): none of the caller's NODE_* variables, which change node's own start-up
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', MAILBAG_CONFIG: config };
    const sender = 'sender@bench.test';
    const rcpt = 'rcpt@hub.test';
    const commands: Command[] = [
      { name: 'node -e 0', argv: [process.execPath, '-e', '0'], env },
      { name: 'mailbag enqueue', argv: [mailbag, 'enqueue', 'hub', '-f', sender, '--', rcpt], env },
      { name: 'mailbag-uux', argv: [mailbagUux, '-r', '-n', '-z', `-a${sender}`, '-', 'hub!rmail', `(${rcpt})`], env },
    ];
    if (existsSync(TAYLOR_UUX)) {
      const cfg = uucpTaylorConfig(dir);
      commands.push({
        name: 'Taylor uux -r',
        argv: [TAYLOR_UUX, '-I', cfg, '-r', '-n', '-z', `-a${sender}`, '-', 'hub!rmail', `(${rcpt})`],
        env,
        countJobs: () => countFiles(join(dir, 'uucp-spool'), (p) => /\/C\.[^/]+$/.test(p)),
      });
    } else {
      process.stderr.write(`SKIP Taylor uux: ${TAYLOR_UUX} missing (apt-get install uucp)\n`);
    }

    const times = new Map<string, number[]>(commands.map((c) => [c.name, []]));
    const total = o.warmup + o.runs;
    process.stderr.write(`bench enqueue: ${commands.length} commands × ${o.runs} runs (+${o.warmup} warm-up), ${messages.length} corpus messages\n`);
    for (let i = 0; i < total; i++) {
      const message = messages[i % messages.length]!;
      for (const cmd of commands) {
        const ms = await once(cmd, message);
        if (i >= o.warmup) times.get(cmd.name)!.push(ms);
      }
    }

    // every mailbag run must have left a job, every uux run a C. file: the bench measured real work
    const jobs = countFiles(spool, isJob);
    const wantJobs = 2 * total;
    if (jobs !== wantJobs) throw new Error(`expected ${wantJobs} jobs in ${spool}, found ${jobs}`);
    for (const c of commands) {
      if (c.countJobs && c.countJobs() !== total) throw new Error(`${c.name}: expected ${total} queued jobs, found ${c.countJobs()}`);
    }

    const all = commands.map((c) => stats(c.name, times.get(c.name)!));
    const base = all[0]!;
    const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const machine = `${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${cpus().length} cores, node ${process.version}`;
    const lines = [
      `${date} — ${machine}`,
      `messages: ${messages.length} from corpus bulk, ${sizes[0]}–${sizes[sizes.length - 1]} bytes (median ${sizes[Math.floor(sizes.length / 2)]}); ${o.runs} runs each`,
      '',
      '| command | mean ms | ± sd | median ms | min | p90 | mean / node | median / node |',
      '|---|---:|---:|---:|---:|---:|---:|---:|',
      ...all.map(
        (s) =>
          `| ${s.name} | ${fmt(s.mean)} | ${fmt(s.sd)} | ${fmt(s.median)} | ${fmt(s.min)} | ${fmt(s.p90)} | ${(s.mean / base.mean).toFixed(2)} | ${(s.median / base.median).toFixed(2)} |`,
      ),
      '',
      `target: mailbag enqueue and mailbag-uux at most 1.25 × node -e 0`,
    ];
    let cpu: CpuStats[] | undefined;
    if (o.hyperfine) {
      const median = messages.map((m) => ({ m, size: statSync(m).size })).sort((a, b) => a.size - b.size)[Math.floor(messages.length / 2)]!;
      cpu = await cpuWithHyperfine(commands, median.m, o, dir);
      const cbase = cpu[0]!;
      lines.push(
        '',
        `CPU time per message (hyperfine ${o.runs} runs, shell start-up subtracted; one ${median.size}-byte message): robust against other load on the machine`,
        '',
        '| command | wall mean ms | user ms | system ms | CPU ms | CPU / node |',
        '|---|---:|---:|---:|---:|---:|',
        ...cpu.map(
          (c) => `| ${c.name} | ${fmt(c.mean)} | ${fmt(c.user)} | ${fmt(c.system)} | ${fmt(c.user + c.system)} | ${((c.user + c.system) / (cbase.user + cbase.system)).toFixed(2)} |`,
        ),
      );
    }
    let instructions: CallgrindStats[] | undefined;
    if (o.callgrind) {
      const median = messages.map((m) => ({ m, size: statSync(m).size })).sort((a, b) => a.size - b.size)[Math.floor(messages.length / 2)]!;
      // the Node commands only: Taylor uux is set-uid, which valgrind cannot follow
      instructions = countWithCallgrind(commands.filter((c) => !c.countJobs), median.m, dir);
      const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
      const ibase = sum(instructions[0]!.instructions);
      lines.push(
        '',
        `Instructions per message (callgrind, all threads; one ${median.size}-byte message; node --random-seed=S for S in ${SEEDS.join(', ')}; each seed's count includes the #! line's program before node): independent of the load`,
        '',
        `| command | ${SEEDS.map((s) => `seed ${s}`).join(' | ')} | of which #! line | sum / node |`,
        `|---|${SEEDS.map(() => '---:').join('|')}|---:|---:|`,
        ...instructions.map(
          (c) => `| ${c.name} | ${c.instructions.map((n) => `${(n / 1e6).toFixed(1)}M`).join(' | ')} | ${c.launcher ? `${(c.launcher / 1e6).toFixed(2)}M` : '–'} | ${(sum(c.instructions) / ibase).toFixed(3)} |`,
        ),
      );
    }
    process.stdout.write(lines.join('\n') + '\n');
    if (o.json) writeFileSync(o.json, JSON.stringify({ date, machine, runs: o.runs, messages: messages.length, results: all, cpu, instructions }, null, 2) + '\n');
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
