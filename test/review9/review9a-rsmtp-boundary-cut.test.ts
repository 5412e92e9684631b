// review9a: 8965c21 keeps a cut-short batch's records (65) for the caller's run of the
// whole batch. A batch cut exactly at a transaction's end (its writer killed between two
// messages: no HELO/QUIT is needed, so the stream reads as complete) ends 0 and its
// records are removed at once: the run of the whole batch delivers its transactions
// again. The same happens to another batch's records when a later batch with the same
// first transaction ends 0. Harness as test/unit/cli/rsmtp-cut.test.ts (fake sendmail).
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, expect, it } from 'vitest';
import { main as rsmtp } from '../../lib/cli/rsmtp.js';
import { Spool } from '../../lib/spool/index.js';
import { FAKE_SENDMAIL } from '../unit/runner/helpers.js';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function site(): { calls: string; call: (input: string, exits?: string) => Promise<number> } {
  dir = mkdtempSync(join(tmpdir(), 'review9a-rsmtp-'));
  const d = dir;
  const calls = join(d, 'calls');
  mkdirSync(calls);
  const config = join(d, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${join(d, 'spool')}"\n[delivery]\nsendmail = "${FAKE_SENDMAIL}"\nmta = "sendmail"\n`);
  const call = async (input: string, exits = '0'): Promise<number> => {
    const env = { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: exits };
    return rsmtp(['--config', config], { stdin: Readable.from([Buffer.from(input)]), stdout: new PassThrough().resume(), stderr: new PassThrough().resume(), env, cwd: d, isTTY: false }).catch(
      (x: unknown) => (x as { exitCode?: number }).exitCode ?? 75,
    );
  };
  return { calls, call };
}

function delivered(calls: string): string[] {
  return readdirSync(calls)
    .filter((n) => n.endsWith('.argv'))
    .sort((a, b) => parseInt(a) - parseInt(b))
    .map((n) => readFileSync(join(calls, n), 'utf8').split('\n').slice(-2, -1)[0]!);
}

const TX1 = 'MAIL FROM:<s@x>\nRCPT TO:<a@y>\nDATA\none\n.\n';
const TX2 = 'MAIL FROM:<s@x>\nRCPT TO:<b@y>\nDATA\ntwo\n.\n';

// fails at HEAD 56db119: /work/brief/req-review9a.md E3; passes since a run that read no
// QUIT keeps its records (apply9a)
it('a batch cut at a transaction boundary, then run whole: the first transaction reaches the MTA once', async () => {
  const s = site();
  await Spool.open(join(dir!, 'spool'), { create: true });
  expect(await s.call(TX1)).toBe(0); // the cut stream reads as a complete batch
  expect(await s.call(TX1 + TX2)).toBe(0);
  expect(delivered(s.calls)).toEqual(['a@y', 'b@y']);
});
