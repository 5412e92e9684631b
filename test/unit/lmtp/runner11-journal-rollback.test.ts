// Going back to a build before the journal's key (3d40926) with answered records still in
// a journal: such a build reads keyed records as torn. Run on this build's journal (built
// at 3d40926^ in a worktree, session 11), it retired them without a word when the header
// read as its own, and `mailbag status` showed nothing. So the header's magic line is `2`
// once a generation has records (such a build then takes the header for a damaged one
// and says that answered mail not in out/ is lost) and `1` when there is nothing to
// replay (a reset, a clean stop: it says nothing). Neither makes it refuse to start:
// docs/spool.md says stop lmtpd cleanly first. The earlier build's check of a header is
// copied here (its magic line and CRC-32), as the thing under test.
import { readFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { expect, it } from 'vitest';
import { journalJobs, replayJournals } from '../../../lib/lmtp/journal.js';
import { Spool } from '../../../lib/spool/spool.js';
import { journalSite } from './journal-site.js';

let spool: Spool;
const { open, job, outJobs, journalPath } = journalSite('mailbag-runner11-rollback-', (s) => {
  spool = s;
});

/** the generation a build before the key reads in the header (3d40926^'s parseHeader), or undefined: "damaged" */
function earlierBuildReads(): number | undefined {
  const b = readFileSync(journalPath()).subarray(0, 32);
  if (b.toString('latin1', 0, 23) !== 'mailbag-lmtp-journal 1\n') return undefined;
  if (b.readUInt32LE(28) !== crc32(b.subarray(0, 28))) return undefined;
  return b.readUInt32LE(24);
}

it('a journal lmtpd has open (a crash leaves answered records in it) is not one an earlier build takes as its own; this build replays it', async () => {
  const { journal, store } = await open(true);
  const a = await job(store, 'answered, then a crash\n');
  const b = await job(store, 'answered too\n');
  await journal.abandon();
  // before: the header an earlier build reads as its own, the two records retired without a word
  expect(earlierBuildReads(), 'an earlier build would retire the answered records in silence').toBeUndefined();
  expect(readFileSync(journalPath()).toString('latin1', 0, 23)).toBe('mailbag-lmtp-journal 2\n');
  expect(journalJobs(spool.root).map((j) => j.id).sort()).toEqual([a, b].sort());
  expect(await replayJournals(spool)).toBe(2);
  expect(outJobs()).toEqual([a, b].sort());
  // replayed: nothing left in it, and the header says so
  expect(earlierBuildReads()).toBeDefined();
});

it('a journal with nothing to replay (new, reset, stopped cleanly) has a header an earlier build reads (no alarm); its first records mark it again', async () => {
  const first = await open();
  expect(earlierBuildReads(), 'a journal just opened holds nothing').toBeDefined();
  const a = await job(first.store, 'written out before the stop\n');
  // its records may be all there is of an answered job until they are in out/ and reset
  expect(earlierBuildReads()).toBeUndefined();
  await first.journal.close();
  expect(outJobs()).toEqual([a]);
  expect(earlierBuildReads(), 'a clean stop leaves a header every build reads').toBeDefined();
  const second = await open(true);
  expect(earlierBuildReads()).toBeDefined();
  const b = await job(second.store, 'after the restart\n');
  expect(earlierBuildReads()).toBeUndefined();
  await second.journal.abandon();
  expect(await replayJournals(spool)).toBe(1);
  expect(outJobs()).toEqual([a, b].sort());
  expect(earlierBuildReads()).toBeDefined();
});
