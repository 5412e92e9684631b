// Two batches whose first transactions are the same bytes share that transaction's
// record (its KEY is the hash of the input up to its end). A batch that ends 0 with QUIT
// must not remove a record it found already there: another batch's pending retry may rely
// on it, and would deliver that transaction again (session 9's "noticed, left alone").
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

it("a batch ending 0 with QUIT keeps the record another batch's retry relies on", async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-rsmtp-shared-'));
  const calls = join(dir, 'calls');
  mkdirSync(calls);
  const config = join(dir, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${join(dir, 'spool')}"\n[delivery]\nsendmail = "${FAKE_SENDMAIL}"\nmta = "sendmail"\n`);
  await Spool.open(join(dir, 'spool'), { create: true });
  const first = 'MAIL FROM:<s@x>\nRCPT TO:<a@y>\nDATA\nMessage-ID: <1@x>\n\none\n.\n';
  const batchB = first + 'MAIL FROM:<s@x>\nRCPT TO:<b@y>\nDATA\ntwo\n.\nQUIT\n';
  const batchA = first + 'MAIL FROM:<s@x>\nRCPT TO:<c@y>\nDATA\nthree\n.\nQUIT\n';
  const call = async (batch: string, exits: string): Promise<number> => {
    const env = { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: exits };
    return rsmtp(['--config', config], { stdin: Readable.from([Buffer.from(batch)]), stdout: new PassThrough(), stderr: new PassThrough(), env, cwd: dir!, isTTY: false }).catch(() => 75);
  };
  const deliveriesTo = (rcpt: string): number =>
    readdirSync(calls).filter((f) => f.endsWith('.argv') && readFileSync(join(calls, f), 'utf8').split('\n').includes(rcpt)).length;
  // B: its first transaction accepted, its second deferred: B's caller will retry
  expect(await call(batchB, 'b@y=75,0')).toBe(75);
  expect(deliveriesTo('a@y')).toBe(1);
  // A: the same first transaction (found settled), its own second accepted, QUIT, 0
  expect(await call(batchA, '0')).toBe(0);
  // B's retry: its first transaction is still settled, delivered once in all
  expect(await call(batchB, '0')).toBe(0);
  expect(deliveriesTo('b@y')).toBe(2);
  expect(deliveriesTo('c@y')).toBe(1);
  expect(deliveriesTo('a@y')).toBe(1);
});
