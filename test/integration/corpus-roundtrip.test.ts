// Every message of the shared corpus (bulk, large, odd) goes through the front door the
// CLI uses (enqueueMessage, in-process) twice: as an rmail job and, with the null sender,
// as a BSMTP job, each with several recipients. Each job is read back from disk and
// decoded with the receiving side's readers: the envelope must be the one given and the
// message the one sent, byte for byte (BSMTP: after its documented line-end
// normalisation). A sample also goes through the real built bins as child processes.

import { existsSync, readFileSync, mkdtempSync, rmSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { corpusFiles, haveCorpus, type CorpusPart } from '../helpers/corpus.js';
import { parseConfig, type Config } from '../../lib/config/index.js';
import { Spool } from '../../lib/spool/spool.js';
import { enqueueMessage } from '../../lib/cli/front-door.js';
import { parseUucpEnvelope } from '../../lib/envelope/from-line.js';
import { readBsmtp } from '../../lib/bsmtp/reader.js';
import { normaliseBody } from '../../lib/bsmtp/writer.js';
import { MAILBAG_BIN, UUX_BIN, readJob, requireBuild, runBin } from '../unit/cli/front-door-helpers.js';

const present = haveCorpus();
const SENDER = 'list-bounces+corpus@example.org';
const RECIPIENTS = ['first@example.net', 'second.person@example.com', 'third+tag@sub.example.org'];

let dir: string;
let spool: Spool;
let config: Config;

// This suite checks what is written, not that it is durable (test/fault does that): a
// memory file system, where fsync costs nothing, keeps 20,000 jobs well inside a minute.
const scratch = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();

beforeAll(async () => {
  if (!present) return;
  dir = mkdtempSync(join(scratch, 'mailbag-corpus-rt-'));
  config = parseConfig(`site = "home"\nspool = "spool"\n[peers.hub]\nhost = "hub.example.org"\n`, join(dir, 'mailbag.toml'));
  spool = await Spool.open(config.spool, { create: true });
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** stdin as a pipe delivers it: 64 KiB chunks */
async function* chunked(bytes: Buffer): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += 65536) yield bytes.subarray(i, i + 65536);
}

/**
 * What the message is once on the far side: a leading From_ envelope (mbox files in the
 * odd part start with one) is envelope, never message text, so the front door takes it off.
 */
function expectedMessage(bytes: Buffer): Buffer {
  if (!bytes.subarray(0, 5).equals(Buffer.from('From '))) return bytes;
  const env = parseUucpEnvelope(bytes);
  if (!env.ok) throw new Error(`corpus message with a bad From_ line: ${env.issue.message}`);
  return bytes.subarray(env.value.length);
}

function checkRmail(file: string, path: string, message: Buffer): void {
  const job = readJob(path);
  expect(job.header, file).toMatchObject({ from: 'home', to: 'hub', command: 'rmail', args: RECIPIENTS, sender: SENDER, recipients: RECIPIENTS });
  const env = parseUucpEnvelope(job.payload);
  if (!env.ok) throw new Error(`${file}: ${env.issue.message}`);
  expect(env.value.sender, file).toBe(SENDER);
  expect(env.value.lines, file).toBe(1);
  const back = job.payload.subarray(env.value.length);
  if (!back.equals(message)) expect.fail(`${file}: rmail payload differs from the message (${back.length} vs ${message.length} bytes)`);
}

function checkBsmtp(file: string, path: string, message: Buffer): void {
  const job = readJob(path);
  expect(job.header, file).toMatchObject({ command: 'rsmtp', args: [], sender: '', recipients: RECIPIENTS });
  const read = readBsmtp(job.payload);
  if (!read.ok) throw new Error(`${file}: the BSMTP job does not read back: ${read.issue.message}`);
  expect(read.value.transactions, file).toHaveLength(1);
  const t = read.value.transactions[0]!;
  expect(t.envelope.sender, file).toBe('');
  expect(t.envelope.recipients.map((r) => r.address), file).toEqual(RECIPIENTS);
  if (!t.body.equals(normaliseBody(message))) expect.fail(`${file}: BSMTP body differs from the normalised message`);
}

async function roundTrip(file: string): Promise<void> {
  const bytes = readFileSync(file);
  const message = expectedMessage(bytes);
  const rmail = await enqueueMessage(spool, config, 'hub', { sender: SENDER, recipients: RECIPIENTS, stripFromLine: true }, chunked(bytes));
  checkRmail(file, rmail.ref.path, message);
  unlinkSync(rmail.ref.path);
  const bsmtp = await enqueueMessage(spool, config, 'hub', { sender: '', recipients: RECIPIENTS, stripFromLine: true }, chunked(bytes));
  checkBsmtp(file, bsmtp.ref.path, message);
  unlinkSync(bsmtp.ref.path);
}

/** run `f` over `items`, `width` at a time (fsync latency overlaps) */
async function pool<T>(items: T[], width: number, f: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await f(items[next++]!);
  }));
}

