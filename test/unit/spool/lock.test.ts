// Locks: exclusion, waiting, stale-lock recovery (dead pid, reused pid, other boot),
// and contention between real child processes racing to break the same stale lock.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SpoolError } from '../../../lib/errors.js';
import { builtLib, haveBuild, removeBuiltLib, runRacer } from './built.js';
import { LOCK_MAGIC_LINE, parseLock, Spool, type LockInfo } from '../../../lib/spool/index.js';


let dir: string;
let spool: Spool;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-lock-test-'));
  spool = await Spool.open(join(dir, 'spool'), { create: true });
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  if (r.error || typeof r.pid !== 'number' || r.pid <= 0) throw new Error(`could not start a child for a dead pid: ${String(r.error)}`);
  return r.pid;
}

function plantLock(file: string, info: Partial<LockInfo>): void {
  const full: LockInfo = { pid: deadPid(), host: hostname(), nonce: 'stale0nonce', since: '2026-01-01T00:00:00.000Z', ...info };
  writeFileSync(join(spool.root, 'locks', file), LOCK_MAGIC_LINE + JSON.stringify(full) + '\n');
}

describe('locks in one process', () => {
  it('excludes a second holder, says who holds it, and can be taken again after release', async () => {
    const a = await spool.lock('hub');
    expect(parseLock(readFileSync(a.path, 'utf8'))).toMatchObject({ pid: process.pid, host: hostname() });
    const err = await spool.lock('hub').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpoolError);
    expect(err).toMatchObject({ code: 'locked', exitCode: 75, temporary: true });
    expect((err as Error).message).toMatch(new RegExp(`lock hub is held by pid ${process.pid}`));
    const other = await spool.lock('runner');
    await other.release();
    await a.release();
    await a.release(); // idempotent
    expect(existsSync(a.path)).toBe(false);
    const b = await spool.lock('hub');
    await b.release();
  });

  it('waits for the holder with wait, and gives up after timeoutMs', async () => {
    const a = await spool.lock('hub');
    await expect(spool.lock('hub', { wait: true, timeoutMs: 150 })).rejects.toMatchObject({ code: 'locked' });
    setTimeout(() => void a.release(), 100);
    const b = await spool.lock('hub', { wait: true, timeoutMs: 5_000 });
    await b.release();
  });

  it('refuses bad lock names', async () => {
    await expect(spool.lock('../x')).rejects.toThrow(/bad lock name/);
  });

  it('does not release a lock that is no longer its own', async () => {
    const a = await spool.lock('hub');
    plantLock('hub.lock', { pid: process.pid, nonce: 'someoneelse' });
    await a.release();
    expect(existsSync(a.path)).toBe(true);
  });
});

