// fidelity10: Exim's recipients_max (a site's limit) answers "452 too many recipients" at
// the RCPT past it and abandons the -bS transaction. RFC 5321 4.5.3.1.10: the client sends
// the rest in a later transaction. Before, each recipient past the limit cost its own
// `exim -bS` round (the whole rest of the batch piped again): M - N + 1 runs per attempt.
// Now the refused recipient and every later unsettled one of the transaction wait for the
// next attempt: 2 runs per attempt, and every recipient is still delivered exactly once.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { indexBsmtp } from '../../lib/deliver/bsmtp-index.js';
import { deliverWithEximBatch } from '../../lib/deliver/exim-bs.js';
import type { RecipientResult } from '../../lib/deliver/result.js';
import { eximBinary, haveExim, startExim, type EximInstance } from '../helpers/exim.js';

const ready = haveExim();
const names = ['r1', 'r2', 'r3', 'r4'];

describe.skipIf(!ready)('exim -bS with recipients_max = 1 (real Exim)', () => {
  let ex: EximInstance;
  let dir: string;
  let wrapper: string;
  let runs: string;
  beforeAll(async () => {
    ex = await startExim({ mailboxes: [...names, 'other'], main: ['recipients_max = 1'] });
    dir = mkdtempSync(join(tmpdir(), 'fidelity10-exim-max-'));
    wrapper = join(dir, 'exim');
    runs = join(dir, 'runs');
    // counts the runs of exim -bS, then runs the real one
    writeFileSync(wrapper, `#!/bin/sh\necho "$*" >> ${runs}\nexec ${eximBinary()} -C ${ex.configFile} -odq "$@"\n`);
    chmodSync(wrapper, 0o755);
  }, 60_000);
  afterAll(() => {
    ex?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const runCount = (): number => (existsSync(runs) ? readFileSync(runs, 'utf8').split('\n').filter(Boolean).length : 0);

  test('a 452 at RCPT holds the rest of the transaction: 2 runs an attempt, each recipient delivered once', async () => {
    const batch = join(dir, 'batch');
    writeFileSync(
      batch,
      'MAIL FROM:<s@maildir.test>\n' + names.map((n) => `RCPT TO:<${n}@maildir.test>\n`).join('') + 'DATA\nSubject: one\n\none\n.\n' +
        'MAIL FROM:<s@maildir.test>\nRCPT TO:<other@maildir.test>\nDATA\nSubject: two\n\ntwo\n.\n',
    );
    const { transactions } = await indexBsmtp(batch, 0);
    // settled recipients (accepted or failed for good) per transaction, as the runner keeps them
    const settled = new Map<number, Set<string>>();
    const perAttempt: number[] = [];
    const log: string[] = [];
    for (let attempt = 0; attempt < 8; attempt++) {
      const before = runCount();
      const results: Array<[number, RecipientResult[]]> = [];
      await deliverWithEximBatch(transactions, (i) => settled.get(i) ?? new Set(), async (t, r) => void results.push([t.index, r]), { program: wrapper, env: process.env });
      const ran = runCount() - before;
      if (ran === 0) break;
      perAttempt.push(ran);
      for (const [i, rs] of results) {
        for (const r of rs) {
          log.push(`${attempt} ${i} ${r.address} ${r.kind}`);
          if (r.kind !== 'temporary') {
            const s = settled.get(i) ?? new Set<string>();
            s.add(r.address);
            settled.set(i, s);
          }
        }
      }
    }
    // attempt 1: r2 refused 452, r2-r4 held; r1 and the second transaction taken in run 2
    expect(log.filter((l) => l.startsWith('0 '))).toEqual([
      '0 0 r2@maildir.test temporary',
      '0 0 r3@maildir.test temporary',
      '0 0 r4@maildir.test temporary',
      '0 0 r1@maildir.test accepted',
      '0 1 other@maildir.test accepted',
    ]);
    // before the fix: 4 runs in the first attempt (one per recipient past the limit, and the last)
    expect(perAttempt).toEqual([2, 2, 2, 1]);
    expect(log.filter((l) => l.endsWith('permanent'))).toEqual([]);
    await ex.runQueue();
    for (const n of [...names, 'other']) {
      const md = ex.maildir(n);
      const files = readdirSync(join(md, 'new')).concat(readdirSync(join(md, 'cur')));
      expect(files.length, n).toBe(1);
    }
  }, 180_000);
});
