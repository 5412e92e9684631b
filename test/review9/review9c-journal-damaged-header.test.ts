// review9c: the LMTP journal's recovery of a damaged header (5d7f435) reads the records
// behind it under the generation of the record at offset 4096. That record is of the
// CURRENT generation only if the current one wrote any: after a reset (an idle journal,
// an orderly stop, every start: LmtpJournal.open writes a new generation and appends
// nothing until mail comes) the records at 4096 are of the generation before, retired:
// every job of theirs is durable in out/ and may since have been sent and removed. A
// header damaged then (torn, a flipped bit, media corruption) made the replay write
// those retired jobs into out/ again (sent again: days or weeks later, past the peer's
// ledger_retention, stored twice). And the generation scan counts whole records
// anywhere in the file, also one inside a job's bytes: a record of generation
// 0xFFFFFFFF there wrapped the new header's generation round to 0, below every record
// in the file, so an old record was read as a new one's a few restarts later.

import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { JOURNAL_SIZE, journalJobs, replayJournals } from '../../lib/lmtp/journal.js';
import { Spool } from '../../lib/spool/spool.js';
import { journalSite } from '../unit/lmtp/journal-site.js';

let spool: Spool;
const { open, job, outJobs, journalPath } = journalSite('mailbag-review9c-header-', (s) => {
  spool = s;
});

/** damage the header as a torn sector or a flipped bit would: its CRC no longer matches */
function damageHeader(): void {
  const fd = openSync(journalPath(), 'r+');
  writeSync(fd, Buffer.from([0x5a]), 0, 1, 26);
  closeSync(fd);
}

/** a sent job: a session sent it to the peer and removed it from out/ */
function send(id: string, peer = 'hub'): void {
  unlinkSync(join(spool.root, 'out', peer, id));
}

/** the generation the journal's header names (the format of lib/lmtp/journal.ts), or undefined */
function headerGen(): number | undefined {
  const b = readFileSync(journalPath()).subarray(0, 32);
  if (!['mailbag-lmtp-journal 1\n', 'mailbag-lmtp-journal 2\n'].includes(b.toString('latin1', 0, 23)) || b.readUInt32LE(28) !== crc32(b.subarray(0, 28))) return undefined;
  return b.readUInt32LE(24);
}

/** the generations of every whole record anywhere in the journal (a scan for the magic, each checked whole) */
function wholeRecordGens(): number[] {
  const f = readFileSync(journalPath());
  const magic = Buffer.from('MBJR', 'latin1');
  const gens: number[] = [];
  for (let i = f.indexOf(magic, 4096); i >= 0; i = f.indexOf(magic, i + 1)) {
    if (i + 20 > f.length) break;
    const pathLen = f.readUInt32LE(i + 8);
    const dataLen = f.readUInt32LE(i + 12);
    if (pathLen === 0 || pathLen > 1024 || dataLen > 128 * 1024 || i + 20 + pathLen + dataLen > f.length) continue;
    const body = f.subarray(i + 20, i + 20 + pathLen + dataLen);
    if ((crc32(body, crc32(f.subarray(i, i + 16))) >>> 0) === f.readUInt32LE(i + 16)) gens.push(f.readUInt32LE(i + 4));
  }
  return gens;
}

/** a whole record in the journal's format: magic, generation, path and data lengths, CRC-32, path, data */
function record(gen: number, rel: string, data: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt32LE(0x524a424d, 0);
  h.writeUInt32LE(gen >>> 0, 4);
  h.writeUInt32LE(Buffer.byteLength(rel), 8);
  h.writeUInt32LE(data.length, 12);
  const path = Buffer.from(rel);
  h.writeUInt32LE(crc32(data, crc32(path, crc32(h.subarray(0, 16)))) >>> 0, 16);
  return Buffer.concat([h, path, data]);
}

