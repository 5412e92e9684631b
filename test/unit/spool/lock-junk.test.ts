// Lock files that do not read as locks. A lock is linked into locks/ complete, but
// nothing is fsynced, so a power cut can leave the name with no bytes (or stale blocks)
// behind it. Such a file written before this boot, or unreadable for longer than
// JUNK_GRACE_MS, is taken over like a dead holder's lock; a younger one, or a lock of
// another version, is refused. Racing processes over one junk file: exactly one wins.

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main as runMain } from '../../../lib/cli/run-jobs.js';
import { makeSite, RMAIL_PAYLOAD } from '../runner/helpers.js';
import { builtLib, haveBuild, removeBuiltLib, runRacer } from './built.js';
import { LOCK_MAGIC_LINE, parseLock, Spool } from '../../../lib/spool/index.js';
import { JUNK_GRACE_MS } from '../../../lib/spool/lock.js';

// this boot's start, read here independently of lib/spool/lock.ts (Linux only)
function btimeSeconds(): number | undefined {
  try {
    const m = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
const btime = btimeSeconds();
const uptimeS = btime === undefined ? 0 : Date.now() / 1000 - btime;

let dir: string;
let spool: Spool;
let logged: string[];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-lock-junk-test-'));
  spool = await Spool.open(join(dir, 'spool'), { create: true });
  logged = [];
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const log = (line: string): void => void logged.push(line);
const locks = (): string[] => readdirSync(join(spool.root, 'locks')).sort();

/** Plant `content` at locks/FILE with its mtime `ageS` seconds ago (or at `atS`). */
function plant(file: string, content: string | Buffer, when: { ageS?: number; atS?: number } = {}): string {
  const path = join(spool.root, 'locks', file);
  writeFileSync(path, content);
  const t = when.atS ?? (when.ageS !== undefined ? Date.now() / 1000 - when.ageS : undefined);
  if (t !== undefined) utimesSync(path, t, t);
  return path;
}

// what a power cut leaves: no bytes, zeros (an allocated block never written), another
// file's stale block, a lock cut short
const JUNK: [string, string | Buffer][] = [
  ['empty', ''],
  ['zeros', Buffer.alloc(4096)],
  ['garbage', Buffer.from('From alice@example.org Mon Jan  1 00:00:00 2026\nSubject: x\n\x00\x01\xff')],
  ['cut short', `${LOCK_MAGIC_LINE}{"pid":12`],
];

describe.runIf(btime !== undefined)('a junk lock file written before this boot', () => {
  it.each(JUNK)('is taken over (%s), saying so, and its break token is cleaned', async (kind, content) => {
    const path = plant('runner.hub.lock', content, { atS: btime! - 3600 });
    const l = await spool.lock('runner.hub', { log });
    expect(l.info.pid).toBe(process.pid);
    expect(parseLock(readFileSync(path, 'utf8'))?.nonce).toBe(l.info.nonce);
    expect(locks()).toEqual(['runner.hub.lock']);
    expect(logged).toHaveLength(1);
    const what = kind === 'empty' ? 'empty' : `${Buffer.byteLength(content)} bytes that are not a lock`;
    expect(logged[0]).toBe(
      `mailbag: spool: took over lock runner.hub: ${path} was not a mailbag lock file (${what}, written ${new Date((btime! - 3600) * 1000).toISOString()}, before this boot (${new Date(btime! * 1000).toISOString()})); a power cut leaves such files`,
    );
    await l.release();
    expect(locks()).toEqual([]);
  });

  it('is taken over though a breaker died holding its token (the power cut hit the break)', async () => {
    const path = plant('session-hub.lock', '', { atS: btime! - 60 });
    // the dead breaker's token: itself junk, as the same power cut leaves it
    const { ino, mtimeNs } = statSync(path, { bigint: true });
    plant(`session-hub.lock.break.junk-${ino}-${mtimeNs}.1`, '', { atS: btime! - 60 });
    const l = await spool.lock('session-hub', { log });
    expect(locks()).toEqual(['session-hub.lock']);
    expect(logged).toHaveLength(1);
    await l.release();
  });

  it('is not taken when it is a lock of another version: refused by name, left alone', async () => {
    const v2 = `mailbag-lock 2\n${JSON.stringify({ pid: 1, host: hostname(), nonce: 'newer' })}\n`;
    const path = plant('runner.hub.lock', v2, { atS: btime! - 3600 });
    const err = await spool.lock('runner.hub', { log }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'locked', exitCode: 75 });
    expect((err as Error).message).toBe(`spool: ${path}: lock file version 2 is not supported; this mailbag reads version 1 (remove it if no mailbag is running)`);
    expect(readFileSync(path, 'utf8')).toBe(v2);
    expect(logged).toEqual([]);
  });
});

describe.runIf(btime !== undefined)('mailbag run after a power cut left its runner lock empty', () => {
  it('takes the lock over, says so with its other lines (stdout; none with --quiet: runner/lock-quiet), delivers the job and exits 0 (75, "remove it", nothing delivered before)', async () => {
    const site = await makeSite();
    const said: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (said.push(String(chunk)), true));
    try {
      await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
      const junk = join(site.spool.root, 'locks', 'runner.hub.lock');
      writeFileSync(junk, '');
      utimesSync(junk, btime! - 600, btime! - 600);
      const err = new PassThrough();
      const e: Buffer[] = [];
      err.on('data', (c: Buffer) => e.push(c));
      const out = new PassThrough();
      const o: Buffer[] = [];
      out.on('data', (c: Buffer) => o.push(c));
      const io = { stdin: Readable.from([]), stdout: out, stderr: err, env: site.env, cwd: site.dir, isTTY: false };
      const code = await runMain(['--config', join(site.dir, 'mailbag.toml')], io);
      spy.mockRestore();
      expect(Buffer.concat(e).toString()).toBe('');
      expect(said.join('')).toBe('');
      expect(code).toBe(0);
      expect(site.sendmailCalls()).toHaveLength(1);
      expect(Buffer.concat(o).toString()).toMatch(new RegExp(`^mailbag: spool: took over lock runner\\.hub: ${junk} was not a mailbag lock file \\(empty, written .*, before this boot .*\\); a power cut leaves such files\n`));
      expect(existsSync(junk)).toBe(false);
    } finally {
      spy.mockRestore();
      site.cleanup();
    }
  });
});

