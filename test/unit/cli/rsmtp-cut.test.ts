// rsmtp given a stream cut short (its writer died: nncp-toss or a pipe transport killed
// mid-stream), then the same batch whole, as the caller retries it: the transactions the
// first run delivered are not delivered again (progress is kept per transaction, keyed by
// the hash of the input up to that transaction's end, not by the hash of the whole input).
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, expect, it } from 'vitest';
import { main as rsmtp } from '../../../lib/cli/rsmtp.js';
import { pruneStale } from '../../../lib/runner/state.js';
import { Spool } from '../../../lib/spool/index.js';
import { FAKE_SENDMAIL } from '../runner/helpers.js';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function site(): { config: string; calls: string; call: (input: string, exits?: string) => Promise<{ code: number; stdout: string; stderr: string }> } {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-rsmtp-cut-'));
  const d = dir;
  const calls = join(d, 'calls');
  mkdirSync(calls);
  const config = join(d, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${join(d, 'spool')}"\n[delivery]\nsendmail = "${FAKE_SENDMAIL}"\nmta = "sendmail"\n`);
  const call = async (input: string, exits = '0'): Promise<{ code: number; stdout: string; stderr: string }> => {
    const out = new PassThrough();
    const err = new PassThrough();
    const o: Buffer[] = [];
    const e: Buffer[] = [];
    out.on('data', (c: Buffer) => o.push(c));
    err.on('data', (c: Buffer) => e.push(c));
    const env = { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: exits };
    const code = await rsmtp(['--config', config], { stdin: Readable.from([Buffer.from(input)]), stdout: out, stderr: err, env, cwd: d, isTTY: false }).catch((x: unknown) => (x as { exitCode?: number }).exitCode ?? 75);
    return { code, stdout: Buffer.concat(o).toString(), stderr: Buffer.concat(e).toString() };
  };
  return { config, calls, call };
}

/** recipients of each sendmail call, in order */
function delivered(calls: string): string[] {
  return readdirSync(calls)
    .filter((n) => n.endsWith('.argv'))
    .sort((a, b) => parseInt(a) - parseInt(b))
    .map((n) => readFileSync(join(calls, n), 'utf8').split('\n').slice(-2, -1)[0]!);
}

const TX1 = 'MAIL FROM:<s@x>\nRCPT TO:<a@y>\nDATA\none\n.\n';
const TX2 = 'MAIL FROM:<s@x>\nRCPT TO:<b@y>\nDATA\ntwo\n.\n';
const TX3 = 'MAIL FROM:<s@x>\nRCPT TO:<c@y>\nDATA\nthree\n.\n';

it('a cut-short batch, then the whole one: every transaction reaches the MTA once', async () => {
  const s = site();
  await Spool.open(join(dir!, 'spool'), { create: true });
  const whole = TX1 + TX2 + TX3 + 'QUIT\n';
  const cut = whole.slice(0, TX1.length + TX2.length + 20); // inside transaction 3's DATA
  const first = await s.call(cut);
  expect(first.code).toBe(65);
  expect(delivered(s.calls)).toEqual(['a@y', 'b@y']);
  const again = await s.call(whole);
  expect(again.code).toBe(0);
  expect(delivered(s.calls)).toEqual(['a@y', 'b@y', 'c@y']);
  expect(again.stdout.split('\n')[0]).toBe('transaction 1 (line 1) from <s@x>: settled by an earlier run of this input');
  // all settled and the input ended with QUIT: the whole run's own record (transaction 3)
  // goes; the two it found stay until ledger_retention (another batch with the same first
  // transactions may rely on them: rsmtp-shared-record.test.ts)
  const left = readdirSync(join(dir!, 'spool', 'run', 'rsmtp-stdin'));
  expect(left).toHaveLength(2);
  const third = createHash('sha256').update(whole.slice(0, TX1.length + TX2.length + TX3.length)).digest('hex');
  expect(left).not.toContain(third);
});

it('a batch whose first transactions equal an earlier one\'s but which goes on differently: the differing ones are delivered', async () => {
  const s = site();
  await Spool.open(join(dir!, 'spool'), { create: true });
  // run 1: tx1 accepted, tx2 deferred (75): its progress is kept
  expect((await s.call(TX1 + TX2, 'a@y=0,b@y=75')).code).toBe(75);
  // run 2: another batch, tx1 the same bytes, then tx3: tx1 is settled, tx3 is new
  const r = await s.call(TX1 + TX3);
  expect(r.code).toBe(0);
  expect(delivered(s.calls)).toEqual(['a@y', 'b@y', 'c@y']);
});

it('a batch without QUIT that ends 0 keeps its records (its writer may have died between two messages); one with QUIT leaves none', async () => {
  const s = site();
  await Spool.open(join(dir!, 'spool'), { create: true });
  const run = join(dir!, 'spool', 'run', 'rsmtp-stdin');
  expect((await s.call(TX1 + TX2)).code).toBe(0);
  expect(readdirSync(run)).toHaveLength(2);
  // the same batch again (the caller's run of the whole one): nothing twice
  const again = await s.call(TX1 + TX2 + TX3);
  expect(again.code).toBe(0);
  expect(delivered(s.calls)).toEqual(['a@y', 'b@y', 'c@y']);
  expect(readdirSync(run)).toHaveLength(3);
  // with QUIT: the stream is whole, its records go (the others' stay, until the retention)
  expect((await s.call(TX3 + 'QUIT\n')).code).toBe(0);
  expect(delivered(s.calls)).toEqual(['a@y', 'b@y', 'c@y', 'c@y']);
  expect(readdirSync(run)).toHaveLength(3);
});

it('the same transaction twice in one batch is delivered twice (the key is its place, not only its bytes)', async () => {
  const s = site();
  await Spool.open(join(dir!, 'spool'), { create: true });
  expect((await s.call(TX1 + TX1)).code).toBe(0);
  expect(delivered(s.calls)).toEqual(['a@y', 'a@y']);
});

it('a record older than the ledger retention (a cut batch nobody ran whole) is pruned; a fresh one is kept', async () => {
  const s = site();
  await Spool.open(join(dir!, 'spool'), { create: true });
  expect((await s.call(TX1 + TX2.slice(0, 30))).code).toBe(65);
  const run = join(dir!, 'spool', 'run', 'rsmtp-stdin');
  const [kept] = readdirSync(run);
  expect(kept).toMatch(/^[0-9a-f]{64}$/);
  const old = join(run, '0'.repeat(64));
  writeFileSync(old, 'mailbag-run 1\n{"attempts":0,"tx":{}}\n');
  const longAgo = new Date(Date.now() - 15 * 86_400_000); // the default retention is 14 days
  utimesSync(old, longAgo, longAgo);
  expect((await s.call(TX3 + 'QUIT\n')).code).toBe(0);
  expect(readdirSync(run)).toEqual([kept]);
});

it('a record an earlier mailbag kept under the whole input\'s hash is still honoured', async () => {
  const s = site();
  await Spool.open(join(dir!, 'spool'), { create: true });
  const input = TX1 + TX2 + 'QUIT\n';
  const run = join(dir!, 'spool', 'run', 'rsmtp-stdin');
  mkdirSync(run, { recursive: true });
  const legacy = join(run, createHash('sha256').update(input).digest('hex'));
  writeFileSync(legacy, 'mailbag-run 1\n{"attempts":0,"tx":{"0":{"accepted":["a@y"],"failed":[],"noticed":false}}}\n');
  expect((await s.call(input)).code).toBe(0);
  expect(delivered(s.calls)).toEqual(['b@y']);
  expect(readdirSync(run)).toEqual([]);
});

it('pruning looks at the records at most once an hour (run/rsmtp-stdin.pruned)', async () => {
  site();
  const spool = await Spool.open(join(dir!, 'spool'), { create: true });
  const run = join(dir!, 'spool', 'run', 'rsmtp-stdin');
  mkdirSync(run, { recursive: true });
  const now = Date.now();
  const fresh = join(run, '3'.repeat(64));
  writeFileSync(fresh, 'mailbag-run 1\n{"attempts":0,"tx":{}}\n');
  await pruneStale(spool, 'rsmtp-stdin', 14 * 86_400_000, new Date(now));
  const old = join(run, '4'.repeat(64));
  writeFileSync(old, 'mailbag-run 1\n{"attempts":0,"tx":{}}\n');
  utimesSync(old, new Date(now - 15 * 86_400_000), new Date(now - 15 * 86_400_000));
  await pruneStale(spool, 'rsmtp-stdin', 14 * 86_400_000, new Date(now + 59 * 60_000));
  expect(readdirSync(run).sort()).toEqual(['3'.repeat(64), '4'.repeat(64)]);
  await pruneStale(spool, 'rsmtp-stdin', 14 * 86_400_000, new Date(now + 61 * 60_000));
  expect(readdirSync(run)).toEqual(['3'.repeat(64)]);
});

it('a record written by a clock ahead (set back since) is pruned ledger_retention after it was first seen, not once the clock catches up', async () => {
  site();
  const spool = await Spool.open(join(dir!, 'spool'), { create: true });
  const run = join(dir!, 'spool', 'run', 'rsmtp-stdin');
  mkdirSync(run, { recursive: true });
  const ahead = join(run, '1'.repeat(64));
  writeFileSync(ahead, 'mailbag-run 1\n{"attempts":0,"tx":{}}\n');
  const now = Date.now();
  const year = new Date(now + 365 * 86_400_000);
  utimesSync(ahead, year, year);
  await pruneStale(spool, 'rsmtp-stdin', 14 * 86_400_000, new Date(now));
  expect(readdirSync(run)).toEqual(['1'.repeat(64)]);
  // pruned once a record retention younger exists (as the ledger: a clock that jumped
  // forward alone makes nothing old; review9a's E4)
  const later = join(run, '2'.repeat(64));
  writeFileSync(later, 'mailbag-run 1\n{"attempts":0,"tx":{}}\n');
  utimesSync(later, new Date(now + 15 * 86_400_000), new Date(now + 15 * 86_400_000));
  await pruneStale(spool, 'rsmtp-stdin', 14 * 86_400_000, new Date(now + 15 * 86_400_000));
  expect(readdirSync(run)).toEqual(['2'.repeat(64)]);
});

it('a progress record that does not read (cut short by a disk, or a hand) stops the run (75, naming it) instead of delivering everything again', async () => {
  const s = site();
  await Spool.open(join(dir!, 'spool'), { create: true });
  expect((await s.call(TX1 + TX2, 'a@y=0,b@y=75')).code).toBe(75);
  const run = join(dir!, 'spool', 'run', 'rsmtp-stdin');
  const [rec] = readdirSync(run);
  writeFileSync(join(run, rec!), 'mailbag-run 1\n{"attempts":0,"tx":{"0":{"accep');
  const r = await s.call(TX1 + TX2);
  expect(r.code).toBe(75);
  expect(delivered(s.calls)).toEqual(['a@y', 'b@y']);
});
