// mailbag status and a killed session's leftovers: jobs of a committed bag still in
// bags/in/PEER/HASH.d/ (docs/spool.md S7) count in `in`, named apart, until the idle
// recovery moves them.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { gatherStatus } from '../../../lib/cli/status.js';
import { recoverIdlePeer } from '../../../lib/session/idle-recovery.js';
import { makeSite, RMAIL_PAYLOAD } from '../runner/helpers.js';

it('counts the jobs of a committed, unmoved bag in `in` as not yet moved, and not after the recovery', async () => {
  const s = await makeSite();
  try {
    const HASH = 'ab'.repeat(32);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await s.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD));
    // two of the three jobs still in the staging directory of a bag the ledger holds
    const dir = join(s.spool.root, 'bags', 'in', 'hub', `${HASH}.d`);
    mkdirSync(dir, { recursive: true });
    for (const id of ids.slice(1)) renameSync(join(s.spool.root, 'in', 'hub', id), join(dir, id));
    mkdirSync(join(s.spool.root, 'ledger'), { recursive: true });
    writeFileSync(join(s.spool.root, 'ledger', 'hub'), `mailbag-ledger 1\n${Date.now()} ${HASH} ${ids.join(',')}\n`);

    const before = await gatherStatus(s.config);
    expect(before.peers[0]!.in).toMatchObject({ jobs: 3, unmoved: 2 });
    expect(before.peers[0]!.in.oldestAgeSeconds).not.toBeNull();

    await recoverIdlePeer(s.config, s.spool, 'hub');
    const after = await gatherStatus(s.config);
    expect(after.peers[0]!.in.jobs).toBe(3);
    expect(after.peers[0]!.in.unmoved).toBeUndefined();
  } finally {
    s.cleanup();
  }
});
