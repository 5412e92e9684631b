// The clock set back (a wrong RTC at boot corrected by NTP, an admin's date): a job's
// retry time and a deferred notice's were computed from the wrong, later clock. No backoff
// is longer than 4 hours, so a time further ahead than that was not set by this clock: the
// job (or notice) is due now, not months later (before: skipped, silently, until the clock
// caught up with it; `mailbag status` said "next attempt in 200d").

import { utimesSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { main as statusMain } from '../../../lib/cli/status.js';
import { backoffMs, runJobs } from '../../../lib/runner/runner.js';
import { readState, writeState } from '../../../lib/runner/state.js';
import { cliCommand, makeSite, RMAIL_PAYLOAD, type Site } from './helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

const DAY = 86_400_000;

describe('the clock set back', () => {
  it('a job whose retry time is further ahead than the longest backoff is run now; one within it still waits', async () => {
    site = await makeSite();
    const now = Date.now();
    const late = await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    const waits = await site.receive({ command: 'rmail', args: ['q@y.example'] }, RMAIL_PAYLOAD);
    // tried once with the clock 200 days ahead; the other 1 h ago with this clock
    await writeState(site.spool, 'hub', late, { attempts: 1, tx: {}, nextAttempt: new Date(now + 200 * DAY + backoffMs(1)).toISOString(), lastError: 'x' });
    await writeState(site.spool, 'hub', waits, { attempts: 6, tx: {}, nextAttempt: new Date(now + backoffMs(6) - 3_600_000).toISOString(), lastError: 'x' });
    // mailbag status says which is due (before: "next attempt … (in 200d)")
    const status = (await cliCommand(statusMain, site, ['--jobs'])).out;
    expect(status).toMatch(/ {4}1 attempt; next attempt due \(\S+, set by a clock ahead of this one\); last error: x\n/);
    expect(status).toMatch(/ {4}6 attempts; next attempt \S+ \(in \d+[hm]/);
    const summary = await runJobs({ config: site.config, spool: site.spool, env: site.env, now: () => new Date(now) });
    expect(summary).toEqual({ done: 1, retry: 0, failed: 0, skipped: 1 });
    expect((await site.spool.listJobs('in', 'hub')).map((r) => r.id)).toEqual([waits]);
    expect(site.sendmailCalls().map((c) => c.argv.at(-1))).toEqual(['r@y.example']);
  });

  it('a deferred notice whose next try is further ahead than the longest backoff is tried now', async () => {
    site = await makeSite();
    const now = Date.now();
    const id = await site.receive({ command: 'rmail', args: ['r@y.example'], sender: 's@x.example' }, RMAIL_PAYLOAD);
    await site.spool.moveJob(site.spool.ref('in', 'hub', id), 'failed');
    const ahead = now + 200 * DAY;
    await writeState(site.spool, 'hub', id, {
      attempts: 1,
      tx: { '0': { accepted: [], failed: [{ address: 'r@y.example', status: '5.1.1', diagnostic: 'x-unix; sendmail exited 67' }], noticed: false } },
      noticeRetry: { since: new Date(ahead).toISOString(), attempts: 1, nextAttempt: new Date(ahead + backoffMs(1)).toISOString() },
      failed: { reason: '<r@y.example>: x-unix; sendmail exited 67', at: new Date(ahead).toISOString(), status: '5.1.1', noticeSent: false },
    });
    await runJobs({ config: site.config, spool: site.spool, env: site.env, now: () => new Date(now) });
    expect(site.sendmailCalls().map((c) => c.argv.slice(2, 3)[0])).toEqual(['<>']);
    expect((await readState(site.spool, 'hub', id))?.failed?.noticeSent).toBe(true);
  });

  it('a notice deferred again "since" a time the clock has not reached: its lifetime counts from now (else it could never be given up)', async () => {
    site = await makeSite({ exits: '75' });
    const now = Date.now();
    const id = await site.receive({ command: 'rmail', args: ['r@y.example'], sender: 's@x.example' }, RMAIL_PAYLOAD);
    await site.spool.moveJob(site.spool.ref('in', 'hub', id), 'failed');
    const ahead = now + 200 * DAY;
    await writeState(site.spool, 'hub', id, {
      attempts: 1,
      tx: { '0': { accepted: [], failed: [{ address: 'r@y.example', status: '5.1.1', diagnostic: 'x-unix; sendmail exited 67' }], noticed: false } },
      noticeRetry: { since: new Date(ahead).toISOString(), attempts: 1, nextAttempt: new Date(ahead + backoffMs(1)).toISOString() },
      failed: { reason: '<r@y.example>: x-unix; sendmail exited 67', at: new Date(ahead).toISOString(), status: '5.1.1', noticeSent: false },
    });
    await runJobs({ config: site.config, spool: site.spool, env: site.env, now: () => new Date(now) });
    expect((await readState(site.spool, 'hub', id))?.noticeRetry).toEqual({ since: new Date(now).toISOString(), attempts: 2, nextAttempt: new Date(now + backoffMs(2)).toISOString() });
  });

  it('a job made "in the future" by a peer whose clock is ahead still ends: its lifetime counts from its arrival here (before: retried every 4 h until that time came)', async () => {
    site = await makeSite({ exits: '75' });
    const now = Date.now();
    const id = await site.receive({ command: 'rmail', args: ['r@y.example'], created: new Date(now + 10 * 365 * DAY).toISOString() }, RMAIL_PAYLOAD);
    // it arrived 6 days ago (by our clock), and the MTA has deferred it since
    const file = site.spool.ref('in', 'hub', id).path;
    utimesSync(file, new Date(now - 6 * DAY), new Date(now - 6 * DAY));
    const summary = await runJobs({ config: site.config, spool: site.spool, env: site.env, now: () => new Date(now) });
    expect(summary).toEqual({ done: 0, retry: 0, failed: 1, skipped: 0 });
    expect((await readState(site.spool, 'hub', id))?.failed).toMatchObject({ status: '4.4.7' });
    // one that arrived a day ago waits
    const young = await site.receive({ command: 'rmail', args: ['q@y.example'], created: new Date(now + 10 * 365 * DAY).toISOString() }, RMAIL_PAYLOAD);
    utimesSync(site.spool.ref('in', 'hub', young).path, new Date(now - DAY), new Date(now - DAY));
    expect(await runJobs({ config: site.config, spool: site.spool, env: site.env, now: () => new Date(now) })).toEqual({ done: 0, retry: 1, failed: 0, skipped: 0 });
  });

  it('one whose arrival lies ahead too (this clock was ahead when it came, set back since) ends queue_lifetime after a run first saw it, not when the clock catches up', async () => {
    site = await makeSite({ exits: '75' });
    const now = Date.now();
    const ahead = new Date(now + 365 * DAY);
    const id = await site.receive({ command: 'rmail', args: ['r@y.example'], created: ahead.toISOString() }, RMAIL_PAYLOAD);
    utimesSync(site.spool.ref('in', 'hub', id).path, ahead, ahead);
    const run = (at: number) => runJobs({ config: site!.config, spool: site!.spool, env: site!.env, now: () => new Date(at), force: true });
    expect(await run(now)).toEqual({ done: 0, retry: 1, failed: 0, skipped: 0 });
    expect(await run(now + 4 * DAY)).toEqual({ done: 0, retry: 1, failed: 0, skipped: 0 });
    expect(await run(now + 6 * DAY)).toEqual({ done: 0, retry: 0, failed: 1, skipped: 0 });
    expect((await readState(site.spool, 'hub', id))?.failed).toMatchObject({ status: '4.4.7' });
  });
});
