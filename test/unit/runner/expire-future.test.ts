// Outgoing jobs whose id time lies in the future (made while this clock was ahead and set
// back since, or a bad id): their queue lifetime counts from when they reached out/PEER
// by this clock (the file's mtime), or from when the expiry first saw them when that too
// lies ahead; they fail once older than queue_lifetime, not never (DESIGN.md promise 4).
import { utimesSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { newJobId } from '../../../lib/job/index.js';
import { listFailed } from '../../../lib/runner/failed.js';
import { expireQueued } from '../../../lib/session/index.js';
import { makeSite, RMAIL_PAYLOAD, type Site } from './helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

const DAY = 86_400_000;

async function queue(s: Site, idTime: number, mtime: number): Promise<string> {
  const id = newJobId(idTime);
  await s.spool.writeJob('out', 'hub', { id, from: 'home', to: 'hub', created: new Date(idTime).toISOString(), command: 'rmail', args: ['r@y.example'], sender: 'a@x.example', recipients: ['r@y.example'] }, Buffer.from(RMAIL_PAYLOAD));
  utimesSync(join(s.spool.root, 'out', 'hub', id), mtime / 1000, mtime / 1000);
  return id;
}

it('one made a year ahead but queued here 6 days ago fails; one queued a day ago stays', async () => {
  site = await makeSite();
  const now = Date.now();
  const old = await queue(site, now + 365 * DAY, now - 6 * DAY);
  const young = await queue(site, now + 365 * DAY + 1, now - DAY);
  expect(await expireQueued(site.config, 'hub', { spool: site.spool })).toEqual([old]);
  expect((await site.spool.listJobs('out', 'hub')).map((r) => r.id)).toEqual([young]);
  expect((await listFailed(site.spool, 'hub')).map((f) => f.reason)).toEqual(['not delivered to hub within 5 days']);
});

it('one whose id time and mtime both lie ahead (the clock set back since) fails queue_lifetime after the expiry first saw it', async () => {
  site = await makeSite();
  const now = Date.now();
  const id = await queue(site, now + 365 * DAY, now + 365 * DAY);
  expect(await expireQueued(site.config, 'hub', { spool: site.spool, now: new Date(now) })).toEqual([]);
  expect(await expireQueued(site.config, 'hub', { spool: site.spool, now: new Date(now + 4 * DAY) })).toEqual([]);
  expect(await expireQueued(site.config, 'hub', { spool: site.spool, now: new Date(now + 6 * DAY) })).toEqual([id]);
});
