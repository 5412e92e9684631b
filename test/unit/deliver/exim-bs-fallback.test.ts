// Exim -bS's report without its "K previous messages were successfully processed" line
// (another Exim's wording): the failing transaction is placed by the line of the command
// at fault. "Transaction started in line N" names the line BEFORE the transaction's MAIL
// (verified with Exim 4.96: the previous transaction's "."), so placing by it blamed the
// transaction before, which Exim had taken. A fake exim (a shell script) stands for the
// report's shape; test/integration/deliver-exim.test.ts drives the real one.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { indexBsmtp } from '../../../lib/deliver/bsmtp-index.js';
import { deliverWithEximBatch } from '../../../lib/deliver/exim-bs.js';
import type { RecipientResult } from '../../../lib/deliver/result.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-exim-fallback-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('a report without the count: the transaction of the error line is refused, the one before it taken', async () => {
  const tx = (r: string): string => `MAIL FROM:<s@x>\nRCPT TO:<${r}>\nDATA\nSubject: t\n\nhi\n.\n`;
  const batch = join(dir, 'batch');
  writeFileSync(batch, tx('a@y') + tx('b@y') + tx('c@y'));
  const exim = join(dir, 'exim');
  // first call: tx 1 taken, tx 2's RCPT (line 9) refused; the report as 4.96 writes it but
  // without the count. Later calls: everything taken. Each call's stdin kept.
  writeFileSync(exim, `#!/bin/sh
n=$(cat "${dir}/n" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "${dir}/n"
cat > "${dir}/in.$n"
if [ $n = 1 ]; then
  printf '550 refused here\\nTransaction started in line 7\\nError detected in line 9\\nRCPT TO:<b@y>\\n'
  exit 1
fi
exit 0
`);
  chmodSync(exim, 0o755);
  const { transactions } = await indexBsmtp(batch, 0);
  const results: Array<[number, RecipientResult[]]> = [];
  await deliverWithEximBatch(transactions, () => new Set(), async (t, r) => void results.push([t.index, r]), { program: exim, env: process.env });
  expect(results.map(([i, r]) => [i, r.map((x) => `${x.address} ${x.kind}`)])).toEqual([
    [0, ['a@y accepted']],
    [1, ['b@y permanent']],
    [2, ['c@y accepted']],
  ]);
  // the second call offered only transaction 3
  expect(readFileSync(join(dir, 'in.2'), 'utf8')).toBe(tx('c@y'));
});