describe.skipIf(!present)('corpus round trip through the front door', () => {
  it.each(['odd', 'large', 'bulk'] as CorpusPart[])('every %s message: rmail and null-sender BSMTP, envelope and bytes', async (part) => {
    const files = corpusFiles(part);
    expect(files.length).toBeGreaterThan(0);
    await pool(files, 8, roundTrip);
    expect(readdirSync(join(config.spool, 'out', 'hub'))).toEqual([]);
    expect(readdirSync(join(config.spool, 'tmp'))).toEqual([]);
  }, 240_000);

  it('a sample through the real bins: mailbag enqueue and mailbag-uux (Postfix line, with its From_ line)', async () => {
    requireBuild();
    const bulk = corpusFiles('bulk');
    const sample = [
      ...bulk.filter((_, i) => i % Math.ceil(bulk.length / 40) === 0),
      ...corpusFiles('odd').slice(0, 6),
      ...corpusFiles('large').slice(0, 4),
    ];
    expect(sample.length).toBeGreaterThanOrEqual(50);
    const site = mkdtempSync(join(scratch, 'mailbag-corpus-bin-'));
    try {
      const cfg = join(site, 'mailbag.toml');
      writeFileSync(cfg, `site = "home"\nspool = "spool"\n[peers.hub]\nhost = "hub.example.org"\n`);
      const out = join(site, 'spool', 'out', 'hub');
      await pool(sample, 4, async (file) => {
        const bytes = readFileSync(file);
        const message = expectedMessage(bytes);
        const a = await runBin(MAILBAG_BIN, ['enqueue', '--config', cfg, 'hub', '-f', SENDER, '--', ...RECIPIENTS], bytes);
        expect(a.code, `${file}: ${a.stderr}`).toBe(0);
        const withFromLine = Buffer.concat([Buffer.from(`From ${SENDER}  Sun Nov 22 04:10:00 2026\n`), message]);
        const b = await runBin(UUX_BIN, ['--config', cfg, '-j', '-r', '-n', '-z', '-a', '-', 'hub!rmail', ...RECIPIENTS.map((r) => `(${r})`)], withFromLine);
        expect(b.code, `${file}: ${b.stderr}`).toBe(0);
        const id = b.stdout.trim();
        checkBsmtp(file, join(out, id), message);
        unlinkSync(join(out, id));
      });
      const left = readdirSync(out);
      expect(left).toHaveLength(sample.length);
      // the rmail jobs the bin wrote: one per sampled message, each decoding to one of them
      const expected = new Map(sample.map((f) => [expectedMessage(readFileSync(f)).toString('latin1'), f]));
      for (const id of left) {
        const job = readJob(join(out, id));
        const env = parseUucpEnvelope(job.payload);
        if (!env.ok) throw new Error(env.issue.message);
        const file = expected.get(job.payload.subarray(env.value.length).toString('latin1'));
        expect(file, `job ${id} matches no sampled message`).toBeDefined();
        checkRmail(file!, join(out, id), expectedMessage(readFileSync(file!)));
      }
    } finally {
      rmSync(site, { recursive: true, force: true });
    }
  }, 240_000);
});
