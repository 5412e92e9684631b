// review10a: clock steps (4be6263, 8024967) against a container whose /proc/uptime is its
// own (lxcfs, a time namespace) and whose boot_id is the host's. 8024967 takes "less time
// since boot than the reference" for a restart, but the reference is the boot's *first*
// reading (taken seconds after the container started) and is never renewed without a
// step: a restarted container whose first expiry pass comes later after its start than
// the first pass of the run before (cron, a dispatch started after a slow service) reads
// more uptime than the reference, and the whole wall time since that reference (the run
// before, plus the downtime) is recorded as a step forward and added to every queued job.
// A container restarted daily then never lets a job expire: the sender is never told.
// The boot clock is given, as fixes10-clock gives it (the machine's is not ours to step);
// the spool, its record and the expiry are the real ones.
import { afterEach, expect, it } from 'vitest';
import { newJobId } from '../../lib/job/index.js';
import { expireQueued } from '../../lib/session/index.js';
import { makeSite, RMAIL_PAYLOAD, type Site } from '../unit/runner/helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

const DAY = 86_400_000;
const HOUR = 3_600_000;

// seen failing on main at 9effb22 (the job still queued 7 days on, a step of about a day
// recorded at each restart); passes since review10a's C1 (the reference follows the boot clock)
it('a container restarted every day (same boot_id, its own uptime): a job queued 6 days ago by a right clock expires (req-review10a C1)', async () => {
  site = await makeSite();
  const start = Date.now() - 7 * DAY;
  const pass = (wall: number, sinceBootMs: number) => expireQueued(site!.config, 'hub', { spool: site!.spool, now: new Date(wall), bootClock: { boot: 'host-boot', sinceBootMs } });
  // the container starts; its first expiry pass 20 s after start (the clock is right throughout)
  expect(await pass(start, 20_000)).toEqual([]);
  const id = newJobId(start + 60_000);
  await site.spool.writeJob('out', 'hub', { id, from: 'home', to: 'hub', created: new Date(start + 60_000).toISOString(), command: 'rmail', args: ['r@y.example'], sender: 'a@x.example', recipients: ['r@y.example'] }, Buffer.from(RMAIL_PAYLOAD));
  // passes every hour through the day
  for (let h = 1; h < 24; h++) expect(await pass(start + h * HOUR, 20_000 + h * HOUR)).toEqual([]);
  // restarted each night; the first pass after each restart comes 90 s after start
  for (let d = 1; d <= 6; d++) {
    expect(await pass(start + d * DAY, 90_000)).toEqual([]);
    for (let h = 1; h < 24; h++) await pass(start + d * DAY + h * HOUR, 90_000 + h * HOUR);
  }
  // 7 days after it was queued (queue_lifetime 5 days), by a clock that never stepped: it must have failed
  const left = (await site.spool.listJobs('out', 'hub')).map((r) => r.id);
  expect(left).toEqual([]);
});
