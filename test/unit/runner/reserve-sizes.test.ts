// The room a job's records hold after its hand-over (docs/spool.md R2a): two files of the
// final record's largest size, linear in the job (it was two a transaction of the
// cumulative size: ~38 MB for 100 one-recipient transactions).
import { expect, it } from 'vitest';
import type { Transaction } from '../../../lib/deliver/message.js';
import { recordedDiagnostic, recordSizes } from '../../../lib/runner/reserve.js';
import { RUN_MAGIC_LINE, type RunState } from '../../../lib/runner/state.js';

const txs = (n: number, per: number): Transaction[] =>
  Array.from({ length: n }, (_, i) => ({
    index: i,
    sender: 's@x.example',
    mailParams: [],
    recipients: Array.from({ length: per }, (_, j) => ({ address: `"q\\u0001${i}.${j}"@y.example`, params: [] })),
    body: { path: '/nonexistent', offset: 0, length: 0 } as unknown as Transaction['body'],
    line: 0,
  }));

it('100 one-recipient transactions hold two files under 1 MB in all, not ~38 MB', () => {
  const sizes = recordSizes(txs(100, 1));
  expect(sizes).toHaveLength(2);
  expect(sizes[0]).toBe(sizes[1]);
  expect(sizes[0]! + sizes[1]!).toBeLessThan(1_000_000);
  // linear: ten times the job, ten times the room (less its fixed part)
  const ten = recordSizes(txs(1000, 1))[0]!;
  expect(ten).toBeLessThan(10 * sizes[0]!);
});

it("each file holds the job's largest final record: every recipient refused with the longest diagnostic, a retry's reason", () => {
  for (const [n, per] of [[1, 1], [3, 40], [50, 2]] as const) {
    const list = txs(n, per);
    const long = '\u00e9"\u0007'.repeat(2000);
    const state: RunState = {
      attempts: 99,
      startedAt: new Date().toISOString(),
      nextAttempt: new Date().toISOString(),
      lastError: recordedDiagnostic(long, 1),
      noticeRetry: { since: new Date().toISOString(), attempts: 9, nextAttempt: new Date().toISOString() },
      failed: { reason: `<${list[0]!.recipients[0]!.address}>: ${recordedDiagnostic(long, 1)} (and 99999 more)`, at: new Date().toISOString(), status: '5.1.1', noticeSent: false },
      tx: Object.fromEntries(
        list.map((tx) => [String(tx.index), { accepted: [], noticed: false, failed: tx.recipients.map((r) => ({ address: r.address, status: '5.1.1', diagnostic: recordedDiagnostic(long, tx.recipients.length) })) }]),
      ),
    };
    const bytes = Buffer.byteLength(RUN_MAGIC_LINE + JSON.stringify(state) + '\n');
    expect(bytes, `${n}×${per}`).toBeLessThanOrEqual(recordSizes(list)[0]!);
  }
});
