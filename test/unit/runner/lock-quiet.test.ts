// The line saying a junk lock file was taken over (an empty lock a power cut left,
// lib/spool/lock.ts) is one of the command's informational lines: on stdout with the
// others, none with --quiet. Before, it went to this process's stderr whatever the
// command was told, so a cron'd `mailbag run --quiet` mailed it to the admin.

import { readFileSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CliIo } from '../../../lib/cli/io.js';
import { main as dispatchMain } from '../../../lib/cli/dispatch.js';
import { main as runMain } from '../../../lib/cli/run-jobs.js';
import { makeSite, RMAIL_PAYLOAD, type Site } from './helpers.js';

let site: Site | undefined;
afterEach(() => {
  vi.restoreAllMocks();
  site?.cleanup();
  site = undefined;
});

/** an empty lock file, unchanged for a minute: junk (lib/spool/lock.ts judgeJunk) */
function junk(s: Site, name: string): string {
  const path = join(s.spool.root, 'locks', `${name}.lock`);
  writeFileSync(path, '');
  const t = Date.now() / 1000 - 60;
  utimesSync(path, t, t);
  return path;
}

/** the command in-process: its stdout, its io.stderr, and what reached process.stderr */
async function command(main: (argv: string[], io: CliIo) => Promise<number>, s: Site, argv: string[]): Promise<{ code: number; out: string; err: string; processErr: string }> {
  const said: string[] = [];
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (said.push(String(chunk)), true));
  const text = (stream: PassThrough): (() => string) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    return () => Buffer.concat(chunks).toString();
  };
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out = text(stdout);
  const err = text(stderr);
  try {
    const code = await main(['--config', join(s.dir, 'mailbag.toml'), ...argv], { stdin: Readable.from([]), stdout, stderr, env: s.env, cwd: s.dir, isTTY: false });
    return { code, out: out(), err: err(), processErr: said.join('') };
  } finally {
    spy.mockRestore();
  }
}

const TAKEN = (name: string, path: string): RegExp => new RegExp(`^mailbag: spool: took over lock ${name.replace('.', '\\.')}: ${path} was not a mailbag lock file \\(empty, unchanged since .*\\); a power cut leaves such files$`, 'm');

describe('a junk lock file taken over follows the command\'s --quiet', () => {
  it('mailbag run: the line on stdout with the others; with --quiet nowhere, the job delivered either way', async () => {
    site = await makeSite();
    await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    let path = junk(site, 'runner.hub');
    const loud = await command(runMain, site, []);
    expect(loud.code).toBe(0);
    expect(loud.out).toMatch(TAKEN('runner.hub', path));
    expect(loud.out).toMatch(/: done\n/);
    expect(loud.err + loud.processErr).toBe('');
    expect(existsSync(path)).toBe(false);

    await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    path = junk(site, 'runner.hub');
    const quiet = await command(runMain, site, ['--quiet']);
    expect(quiet.code).toBe(0);
    expect(quiet.out).toBe('run: 1 done, 0 to retry, 0 failed, 0 skipped\n');
    expect(quiet.err + quiet.processErr).toBe('');
    expect(existsSync(path)).toBe(false);
    expect(site.sendmailCalls()).toHaveLength(2);
  });

  it('mailbag dispatch --quiet: a junk session lock is taken over without a word; the session\'s own failure still on stderr', async () => {
    site = await makeSite();
    const toml = join(site.dir, 'mailbag.toml');
    // the peer's transport fails at once: what matters is the lock taken before it
    writeFileSync(toml, readFileSync(toml, 'utf8').replace('command = ["true"]', 'command = ["false"]'));
    const path = junk(site, 'session-hub');
    const quiet = await command(dispatchMain, site, ['--quiet']);
    expect(quiet.code).toBe(75);
    expect(quiet.out).toBe('');
    expect(quiet.processErr).toBe('');
    expect(quiet.err).toMatch(/^4\.\d\.\d hub: /);
    expect(quiet.err).not.toMatch(/took over lock/);
    expect(existsSync(path)).toBe(false);

    const again = junk(site, 'session-hub');
    const loud = await command(dispatchMain, site, []);
    expect(loud.out).toMatch(TAKEN('session-hub', again));
    expect(loud.processErr).toBe('');
  });
});
