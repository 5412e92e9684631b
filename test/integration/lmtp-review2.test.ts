// Review of `mailbag lmtpd` with lmtp.workers = 2: the workers run with the umask lmtpd
// was started with. The primary sets 0177 while the shared socket is bound (so the file
// appears with no bits for others before its chmod); workers forked under it kept it for
// life, and every directory a worker makes (out/PEER, a peer's ledger directory) then
// appeared as 0600 (not searchable) until its chmod, while the other worker could already
// be linking a job into it (EACCES, a 451).
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeSharedTempDir, removeTempDir } from '../helpers/mta-common.js';
import { childPids, isAlive, startLmtpd, type Lmtpd } from '../unit/lmtp/lmtpd-process.js';

const umaskOf = (pid: number): string => /^Umask:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1] ?? 'unknown';

describe('lmtpd workers (review)', () => {
  let dir: string;
  let lmtpd: Lmtpd | undefined;
  beforeEach(() => {
    dir = makeSharedTempDir('lmtp-review2');
  });
  afterEach(async () => {
    if (lmtpd) {
      const pids = childPids(lmtpd.pid);
      await lmtpd.kill();
      const deadline = Date.now() + 15_000;
      while (pids.some(isAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    }
    lmtpd = undefined;
    removeTempDir(dir);
  });

  it('the workers keep the umask lmtpd was started with, not the 0177 of the socket bind', async () => {
    lmtpd = await startLmtpd({ dir, peers: { hub: ['a.test'] }, workers: 2 });
    const workers = childPids(lmtpd.pid);
    expect(workers).toHaveLength(2);
    const mine = umaskOf(process.pid);
    expect(umaskOf(lmtpd.pid)).toBe(mine);
    for (const w of workers) expect(umaskOf(w)).toBe(mine);
    expect(await lmtpd.stop()).toBe(0);
    lmtpd = undefined;
  });
});
