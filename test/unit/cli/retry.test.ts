// mailbag retry says where the job went: a job that failed on its way out goes back to
// out/PEER, for the next session; one that came in goes back to in/PEER, for mailbag run.
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { main as retryMain } from '../../../lib/cli/retry.js';
import { main as runMain } from '../../../lib/cli/run-jobs.js';
import { newJobId } from '../../../lib/job/index.js';
import { findFailed, retryFailed } from '../../../lib/runner/failed.js';
import { readState } from '../../../lib/runner/state.js';
import { expireQueued } from '../../../lib/session/index.js';
import { cliCommand, makeSite, RMAIL_PAYLOAD, type Site } from '../runner/helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

it('an expired outgoing job: "back in out/hub", and the next step is a session, not mailbag run', async () => {
  site = await makeSite();
  const made = Date.now() - 6 * 86_400_000;
  const id = newJobId(made);
  await site.spool.writeJob('out', 'hub', { id, from: 'home', to: 'hub', created: new Date(made).toISOString(), command: 'rmail', args: ['r@y.example'], sender: 'a@x.example', recipients: ['r@y.example'] }, Buffer.from(RMAIL_PAYLOAD));
  expect(await expireQueued(site.config, 'hub', { spool: site.spool })).toEqual([id]);

  const { code, out } = await cliCommand(retryMain, site, [`hub/${id}`]);
  expect(code).toBe(0);
  expect((await site.spool.listJobs('out', 'hub')).map((r) => r.id)).toEqual([id]);
  expect(out).toBe(`hub/${id} is back in out/hub; the next session sends it (mailbag sync hub)\n`);
});

it('on a site that never dials the peer (no host: the hub), the next session is the one the peer starts, not mailbag sync', async () => {
  site = await makeSite();
  // the hub's view of home: a peer that dials in, never dialled (no host)
  const { writeFileSync } = await import('node:fs');
  const toml = join(site.dir, 'hub.toml');
  writeFileSync(toml, `site = "home"\nspool = ${JSON.stringify(site.spool.root)}\n[peers.hub]\naccept = ["rmail"]\n`);
  const made = Date.now() - 6 * 86_400_000;
  const id = newJobId(made);
  await site.spool.writeJob('out', 'hub', { id, from: 'home', to: 'hub', created: new Date(made).toISOString(), command: 'rmail', args: ['r@y.example'], sender: 'a@x.example', recipients: ['r@y.example'] }, Buffer.from(RMAIL_PAYLOAD));
  expect(await expireQueued(site.config, 'hub', { spool: site.spool })).toEqual([id]);

  const { code, out } = await cliCommand(retryMain, site, [`hub/${id}`], toml);
  expect(code).toBe(0);
  expect((await site.spool.listJobs('out', 'hub')).map((r) => r.id)).toEqual([id]);
  // mailbag sync hub would fail here: peers.hub.host is not set
  expect(out).toBe(`hub/${id} is back in out/hub; the next session sends it (when hub connects: this site does not dial it)\n`);
});

it('a runner of the peer at work for longer than the wait: not put back, exit 75 with a line that says why; the job stays failed', async () => {
  site = await makeSite();
  const made = Date.now() - 6 * 86_400_000;
  const id = newJobId(made);
  await site.spool.writeJob('out', 'hub', { id, from: 'home', to: 'hub', created: new Date(made).toISOString(), command: 'rmail', args: ['r@y.example'], sender: 'a@x.example', recipients: ['r@y.example'] }, Buffer.from(RMAIL_PAYLOAD));
  expect(await expireQueued(site.config, 'hub', { spool: site.spool })).toEqual([id]);
  const before = await readState(site.spool, 'hub', id);
  // the runner of hub (this process here) holds its lock
  const lock = await site.spool.lock('runner.hub');
  try {
    const err = await retryFailed(site.spool, await findFailed(site.spool, `hub/${id}`), new Date(), { lockWaitMs: 200 }).then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'locked', exitCode: 75 });
    expect((err as Error).message).toMatch(new RegExp(`^hub/${id} is not put back: a runner of hub is at work \\(lock runner\\.hub is held by pid ${process.pid} since [^)]+\\); try again when it is done$`));
  } finally {
    await lock.release();
  }
  expect((await site.spool.listJobs('failed', 'hub')).map((r) => r.id)).toEqual([id]);
  expect(await readState(site.spool, 'hub', id)).toEqual(before);
  // once the runner is done, it goes back
  expect((await cliCommand(retryMain, site, [`hub/${id}`])).code).toBe(0);
  expect((await site.spool.listJobs('out', 'hub')).map((r) => r.id)).toEqual([id]);
});

it('an expired outgoing job put back stays queued for a new queue_lifetime across mailbag runs while the peer stays unreachable (before: the second run failed it again)', async () => {
  site = await makeSite();
  const made = Date.now() - 6 * 86_400_000;
  const id = newJobId(made);
  await site.spool.writeJob('out', 'hub', { id, from: 'home', to: 'hub', created: new Date(made).toISOString(), command: 'rmail', args: ['r@y.example'], sender: 'a@x.example', recipients: ['r@y.example'] }, Buffer.from(RMAIL_PAYLOAD));
  expect(await expireQueued(site.config, 'hub', { spool: site.spool })).toEqual([id]);
  // its notice goes out with the first run
  expect((await cliCommand(runMain, site, ['--quiet'])).out).toBe('run: 0 done, 0 to retry, 0 failed, 0 skipped\n');
  expect(site.sendmailCalls()).toHaveLength(1);
  expect((await cliCommand(retryMain, site, [`hub/${id}`])).code).toBe(0);
  // cron runs mailbag run every few minutes; hub cannot be reached meanwhile
  for (let i = 0; i < 3; i++) {
    const r = await cliCommand(runMain, site, []);
    expect(r.out).not.toContain('failed: not delivered within the queue lifetime');
  }
  expect((await site.spool.listJobs('out', 'hub')).map((r) => r.id)).toEqual([id]);
  expect(await site.spool.listJobs('failed', 'hub')).toEqual([]);
  expect((await readState(site.spool, 'hub', id))?.retriedAt).toBeDefined();
  // no second notice
  expect(site.sendmailCalls()).toHaveLength(1);
});
