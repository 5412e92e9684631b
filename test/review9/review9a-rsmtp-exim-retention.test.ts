// review9a: rsmtp's records are pruned ledger_retention after their last write
// (runner/state.ts pruneStale, by mtime). Through Postfix -bs, the smtp/lmtp methods or
// one sendmail per transaction, every retry rewrites the record of each settled
// transaction (record() is called with no results), so a batch retried for longer than
// the retention keeps them. Through exim -bS a settled transaction is left out of the
// stream and record() is never called for it: its record ages from the run that settled
// it, and a batch whose later transaction is deferred for longer than ledger_retention
// (uuxqt retries a 75 without limit, docs/rsmtp.md) delivers the settled ones again.
// The same for a record of the old whole-input shape (an upgrade): never rewritten.
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, expect, it } from 'vitest';
import { main as rsmtp } from '../../lib/cli/rsmtp.js';
import { Spool } from '../../lib/spool/index.js';

const DAY = 86_400_000;
let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

const TX1 = 'MAIL FROM:<s@x>\nRCPT TO:<a@y>\nDATA\none\n.\n';
const TX2 = 'MAIL FROM:<s@x>\nRCPT TO:<b@y>\nDATA\ntwo\n.\n';
const TX3 = 'MAIL FROM:<s@x>\nRCPT TO:<c@y>\nDATA\nthree\n.\n';

// fails at HEAD 56db119: /work/brief/req-review9a.md E2; passes since the fix (apply9a)
it('exim -bS: a batch whose last transaction is deferred longer than ledger_retention delivers the settled ones once', async () => {
  dir = mkdtempSync(join(tmpdir(), 'review9a-rsmtp-exim-'));
  const d = dir;
  const exim = join(d, 'exim');
  // c@y deferred while the file "defer" exists (Exim 4.96's report); every RCPT of a
  // transaction Exim takes is appended to "delivered"
  writeFileSync(exim, `#!/bin/sh
cat > "${d}/in"
if [ -e "${d}/defer" ] && grep -q '^RCPT TO:<c@y>' "${d}/in"; then
  grep '^RCPT' "${d}/in" | grep -v 'c@y' >> "${d}/delivered"
  k=$(($(grep -c '^MAIL' "${d}/in") - 1))
  printf '451 Temporary local problem - please try later\\nTransaction started in line 1\\nError detected in line 2\\n%s previous messages were successfully processed\\nThe SMTP command at fault was:\\n   RCPT TO:<c@y>\\n' "$k"
  if [ $k = 0 ]; then exit 2; fi
  exit 1
fi
grep '^RCPT' "${d}/in" >> "${d}/delivered"
exit 0
`);
  chmodSync(exim, 0o755);
  const config = join(d, 'mailbag.toml');
  writeFileSync(config, `site = "home"\nspool = "${join(d, 'spool')}"\n[delivery]\nsendmail = "${exim}"\nmta = "exim"\n`);
  await Spool.open(join(d, 'spool'), { create: true });
  const call = (): Promise<number> =>
    rsmtp(['--config', config], { stdin: Readable.from([Buffer.from(TX1 + TX2 + TX3)]), stdout: new PassThrough().resume(), stderr: new PassThrough().resume(), env: process.env, cwd: d, isTTY: false }).catch(
      (x: unknown) => (x as { exitCode?: number }).exitCode ?? 75,
    );
  const records = join(d, 'spool', 'run', 'rsmtp-stdin');
  const age = (days: number): void => {
    // time passes: every record is `days` older
    for (const n of readdirSync(records)) {
      const p = join(records, n);
      const t = (statSync(p).mtimeMs - days * DAY) / 1000;
      utimesSync(p, t, t);
    }
  };
  writeFileSync(join(d, 'defer'), '');
  expect(await call()).toBe(75); // day 0: a@y, b@y taken, c@y deferred
  age(10);
  expect(await call()).toBe(75); // day 10: the caller's retry, c@y still deferred
  age(5);
  rmSync(join(d, 'defer'));
  expect(await call()).toBe(0); // day 15: c@y taken
  const got = existsSync(join(d, 'delivered')) ? readFileSync(join(d, 'delivered'), 'utf8').trim().split('\n').sort() : [];
  expect(got).toEqual(['RCPT TO:<a@y>', 'RCPT TO:<b@y>', 'RCPT TO:<c@y>']);
});