describe('a junk lock file written during this boot', () => {
  it('is refused while younger than JUNK_GRACE_MS (a writer could be mid-way), with or without waiting', async () => {
    for (const [kind, content] of JUNK) {
      const path = plant('runner.hub.lock', content);
      const msg = `spool: ${path} is not a mailbag lock file; remove it if no mailbag is running`;
      await expect(spool.lock('runner.hub', { log }), kind).rejects.toMatchObject({ code: 'locked', exitCode: 75, message: msg });
      await expect(spool.lock('runner.hub', { log, wait: true, timeoutMs: 300 }), kind).rejects.toMatchObject({ message: msg });
      expect(readFileSync(path), kind).toEqual(Buffer.from(content));
    }
    // just inside the grace
    plant('runner.hub.lock', '', { ageS: JUNK_GRACE_MS / 1000 - 3 });
    await expect(spool.lock('runner.hub', { log })).rejects.toMatchObject({ code: 'locked' });
    expect(locks()).toEqual(['runner.hub.lock']);
    expect(logged).toEqual([]);
  });

  it.runIf(btime === undefined || uptimeS > JUNK_GRACE_MS / 1000 + 60)('is taken over once unchanged for longer than JUNK_GRACE_MS', async () => {
    const ageS = JUNK_GRACE_MS / 1000 + 30;
    const path = plant('hub.lock', Buffer.alloc(100), { ageS });
    const l = await spool.lock('hub', { log });
    expect(locks()).toEqual(['hub.lock']);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatch(new RegExp(`^mailbag: spool: took over lock hub: ${path} was not a mailbag lock file \\(100 bytes that are not a lock, unchanged since \\d{4}-.*Z\\); a power cut leaves such files$`));
    await l.release();
  });

  it('makes a process wait for another that is taking it over, then says who holds it', async () => {
    const path = plant('hub.lock', '', { ageS: JUNK_GRACE_MS / 1000 + 30 });
    const { ino, mtimeNs } = statSync(path, { bigint: true });
    // a live breaker (this very process) holds the token of that junk file
    const token = `hub.lock.break.junk-${ino}-${mtimeNs}.1`;
    plant(token, `${LOCK_MAGIC_LINE}${JSON.stringify({ pid: process.pid, host: hostname(), nonce: 'breaker', since: '' })}\n`);
    const t0 = Date.now();
    await expect(spool.lock('hub', { log })).rejects.toMatchObject({ code: 'locked', message: `spool: ${path} is not a mailbag lock file and another process is taking it over` });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_900);
    expect(locks()).toEqual(['hub.lock', token].sort());
    expect(logged).toEqual([]);
  });
});

