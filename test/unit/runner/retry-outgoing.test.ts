// `mailbag retry` of a job that failed on its way out puts it back in out/PEER (to be
// sent again), with a fresh queue lifetime: the next run does not expire it at once.
import { afterEach, describe, expect, it } from 'vitest';
import { findFailed, listFailed, retryFailed } from '../../../lib/runner/failed.js';
import { runJobs } from '../../../lib/runner/runner.js';
import { newJobId } from '../../../lib/job/index.js';
import { expireQueued } from '../../../lib/session/index.js';
import { makeSite, RMAIL_PAYLOAD, type Site } from './helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

const DAY = 86_400_000;

describe('retry of an outgoing job that expired', () => {
  it('goes back to out/PEER, not in/PEER, and is not expired again by the next run', async () => {
    site = await makeSite();
    const made = Date.now() - 6 * DAY;
    const id = newJobId(made);
    await site.spool.writeJob('out', 'hub', { id, from: 'home', to: 'hub', created: new Date(made).toISOString(), command: 'rmail', args: ['r@y.example'], sender: 'a@x.example', recipients: ['r@y.example'] }, Buffer.from(RMAIL_PAYLOAD));

    // what `mailbag run` does: expire, then run (which sends the notice)
    expect(await expireQueued(site.config, 'hub', { spool: site.spool })).toEqual([id]);
    await runJobs({ config: site.config, spool: site.spool, env: site.env, log: () => undefined });
    expect((await listFailed(site.spool, 'hub')).map((f) => f.id)).toEqual([id]);
    expect(site.sendmailCalls()).toHaveLength(1); // the notice

    const ref = await findFailed(site.spool, id);
    expect(ref).toBeDefined();
    const back = await retryFailed(site.spool, ref!);
    expect(back.queue).toBe('out');
    expect((await site.spool.listJobs('out', 'hub')).map((r) => r.id)).toEqual([id]);
    expect(await site.spool.listJobs('in', 'hub')).toEqual([]);

    expect(await expireQueued(site.config, 'hub', { spool: site.spool })).toEqual([]);
    await runJobs({ config: site.config, spool: site.spool, env: site.env, log: () => undefined });
    expect((await site.spool.listJobs('out', 'hub')).map((r) => r.id)).toEqual([id]);
    expect(await listFailed(site.spool, 'hub')).toEqual([]);
    expect(site.sendmailCalls()).toHaveLength(1);
  });
});