describe('stale locks', () => {
  it('breaks the lock of a dead pid and cleans its break token', async () => {
    plantLock('hub.lock', {});
    const l = await spool.lock('hub');
    expect(l.info.pid).toBe(process.pid);
    expect(readdirSync(join(spool.root, 'locks'))).toEqual(['hub.lock']);
    await l.release();
  });

  it('breaks the lock of a reused pid (alive, but another start time) and of another boot', async () => {
    plantLock('a.lock', { pid: 1, start: '1', nonce: 'reused' }); // pid 1 lives, but did not start at tick 1... unless it did
    plantLock('b.lock', { pid: process.pid, boot: 'not-this-boot', nonce: 'reboot' });
    const a = await spool.lock('a');
    const b = await spool.lock('b');
    await a.release();
    await b.release();
  });

  it('never breaks the lock of a live holder, nor one held on another host', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      plantLock('hub.lock', { pid: child.pid!, nonce: 'livechild' });
      await expect(spool.lock('hub')).rejects.toThrow(`lock hub is held by pid ${child.pid}`);
      plantLock('far.lock', { host: 'some-other-host', nonce: 'farhost' });
      await expect(spool.lock('far')).rejects.toThrow(/on host some-other-host \(remove .*far\.lock if that host no longer uses this spool\)/);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('gets past a breaker that died holding its token, and waits for a live one', async () => {
    plantLock('hub.lock', { nonce: 'stale1' });
    plantLock('hub.lock.break.stale1.1', { nonce: 'breaker1' }); // a dead breaker
    const l = await spool.lock('hub');
    expect(readdirSync(join(spool.root, 'locks'))).toEqual(['hub.lock']);
    await l.release();

    plantLock('hub.lock', { nonce: 'stale2' });
    plantLock('hub.lock.break.stale2.1', { pid: process.pid, nonce: 'breaker2' }); // a live breaker
    await expect(spool.lock('hub', { wait: true, timeoutMs: 200 })).rejects.toMatchObject({ code: 'locked' });
    expect(existsSync(join(spool.root, 'locks', 'hub.lock'))).toBe(true);
  });
});

describe.runIf(haveBuild())('lock contention between processes', () => {
  const distSpool = join(builtLib(), 'spool', 'index.js');
  afterAll(removeBuiltLib);
  // each child takes the lock `rounds` times, logging +pid on entry and -pid on exit;
  // overlapping holders would show as two + lines in a row. MAILBAG_LOCK_RACE_DELAY_MS
  // widens the window between judging the holder dead and breaking its lock, where a
  // naive recovery (unlink and retry) lets two children in (checked by hand: it does)
  const child = (log: string, rounds: number, startAt: number): string => `
    import { appendFileSync } from 'node:fs';
    import { Spool } from ${JSON.stringify(distSpool)};
    const spool = await Spool.open(${JSON.stringify(join(dir, 'spool'))});
    while (Date.now() < ${startAt}) {}
    for (let i = 0; i < ${rounds}; i++) {
      const l = await spool.lock('race', { wait: true, timeoutMs: 60000 });
      appendFileSync(${JSON.stringify(log)}, '+' + process.pid + '\\n');
      await new Promise((r) => setTimeout(r, 20));
      appendFileSync(${JSON.stringify(log)}, '-' + process.pid + '\\n');
      await l.release();
    }
  `;

  // a child's stderr, kept so a failing assertion can show why the child failed
  const stderrs: string[] = [];

  const run = (script: string): Promise<number | null> => runRacer(script, stderrs, 90_000);

  function checkExclusive(log: string, expected: number): void {
    const text = readFileSync(log, 'utf8');
    const lines = text.trim().split('\n');
    expect(lines.length, text).toBe(expected * 2);
    for (let i = 0; i < lines.length; i += 2) {
      expect(lines[i]!.startsWith('+'), `line ${i} of\n${text}`).toBe(true);
      expect(lines[i + 1], `line ${i + 1} of\n${text}`).toBe(`-${lines[i]!.slice(1)}`);
    }
  }

  it('children racing to break one stale lock never hold it together', async () => {
    const log = join(dir, 'log');
    writeFileSync(log, '');
    // the holder was SIGKILLed while holding the lock
    const killer = `
      import { Spool } from ${JSON.stringify(distSpool)};
      const spool = await Spool.open(${JSON.stringify(join(dir, 'spool'))});
      await spool.lock('race');
      process.kill(process.pid, 'SIGKILL');
    `;
    await run(killer);
    expect(existsSync(join(spool.root, 'locks', 'race.lock'))).toBe(true);
    const startAt = Date.now() + 1500;
    const children = 6;
    const rounds = 10;
    const codes = await Promise.all(Array.from({ length: children }, () => run(child(log, rounds, startAt))));
    expect(codes, stderrs.join('\n')).toEqual(Array(children).fill(0));
    checkExclusive(log, children * rounds);
    expect(readdirSync(join(spool.root, 'locks'))).toEqual([]);
  });

  it('a process that exits, normally or by an uncaught exception, lets go of its locks', async () => {
    for (const ending of ['process.exitCode = 3;', "throw new Error('uncaught on purpose (this test expects it)');"]) {
      const script = `
        import { Spool } from ${JSON.stringify(distSpool)};
        const spool = await Spool.open(${JSON.stringify(join(dir, 'spool'))});
        await spool.lock('held');
        ${ending}
      `;
      expect(await run(script)).not.toBe(0);
      expect(readdirSync(join(spool.root, 'locks'))).toEqual([]);
    }
  });

  it('many rounds of races over freshly planted stale locks', async () => {
    for (let round = 0; round < 5; round++) {
      const log = join(dir, `log${round}`);
      writeFileSync(log, '');
      plantLock('race.lock', { nonce: `stale${round}` });
      const startAt = Date.now() + 800;
      const codes = await Promise.all(Array.from({ length: 4 }, () => run(child(log, 1, startAt))));
      expect(codes, stderrs.join('\n')).toEqual([0, 0, 0, 0]);
      checkExclusive(log, 4);
    }
  });
});