describe.runIf(btime !== undefined && haveBuild())('processes racing for a junk lock file from before this boot', () => {
  const distSpool = join(builtLib(), 'spool', 'index.js');
  afterAll(removeBuiltLib);

  const stderrs: string[] = [];
  const run = (script: string): Promise<number | null> => runRacer(script, stderrs, 60_000);

  // each child tries once, without waiting; the winner logs 'got PID' and holds the lock
  // until every other child has logged how it lost (bounded), so no loser can come late
  const contender = (logFile: string, n: number, startAt: number): string => `
    import { appendFileSync, readFileSync } from 'node:fs';
    import { Spool } from ${JSON.stringify(distSpool)};
    const spool = await Spool.open(${JSON.stringify(join(dir, 'spool'))});
    while (Date.now() < ${startAt}) {}
    let l;
    try {
      l = await spool.lock('race');
    } catch (e) {
      appendFileSync(${JSON.stringify(logFile)}, 'lost ' + process.pid + ' ' + e.code + ' ' + e.message + '\\n');
      process.exit(0);
    }
    appendFileSync(${JSON.stringify(logFile)}, 'got ' + process.pid + '\\n');
    const until = Date.now() + 30000;
    while (readFileSync(${JSON.stringify(logFile)}, 'utf8').split('\\n').filter((x) => x.startsWith('lost ')).length < ${n - 1} && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await l.release();
  `;

  it('exactly one of them gets it, the others are told who holds it; junk and tokens are gone', async () => {
    const n = 4;
    for (let round = 0; round < 4; round++) {
      const [kind, content] = JUNK[round % JUNK.length]!;
      const logFile = join(dir, `log${round}`);
      writeFileSync(logFile, '');
      plant('race.lock', content, { atS: btime! - 100 - round });
      stderrs.length = 0;
      const startAt = Date.now() + 800;
      const codes = await Promise.all(Array.from({ length: n }, () => run(contender(logFile, n, startAt))));
      const text = readFileSync(logFile, 'utf8');
      expect(codes, `${kind}\n${stderrs.join('\n')}`).toEqual(Array(n).fill(0));
      const lines = text.trim().split('\n');
      const got = lines.filter((x) => x.startsWith('got '));
      expect(got, `${kind}\n${text}`).toHaveLength(1);
      const winner = got[0]!.slice(4);
      const lost = lines.filter((x) => x.startsWith('lost '));
      expect(lost, text).toHaveLength(n - 1);
      for (const x of lost) expect(x, text).toMatch(new RegExp(`^lost \\d+ locked lock race is held by pid ${winner} since `));
      // one process said it removed the junk: the winner, as taken over (or, when another
      // linked its lock between that removal and its own link, the remover, as removed)
      const said = stderrs.filter((x) => x.includes('was not a mailbag lock file'));
      expect(said, stderrs.join('\n')).toHaveLength(1);
      expect(said[0]).toMatch(new RegExp(`^pid (${winner} exit 0 : mailbag: spool: took over lock race|\\d+ exit 0 : mailbag: spool: removed a stale lock file): `));
      expect(existsSync(join(spool.root, 'locks', 'race.lock'))).toBe(false);
      expect(locks()).toEqual([]);
    }
  });
});
