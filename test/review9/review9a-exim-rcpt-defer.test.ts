// review9a: exim -bS, one recipient of a transaction deferred (4xx) at its RCPT. Exim
// abandons the batch at any error reply, 4xx as 5xx. Since 7a9ea93 the refused recipient
// alone is recorded and its transaction offered again "without it" — but a temporary
// result does not settle it (skip() holds accepted and permanent ones only), so every
// further round offers the same RCPT, gets the same 4xx, and neither the transaction's
// other recipients nor any later transaction is ever offered: one deferred address
// blocks the whole batch, at every retry, until it is accepted. Before 7a9ea93 the
// later transactions were delivered. A fake exim (shell) stands for Exim 4.96's report
// (the shape test/unit/deliver/exim-bs-fallback.test.ts uses).
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { indexBsmtp } from '../../lib/deliver/bsmtp-index.js';
import { deliverWithEximBatch } from '../../lib/deliver/exim-bs.js';
import type { RecipientResult } from '../../lib/deliver/result.js';

const dir = mkdtempSync(join(tmpdir(), 'review9a-exim-defer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// fails at HEAD 56db119: /work/brief/req-review9a.md E1; (E1 fixed by apply9a)
it('a 4xx at one RCPT: that recipient waits, the others of its transaction and the later transactions are delivered', async () => {
  const batch = join(dir, 'batch');
  writeFileSync(batch, 'MAIL FROM:<s@x>\nRCPT TO:<b@y>\nRCPT TO:<c@y>\nDATA\nSubject: t\n\nhi\n.\n' + 'MAIL FROM:<s@x>\nRCPT TO:<d@y>\nDATA\nSubject: u\n\nho\n.\n');
  const exim = join(dir, 'exim');
  // c@y is deferred whenever offered (a 4xx at RCPT: recipients_max's 452 in -bS); Exim stops the batch
  writeFileSync(exim, `#!/bin/sh
n=$(cat "${dir}/n" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "${dir}/n"
cat > "${dir}/in.$n"
if grep -q '^RCPT TO:<c@y>' "${dir}/in.$n"; then
  line=$(grep -n '^RCPT TO:<c@y>' "${dir}/in.$n" | cut -d: -f1)
  printf '451 Temporary local problem - please try later\\nTransaction started in line 0\\nError detected in line %s\\n0 previous messages were successfully processed\\nThe SMTP command at fault was:\\n   RCPT TO:<c@y>\\n' "$line"
  exit 2
fi
exit 0
`);
  chmodSync(exim, 0o755);
  const { transactions } = await indexBsmtp(batch, 0);
  const results: Array<[number, RecipientResult[]]> = [];
  await deliverWithEximBatch(transactions, () => new Set(), async (t, r) => void results.push([t.index, r]), { program: exim, env: process.env });
  const got = results.flatMap(([i, r]) => r.map((x) => `${i} ${x.address} ${x.kind}`));
  // d@y (the later transaction) is delivered, b@y too (in a round without c@y)
  expect(got).toContain('1 d@y accepted');
  expect(got).toContain('0 b@y accepted');
  expect(got.filter((g) => g.includes('c@y'))).toEqual(['0 c@y temporary']);
  // and exim is not run round after round for the same refusal
  expect(readdirSync(dir).filter((f) => f.startsWith('in.')).length).toBeLessThanOrEqual(3);
});
