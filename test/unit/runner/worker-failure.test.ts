// One worker of a run fails on our own spool (its batch journal cannot be written: a full
// disk) while another is handing a job to the MTA. The run must not return — and let go of
// the peer's runner lock — while that other worker still delivers: a runner started then
// would take the same jobs (delivered twice). Before, Promise.all gave up at the first
// failure and the other worker went on in the background, after runJobs had returned.

import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';
import { SpoolError } from '../../../lib/errors.js';
import { FAKE_SENDMAIL, makeSite, RMAIL_PAYLOAD, type Site } from './helpers.js';

vi.mock('../../../lib/runner/state.js', async (importOriginal) => {
  const mod = await importOriginal<typeof import('../../../lib/runner/state.js')>();
  let calls = 0;
  return {
    ...mod,
    // the second batch journal of the run cannot be written
    startBatch: async (...a: Parameters<typeof mod.startBatch>): Promise<string> => {
      if (++calls === 2) throw new SpoolError('no space left: ENOSPC: no space left on device, write', { code: 'spool-full' });
      return mod.startBatch(...a);
    },
  };
});

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

it('the run returns only once every worker is done, and then nothing more is handed to the MTA', async () => {
  const { runJobs } = await import('../../../lib/runner/runner.js');
  site = await makeSite();
  // a sendmail that takes a moment
  const slow = join(site.dir, 'slow-sendmail');
  writeFileSync(slow, `#!/bin/sh\nsleep 0.3\nexec ${JSON.stringify(FAKE_SENDMAIL)} "$@"\n`);
  chmodSync(slow, 0o755);
  site.config.delivery.sendmail = slow;
  site.config.delivery.concurrency = 2;
  site.config.delivery.mta = 'postfix';
  for (let i = 0; i < 4; i++) await site.receive({ command: 'rmail', args: [`r${i}@y.example`] }, RMAIL_PAYLOAD);

  const summary = await runJobs({ config: site.config, spool: site.spool, env: site.env });
  const atReturn = site.sendmailCalls().length;
  expect(summary.unfinished?.[0]?.error.message).toMatch(/no space left/);
  // the lock is free once it returned, and no worker of it is still at work
  expect(await site.spool.lock('runner.hub').then((l) => l.release())).toBeUndefined();
  await new Promise((r) => setTimeout(r, 1500));
  expect(site.sendmailCalls().length).toBe(atReturn);
  // what the working worker had begun, it finished: its two jobs are delivered
  expect(atReturn).toBe(2);
  expect((await site.spool.listJobs('in', 'hub')).length).toBe(2);
});
