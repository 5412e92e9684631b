// rsmtp run again on the same input after a temporary failure: a transaction settled by
// the earlier run says so on its result line instead of ending in nothing.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, expect, it } from 'vitest';
import { main as rsmtp } from '../../../lib/cli/rsmtp.js';
import { Spool } from '../../../lib/spool/index.js';
import { FAKE_SENDMAIL } from '../runner/helpers.js';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

it('the re-run prints "settled by an earlier run" for the transaction already accepted', async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-rsmtp-rerun-'));
  const calls = join(dir, 'calls');
  mkdirSync(calls);
  const config = join(dir, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${join(dir, 'spool')}"\n[delivery]\nsendmail = "${FAKE_SENDMAIL}"\nmta = "sendmail"\n`);
  await Spool.open(join(dir, 'spool'), { create: true });
  const batch = 'MAIL FROM:<s@x>\nRCPT TO:<a@y>\nDATA\none\n.\nMAIL FROM:<s@x>\nRCPT TO:<b@y>\nDATA\ntwo\n.\n';
  const call = async (exits: string): Promise<{ code: number; stdout: string }> => {
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    const env = { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: exits };
    const code = await rsmtp(['--config', config], { stdin: Readable.from([Buffer.from(batch)]), stdout: out, stderr: new PassThrough(), env, cwd: dir!, isTTY: false }).catch(() => 75);
    return { code, stdout: Buffer.concat(chunks).toString() };
  };
  expect((await call('a@y=0,b@y=75')).code).toBe(75);
  const again = await call('0');
  expect(again.code).toBe(0);
  const lines = again.stdout.trim().split('\n');
  expect(lines[0]).toBe('transaction 1 (line 1) from <s@x>: settled by an earlier run of this input');
  expect(lines[1]).toMatch(/^transaction 2 \(line 6\) from <s@x>: <b@y> accepted /);
});