// each failed at HEAD 3ac8af0 (/work/brief/req-review9c.md J1); they pass with the fix
describe('review9c: a damaged journal header never brings back retired records', () => {
  it('after an orderly stop (the records retired, their jobs sent since), a damaged header replays nothing', async () => {
    const { journal, store } = await open();
    const a = await job(store, 'first\n');
    const b = await job(store, 'second\n');
    // orderly: written into out/, the journal reset (a new generation, the records behind it retired)
    await journal.close();
    expect(outJobs()).toEqual([a, b].sort());
    expect(await replayJournals(spool)).toBe(0);
    // both sent to the peer and removed; later the header is damaged
    send(a);
    send(b);
    damageHeader();
    expect(journalJobs(spool.root), 'mailbag status counts retired jobs as held in the journal').toEqual([]);
    const lines: string[] = [];
    expect(await replayJournals(spool, (l) => lines.push(l)), lines.join('\n')).toBe(0);
    expect(outJobs(), 'retired jobs, sent long ago, written into out/ again').toEqual([]);
  });

  it('at rest after a start (LmtpJournal.open wrote a new generation, no mail since), a damaged header replays nothing', async () => {
    const first = await open(true);
    const a = await job(first.store, 'answered, then a crash\n');
    await first.journal.abandon();
    // the next start: the replay writes the job into out/, open starts a new generation
    const second = await open();
    expect(outJobs()).toEqual([a]);
    await second.journal.close();
    send(a);
    damageHeader();
    expect(await replayJournals(spool)).toBe(0);
    expect(outJobs()).toEqual([]);
  });

  it('a record of generation 0xFFFFFFFF inside a job\'s bytes does not wrap the generation below the records in the file', async () => {
    const { journal } = await open(true);
    await journal.abandon();
    // a hostile file: a damaged header, a current record at 4096 whose job carries a
    // forged whole record of generation 0xFFFFFFFF (a sender's bytes), nothing else
    const id1 = '01a2060000000000000000a1';
    const forged = record(0xffffffff, 'out/hub/01a2060000000000000000ff', Buffer.from('forged\n'));
    const r1 = record(6, `out/hub/${id1}`, Buffer.concat([Buffer.from('mailbag-job 1\nhostile body: '), forged, Buffer.from('\n')]));
    const fd = openSync(journalPath(), 'r+');
    writeSync(fd, r1, 0, r1.length, 4096);
    closeSync(fd);
    damageHeader();
    expect(await replayJournals(spool)).toBe(1);
    expect(outJobs()).toEqual([id1]);
    // the new header must name a generation above every whole record left in the file
    const gen = headerGen();
    expect(gen).toBeDefined();
    expect(wholeRecordGens().filter((g) => g >= gen!), `header generation ${gen}: whole records at or above it`).toEqual([]);
    send(id1);
    // restarts with no mail in between (each: the replay's reset, open's new generation)
    for (let k = 0; k < 4; k++) {
      expect(await replayJournals(spool), `restart ${k}: a retired record read as the current generation's`).toBe(0);
      const next = await open();
      await next.journal.close();
    }
    expect(outJobs()).toEqual([]);
    expect(readFileSync(journalPath()).length).toBe(JOURNAL_SIZE);
  });
});

// apply9c: a reset clears the first record's magic and flushes it BEFORE it writes the
// new header (two flushes, lib/lmtp/journal.ts `retire`), so that a header torn during
// its own flush always has the cleared magic behind it. Killed between the two flushes,
// the journal holds the old header and no whole record at 4096: this is that state.
describe('review9c (apply9c): killed between a reset\'s two flushes', () => {
  it('the old header with the first record\'s magic cleared: nothing replayed, nothing lost, also with the header damaged', async () => {
    const { journal, store } = await open();
    const a = await job(store, 'first\n');
    const b = await job(store, 'second\n');
    // written into out/ (bounded wait), then the process dies before the reset's header
    for (let i = 0; i < 500 && outJobs().length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(outJobs()).toEqual([a, b].sort());
    await journal.abandon();
    const gen = headerGen();
    expect(gen).toBeDefined();
    // the state between the flushes: the magic at 4096 cleared (and durable), the header old
    const fd = openSync(journalPath(), 'r+');
    writeSync(fd, Buffer.alloc(4), 0, 4, 4096);
    closeSync(fd);
    expect(headerGen()).toBe(gen);
    send(a);
    expect(journalJobs(spool.root)).toEqual([]);
    expect(await replayJournals(spool)).toBe(0);
    expect(outJobs(), 'b stays, a (sent) is not written again').toEqual([b]);
    expect(headerGen()).toBe(gen! + 1);
    // and with the header damaged on top (a torn header write): still nothing comes back
    damageHeader();
    const lines: string[] = [];
    expect(await replayJournals(spool, (l) => lines.push(l))).toBe(0);
    expect(outJobs()).toEqual([b]);
    expect(lines.join('\n')).toMatch(/damaged header/);
    expect(headerGen()).toBeDefined();
  });
});
