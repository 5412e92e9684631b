// Outgoing jobs queued while the wall clock was weeks behind (a board without a real-time
// clock that booted at its last shutdown's time, a site offline until its link brings NTP
// up) were taken for weeks old once NTP set the clock right, and bounced at the next
// expiry ("not delivered to hub within 5 days", minutes after they were queued). The boot
// clock (/proc/uptime) does not step: the expiry now sees the step and counts such a job's
// age on today's clock. The boot clock is given here (the machine's clock is not ours to
// step); readBootClock is read as the expiry reads it.
import { afterEach, expect, it } from 'vitest';
import { newJobId } from '../../../lib/job/index.js';
import { listFailed } from '../../../lib/runner/failed.js';
import { readBootClock } from '../../../lib/session/clock.js';
import { expireQueued } from '../../../lib/session/index.js';
import { makeSite, RMAIL_PAYLOAD, type Site } from '../runner/helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

const DAY = 86_400_000;

async function queue(s: Site, idTime: number): Promise<string> {
  const id = newJobId(idTime);
  await s.spool.writeJob('out', 'hub', { id, from: 'home', to: 'hub', created: new Date(idTime).toISOString(), command: 'rmail', args: ['r@y.example'], sender: 'a@x.example', recipients: ['r@y.example'] }, Buffer.from(RMAIL_PAYLOAD));
  return id;
}

it('a job queued while the clock was 3 weeks behind does not bounce when NTP sets it right; it expires 5 days after it was queued', async () => {
  site = await makeSite();
  const real = Date.now();
  const wrong = real - 21 * DAY;
  const at = (wall: number, sinceBootMs: number) => ({ spool: site!.spool, now: new Date(wall), bootClock: { boot: 'boot-1', sinceBootMs } });
  // booted a minute ago, at the clock's wrong time: a dispatch's expiry pass (nothing queued)
  expect(await expireQueued(site.config, 'hub', at(wrong, 60_000))).toEqual([]);
  const id = await queue(site, wrong + 10_000);
  // two minutes later NTP has set the clock 3 weeks forward; the next pass
  expect(await expireQueued(site.config, 'hub', at(real + 60_000, 180_000))).toEqual([]);
  expect((await site.spool.listJobs('out', 'hub')).map((r) => r.id)).toEqual([id]);
  // 4 days on, still queued; 6 days on (by both clocks), past queue_lifetime: it fails
  expect(await expireQueued(site.config, 'hub', at(real + 60_000 + 4 * DAY, 180_000 + 4 * DAY))).toEqual([]);
  expect(await expireQueued(site.config, 'hub', at(real + 60_000 + 6 * DAY, 180_000 + 6 * DAY))).toEqual([id]);
  expect((await listFailed(site.spool, 'hub')).map((f) => f.reason)).toEqual(['not delivered to hub within 5 days']);
});

it('a job really queued 6 days ago in this boot fails as before (no step: both clocks moved alike)', async () => {
  site = await makeSite();
  const now = Date.now();
  const at = (wall: number, sinceBootMs: number) => ({ spool: site!.spool, now: new Date(wall), bootClock: { boot: 'boot-1', sinceBootMs } });
  expect(await expireQueued(site.config, 'hub', at(now - 6 * DAY, 60_000))).toEqual([]);
  const id = await queue(site, now - 6 * DAY + 1000);
  expect(await expireQueued(site.config, 'hub', at(now, 60_000 + 6 * DAY))).toEqual([id]);
});

it('a step seen in an earlier boot still counts after a reboot; no boot clock (not Linux): ids as they are', async () => {
  site = await makeSite();
  const real = Date.now();
  const wrong = real - 21 * DAY;
  expect(await expireQueued(site.config, 'hub', { spool: site.spool, now: new Date(wrong), bootClock: { boot: 'boot-1', sinceBootMs: 1000 } })).toEqual([]);
  const id = await queue(site, wrong + 10_000);
  expect(await expireQueued(site.config, 'hub', { spool: site.spool, now: new Date(real), bootClock: { boot: 'boot-1', sinceBootMs: 120_000 } })).toEqual([]);
  // rebooted: the step is remembered
  expect(await expireQueued(site.config, 'hub', { spool: site.spool, now: new Date(real + DAY), bootClock: { boot: 'boot-2', sinceBootMs: 30_000 } })).toEqual([]);
  expect((await site.spool.listJobs('out', 'hub')).map((r) => r.id)).toEqual([id]);
  // the same boot id with less time since boot (a container's own uptime, restarted): a new
  // reference, no step made up from it
  expect(await expireQueued(site.config, 'hub', { spool: site.spool, now: new Date(real + 2 * DAY), bootClock: { boot: 'boot-2', sinceBootMs: 10_000 } })).toEqual([]);
  expect(await expireQueued(site.config, 'hub', { spool: site.spool, now: new Date(real + 2 * DAY + 60_000), bootClock: { boot: 'boot-2', sinceBootMs: 70_000 } })).toEqual([]);
  const { readFileSync } = await import('node:fs');
  const rec = JSON.parse(readFileSync(site.spool.path('run', 'clock-steps'), 'utf8').split('\n')[1]!) as { steps: unknown[]; sinceBootMs: number };
  expect(rec.steps).toHaveLength(1);
  expect(rec.sinceBootMs).toBe(10_000);
  // this machine's own boot clock reads
  const mine = await readBootClock();
  if (process.platform === 'linux') expect(mine?.boot).toMatch(/^[0-9a-f-]{36}$/);
});
