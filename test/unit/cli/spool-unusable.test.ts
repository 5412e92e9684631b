// rsmtp and rmail with a spool that is there but cannot be opened (here: a directory that
// is not a mailbag spool; an o+w root or one not writable are the same failure) run on
// without progress records: they say so on stderr (review9a's L1), where before they
// were silent. A spool not made yet stays silent (no memory across retries, documented).
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, expect, it } from 'vitest';
import { main as rmail } from '../../../lib/cli/rmail.js';
import { main as rsmtp } from '../../../lib/cli/rsmtp.js';
import { FAKE_SENDMAIL } from '../runner/helpers.js';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

type Main = typeof rsmtp;

async function call(main: Main, argv: string[], input: string, made: boolean, method = ''): Promise<{ code: number; stderr: string; calls: number }> {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-spool-unusable-'));
  const d = dir;
  const calls = join(d, 'calls');
  mkdirSync(calls);
  const spool = join(d, 'spool');
  if (made) mkdirSync(spool); // there, but no mailbag spool in it
  const config = join(d, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${spool}"\n[delivery]\nsendmail = "${FAKE_SENDMAIL}"\nmta = "sendmail"\n${method}`);
  const err = new PassThrough();
  const e: Buffer[] = [];
  err.on('data', (c: Buffer) => e.push(c));
  const env = { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0' };
  const code = await main(['--config', config, ...argv], { stdin: Readable.from([Buffer.from(input)]), stdout: new PassThrough().resume(), stderr: err, env, cwd: d, isTTY: false }).catch(
    (x: unknown) => (x as { exitCode?: number }).exitCode ?? 75,
  );
  return { code, stderr: Buffer.concat(e).toString(), calls: readdirSync(calls).filter((n) => n.endsWith('.argv')).length };
}

const TX = 'MAIL FROM:<s@x>\nRCPT TO:<a@y>\nDATA\none\n.\n';

it('rsmtp: a spool that is there but not usable is named on stderr; the batch is delivered', async () => {
  const r = await call(rsmtp, [], TX, true);
  expect(r.code).toBe(0);
  expect(r.calls).toBe(1);
  expect(r.stderr).toMatch(/^rsmtp: spool not usable, progress not kept: .*not a mailbag spool/m);
});

it('rsmtp: a spool not made yet is no spool, silently', async () => {
  const r = await call(rsmtp, [], TX, false);
  expect(r.code).toBe(0);
  expect(r.calls).toBe(1);
  expect(r.stderr).not.toMatch(/spool not usable/);
});

it('rmail (method smtp): a spool that is there but not usable is named on stderr', async () => {
  // port 1 on 127.0.0.1: refused, so the delivery is deferred (75); the line comes first
  const r = await call(rmail, ['a@y'], 'From s Mon Nov 23 00:00:00 2026 remote from x\nSubject: t\n\nhi\n', true, 'method = "smtp"\nsmtp = "127.0.0.1:1"\n');
  expect(r.code).toBe(75);
  expect(r.stderr).toMatch(/^rmail: spool not usable, progress not kept: .*not a mailbag spool/m);
});
