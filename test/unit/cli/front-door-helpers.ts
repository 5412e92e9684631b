// Helpers for the front-door tests: a temp site (config + spool), the real built bins
// run as child processes, and a job file read back by hand (not through lib/job, so
// the format on disk is checked independently).

import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const MAILBAG_BIN = join(repoRoot, 'dist/bin/mailbag.js');
export const UUX_BIN = join(repoRoot, 'dist/bin/mailbag-uux.js');

/** The built bins must be there: `npm test` builds first; run `npm run build` before vitest alone. */
export function requireBuild(): void {
  for (const bin of [MAILBAG_BIN, UUX_BIN]) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`npm run build\` first (npm test does)`);
  }
}

export interface Site {
  dir: string;
  config: string;
  spool: string;
  cleanup(): void;
}

/** A temp dir with mailbag.toml (site "home", peer "hub" plus `extra` TOML) and its spool path. */
export function makeSite(extra = ''): Site {
  const dir = mkdtempSync(join(tmpdir(), 'mailbag-fd-'));
  const config = join(dir, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "spool"\n${extra}\n[peers.hub]\nhost = "hub.example.org"\n`);
  return { dir, config, spool: join(dir, 'spool'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run a bin with `input` on stdin; bounded by a timeout. */
export function runBin(bin: string, args: string[], input: string | Buffer, env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    // a refusal may exit before reading stdin: EPIPE then is expected
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

export interface JobOnDisk {
  id: string;
  header: {
    id: string; from: string; to: string; created: string; command: string;
    args: string[]; sender: string; recipients: string[];
  };
  payload: Buffer;
}

/** Every job in spool/QUEUE/PEER, oldest first, parsed by hand. */
export function jobsIn(spool: string, queue: string, peer: string): JobOnDisk[] {
  const dir = join(spool, queue, peer);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).sort().map((id) => readJob(join(dir, id), id));
}

export function readJob(path: string, id = path.split('/').pop()!): JobOnDisk {
  const bytes = readFileSync(path);
  const lf1 = bytes.indexOf(0x0a);
  const lf2 = bytes.indexOf(0x0a, lf1 + 1);
  if (bytes.subarray(0, lf1 + 1).toString() !== 'mailbag-job 1\n') throw new Error(`${path}: no job magic`);
  return { id, header: JSON.parse(bytes.subarray(lf1 + 1, lf2).toString()) as JobOnDisk['header'], payload: bytes.subarray(lf2 + 1) };
}

/** Files left anywhere under the spool's tmp/. */
export function tmpLeftovers(spool: string): string[] {
  const dir = join(spool, 'tmp');
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** A From_ line as we write it: `From SENDER  <24-char ctime>\n`. */
export const OUR_FROM_LINE = /^From (\S+) {2}(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d \d{4}\n/;

/**
 * The built bins moved elsewhere, as an install moves them: dist/bin's CommonJS loaders,
 * their bundles and code caches (and the ES module entries mailbag.js / mailbag-uux.js)
 * copied under `dir`, with package.json and a link to node_modules (ssh2 and the other
 * externals) — but no dist/lib: only a bundle can run there.
 */
export function movedPackage(dir: string): string {
  const root = join(dir, 'pkg');
  const bin = join(root, 'dist', 'bin');
  mkdirSync(bin, { recursive: true });
  for (const f of readdirSync(join(repoRoot, 'dist', 'bin'))) {
    if (f.endsWith('.cjs') || f.endsWith('.v8cache') || f === 'mailbag.js' || f === 'mailbag-uux.js') copyFileSync(join(repoRoot, 'dist', 'bin', f), join(bin, f));
  }
  copyFileSync(join(repoRoot, 'package.json'), join(root, 'package.json'));
  symlinkSync(join(repoRoot, 'node_modules'), join(root, 'node_modules'));
  return root;
}

/** The code caches of a (moved) dist/bin. */
export function codeCaches(bin: string): string[] {
  return readdirSync(bin).filter((f) => f.endsWith('.v8cache')).map((f) => join(bin, f));
}
