// review8b: 931178c made `mailbag enqueue` refuse (65) a null-sender message with a line
// over 1 MiB, because the peer's BSMTP reader (lib/deliver/bsmtp-index.ts, maxTextLine =
// LIMITS.maxBsmtpTextLine) refuses such a job and its failure tells nobody (sender <>).
// The LMTP listener writes the same BSMTP jobs with its own encoder (lib/lmtp/body.ts),
// which has no such check: it answers 250 and queues a job the peer then fails. Checked
// with the built lmtpd too (250 2.6.0 queued…; indexBsmtp: "message text line too long").
// Requested in /work/brief/req-review8b.md (owner: lmtp8). The assertion is the outcome:
// a message the listener accepts is one the peer can read; one it cannot is refused 5xx.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { indexBsmtp } from '../../lib/deliver/bsmtp-index.js';
import { LIMITS } from '../../lib/limits.js';
import { SpoolLedger } from '../../lib/lmtp/ledger.js';
import { buildRouter } from '../../lib/lmtp/route.js';
import { LmtpServer } from '../../lib/lmtp/server.js';
import { SpoolJobStore } from '../../lib/lmtp/spool-store.js';
import { readJobFile, Spool } from '../../lib/spool/spool.js';
import { LmtpClient } from '../unit/lmtp/lmtp-client.js';

let dir: string;
let spool: Spool;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'review8b-lmtp-line-'));
  spool = await Spool.open(join(dir, 'spool'), { create: true });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

it('a null-sender message with a line over LIMITS.maxBsmtpTextLine: refused 5xx, or queued as a job the peer reads', async () => {
  const router = buildRouter({ peers: { hub: { name: 'hub', domains: ['a.test'], addresses: [] } } });
  const server = new LmtpServer({
    router, store: new SpoolJobStore(spool, 'home'), ledger: await SpoolLedger.open(spool),
    hostname: 'home', maxMessageSize: 8 << 20, maxRecipients: 10, maxConnections: 5,
  });
  const sock = join(dir, 'lmtp.sock');
  await server.listenUnix(sock, 0o600);
  try {
    const c = await LmtpClient.connect(sock, 30_000);
    await c.read();
    await c.cmd('LHLO t');
    await c.envelope('MAIL FROM:<>', ['RCPT TO:<x@a.test>']);
    const r = await c.data(`Subject: long\n\n${'x'.repeat(LIMITS.maxBsmtpTextLine + 1)}\nend\n`, 1);
    c.destroy();
    const jobs = await spool.listJobs('out', 'hub');
    for (const ref of jobs) {
      const job = await readJobFile(ref.path);
      await expect(indexBsmtp(ref.path, job.payloadOffset), 'the listener said 250 for a job the peer refuses').resolves.toMatchObject({ problem: undefined });
    }
    if (jobs.length === 0) expect(r.map((x) => Math.floor(x.code / 100))).toEqual([5]);
    else expect(r.map((x) => x.code)).toEqual([250]);
  } finally {
    await server.close(1000);
  }
}, 60_000);
