// The LMTP journal's key (lib/lmtp/journal.ts, docs/spool.md "The LMTP journal"): each
// record's CRC-32 starts from a random key kept in the journal's header block, so bytes
// a sender put inside a job cannot pass for a record at the crash tail; a journal of the
// previous build (no key) is still replayed at the upgrade; a header older than the
// records behind it (a lost write) no longer drops them; and the line after a damaged
// header says what can and cannot have been lost.

import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { expect, it } from 'vitest';
import { journalJobs, replayJournals } from '../../../lib/lmtp/journal.js';
import { Spool } from '../../../lib/spool/spool.js';
import { journalSite } from './journal-site.js';

let spool: Spool;
const { open, job, outJobs, journalPath } = journalSite('mailbag-lmtp-journal-key-', (s) => {
  spool = s;
});

function patch(at: number, bytes: Buffer): void {
  const fd = openSync(journalPath(), 'r+');
  writeSync(fd, bytes, 0, bytes.length, at);
  closeSync(fd);
}

/** the header as every build writes it: `mailbag-lmtp-journal 1\n`, generation, CRC-32 */
function header(gen: number): Buffer {
  const b = Buffer.alloc(32);
  b.write('mailbag-lmtp-journal 1\n', 0, 'latin1');
  b.writeUInt32LE(gen, 24);
  b.writeUInt32LE(crc32(b.subarray(0, 28)), 28);
  return b;
}

function headerGen(): number {
  return readFileSync(journalPath()).readUInt32LE(24);
}

/** a record as the previous build wrote it, and as anyone who reads the format can: its CRC-32 from 0 */
function unkeyedRecord(gen: number, rel: string, data: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt32LE(0x524a424d, 0);
  h.writeUInt32LE(gen >>> 0, 4);
  h.writeUInt32LE(Buffer.byteLength(rel), 8);
  h.writeUInt32LE(data.length, 12);
  const path = Buffer.from(rel);
  h.writeUInt32LE(crc32(data, crc32(path, crc32(h.subarray(0, 16)))) >>> 0, 16);
  return Buffer.concat([h, path, data]);
}

/** the records from 4096 on as lmtpd wrote them: each one's offset, path and data (walked by their lengths) */
function walk(n: number): { at: number; end: number; rel: string; data: Buffer }[] {
  const f = readFileSync(journalPath());
  const out = [];
  let at = 4096;
  for (let k = 0; k < n; k++) {
    const relLen = f.readUInt32LE(at + 8);
    const dataLen = f.readUInt32LE(at + 12);
    const end = at + 20 + relLen + dataLen;
    out.push({ at, end, rel: f.toString('utf8', at + 20, at + 20 + relLen), data: Buffer.from(f.subarray(at + 20 + relLen, end)) });
    at = end;
  }
  return out;
}

it('a record a sender could forge (the public format, the current generation) right after the last record is not replayed', async () => {
  const { journal, store } = await open(true);
  const a = await job(store, 'answered, then a crash\n');
  await journal.abandon();
  const [rec] = walk(1);
  // bytes an earlier generation's job left right where the crash tail now ends: a
  // sender's message holding a whole record of the current generation, for a job of
  // the sender's choosing
  const forgedId = '01a2060000000000000000ff';
  const forged = unkeyedRecord(readFileSync(journalPath()).readUInt32LE(rec!.at + 4), `out/hub/${forgedId}`, Buffer.from('mailbag-job 1\nforged\n'));
  patch(rec!.end, forged);
  expect(journalJobs(spool.root).map((j) => j.id)).toEqual([a]);
  expect(await replayJournals(spool)).toBe(1);
  expect(outJobs()).toEqual([a]);
});

it('a journal the previous build left (no key, records from CRC 0) is replayed at the upgrade; the records after it are keyed', async () => {
  const { journal, store } = await open(true);
  const a = await job(store, 'first\n');
  const b = await job(store, 'second\n');
  await journal.abandon();
  // rewrite it as the previous build wrote it: no key block, records with CRCs from 0
  const recs = walk(2);
  const gen = headerGen();
  patch(1024, Buffer.alloc(24));
  patch(3072, Buffer.alloc(24));
  patch(4096, Buffer.concat(recs.map((r) => unkeyedRecord(gen, r.rel, r.data))));
  expect(journalJobs(spool.root).map((j) => j.id).sort()).toEqual([a, b].sort());
  // the upgrade's start: replayed, then keyed; a crash after the next answers replays them too
  const second = await open(true);
  expect(outJobs()).toEqual([a, b].sort());
  const f = readFileSync(journalPath());
  expect(f.readUInt32LE(1024), 'the key block (magic MBJK)').toBe(0x4b4a424d);
  const c = await job(second.store, 'third\n');
  await second.journal.abandon();
  const [rc] = walk(1);
  const keyed = readFileSync(journalPath()).subarray(rc!.at, rc!.end);
  expect(keyed.equals(unkeyedRecord(headerGen(), rc!.rel, rc!.data)), 'a record of this build has a CRC from its key').toBe(false);
  expect(await replayJournals(spool)).toBe(1);
  expect(outJobs()).toEqual([a, b, c].sort());
});

it('a header older than the records behind it (its write lost) does not drop them; a restart does not bring them back', async () => {
  const { journal, store } = await open(true);
  const a = await job(store, 'first\n');
  const b = await job(store, 'second\n');
  await journal.abandon();
  const gen = headerGen();
  // the header of the generation before, whole: the last reset's header write never reached the disk
  patch(0, header(gen - 1));
  const lines: string[] = [];
  expect(await replayJournals(spool, (l) => lines.push(l)), lines.join('\n')).toBe(2);
  expect(outJobs()).toEqual([a, b].sort());
  expect(lines.join('\n')).toMatch(/header older than its records/);
  expect(headerGen()).toBeGreaterThan(gen);
  rmSync(join(spool.root, 'out', 'hub', a));
  rmSync(join(spool.root, 'out', 'hub', b));
  for (let k = 0; k < 3; k++) {
    expect(await replayJournals(spool)).toBe(0);
    const next = await open();
    await next.journal.close();
  }
  expect(outJobs()).toEqual([]);
});

it('a damaged header after a reset says nothing was lost; with a damaged first record it says mail may be lost', async () => {
  const { journal, store } = await open();
  await job(store, 'first\n');
  await journal.close();
  patch(26, Buffer.from([0x5a]));
  let lines: string[] = [];
  expect(await replayJournals(spool, (l) => lines.push(l))).toBe(0);
  expect(lines.join('\n')).toMatch(/damaged header/);
  expect(lines.join('\n'), 'the records were retired: nothing can be lost').not.toMatch(/may be lost|is lost/);
  expect(lines.join('\n')).toMatch(/nothing lost/);
  // a first record whose magic is there but which is not whole: answered mail may be gone
  const held = await open(true);
  await job(held.store, 'answered\n');
  await held.journal.abandon();
  patch(4096 + 30, Buffer.from('XX'));
  patch(26, Buffer.from([0x5b]));
  lines = [];
  expect(await replayJournals(spool, (l) => lines.push(l))).toBe(0);
  expect(lines.join('\n')).toMatch(/may be lost/);
});
