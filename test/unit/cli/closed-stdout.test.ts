// A command whose standard output's reader has gone (`mailbag status | head -1`, a caller
// that closed rsmtp's output): no "internal error: write EPIPE" and no 75. The listers
// (status, failed) end as a Unix filter does, killed by SIGPIPE; a command with work
// beyond its output (rsmtp between transactions) finishes that work.
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, expect, it } from 'vitest';
import { Spool } from '../../../lib/spool/index.js';
import { FAKE_SENDMAIL } from '../runner/helpers.js';
import { MAILBAG_BIN, makeSite, repoRoot, requireBuild, type Site } from './front-door-helpers.js';

beforeAll(requireBuild);

let site: Site | undefined;
afterEach(() => site?.cleanup());

/** Run a bin whose stdout pipe we close at once: its writes fail with EPIPE. */
function runClosed(bin: string, args: string[], input: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdout.destroy();
    const err: Buffer[] = [];
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr: Buffer.concat(err).toString() });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

it.each([['status'], ['status', '--jobs'], ['failed'], ['failed', '--json']])('mailbag %s into a closed pipe ends by SIGPIPE, quietly', async (...cmd) => {
  site = makeSite();
  await Spool.open(site.spool.startsWith('/') ? site.spool : join(site.dir, 'spool'), { create: true });
  const r = await runClosed(MAILBAG_BIN, ['--config', site.config, ...cmd], '');
  expect(r.stderr).toBe('');
  expect(r.signal).toBe('SIGPIPE');
});

it('rsmtp with its output closed delivers every transaction and exits 0', async () => {
  site = makeSite();
  const calls = join(site.dir, 'calls');
  mkdirSync(calls);
  writeFileSync(site.config, `site = "home"\nspool = "${join(site.dir, 'spool')}"\n[delivery]\nsendmail = "${FAKE_SENDMAIL}"\nmta = "sendmail"\n`);
  await Spool.open(join(site.dir, 'spool'), { create: true });
  const tx = (r: string): string => `MAIL FROM:<s@x>\nRCPT TO:<${r}>\nDATA\nhello\n.\n`;
  const r = await runClosed(join(repoRoot, 'dist/bin/rsmtp.js'), ['--config', site.config], tx('a@y') + tx('b@y') + tx('c@y'), { FAKE_SENDMAIL_DIR: calls });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(readdirSync(calls).filter((n) => n.endsWith('.argv'))).toHaveLength(3);
});
