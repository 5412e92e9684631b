// Promise 2 (nothing stored twice) holds for as long as the ledger remembers a job: a
// job whose acknowledgement was lost is offered again until it is acknowledged or its
// queue_lifetime ends, and an LMTP client retries as long (Postfix's and Exim's 5 days).
// A ledger_retention shorter than queue_lifetime left a window in which the job was
// stored a second time; the loader took it without a word.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../lib/config/index.js';
import { errorOf } from './error-of.js';


describe('ledger_retention and queue_lifetime', () => {
  it.each([
    ['ledger_retention = "1d"', 'ledger_retention', '"1d" is shorter than queue_lifetime (5d)'],
    ['ledger_retention = "4d"\nqueue_lifetime = "5d"', 'ledger_retention', '"4d" is shorter than queue_lifetime (5d)'],
  ])('%s is refused', (text, key, what) => {
    const e = errorOf(text);
    expect(e.key).toBe(key);
    expect(e.message).toBe(`/etc/x/m.toml: ${key}: ${what}: a job offered again after a lost acknowledgement could be stored twice; make it at least as long`);
    expect(e.exitCode).toBe(75);
  });

  it.each([
    ['', 14, 5],
    ['ledger_retention = "5d"', 5, 5],
    ['queue_lifetime = "14d"', 14, 14],
    // the default follows a longer queue_lifetime (a file that worked must load on upgrade)
    ['queue_lifetime = "30d"', 30, 30],
    ['queue_lifetime = "30d"\nledger_retention = "31d"', 31, 30],
    ['queue_lifetime = "1h"\nledger_retention = "1h"', 1 / 24, 1 / 24],
  ])('%j is taken', (text, ledgerDays, lifetimeDays) => {
    const c = parseConfig(text, '/m.toml');
    expect(c.ledgerRetentionMs).toBe(Math.round(ledgerDays * 86_400_000));
    expect(c.queueLifetimeMs).toBe(Math.round(lifetimeDays * 86_400_000));
  });
});
