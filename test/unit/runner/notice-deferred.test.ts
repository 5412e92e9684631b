// A notice the MTA keeps deferring (sendmail exit 75) has an end, as Postfix's bounces do
// (bounce_queue_lifetime): it is tried again after the job's backoff, not at every run,
// and once it has been deferred for longer than queue_lifetime it is given up — said
// once, recorded in the job's state (mailbag failed: "notice given up", not "sent" nor
// "pending"), counted in the run's summary, and the run exits 0 (nothing for cron to
// retry). Before, every mailbag run sent it again, for ever.

import { afterEach, describe, expect, it } from 'vitest';
import { main as failedMain } from '../../../lib/cli/failed.js';
import { main as runMain } from '../../../lib/cli/run-jobs.js';
import { listFailed, retryFailed, findFailed } from '../../../lib/runner/failed.js';
import { backoffMs, runJobs } from '../../../lib/runner/runner.js';
import { readState, writeState } from '../../../lib/runner/state.js';
import { cliCommand, makeSite, MESSAGE, RMAIL_PAYLOAD, type Site } from './helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

const MIN = 60_000;
const HOUR = 3_600_000;

async function run(s: Site, at: number, force = false) {
  const log: string[] = [];
  const summary = await runJobs({ config: s.config, spool: s.spool, env: s.env, force, now: () => new Date(at), log: (l) => log.push(l) });
  return { summary, log };
}

/** the fake sendmail's calls that were notices (null sender) */
function notices(s: Site): number {
  return s.sendmailCalls().filter((c) => c.argv[2] === '<>').length;
}

describe('a notice the MTA defers', () => {
  it('of a failed job: retried after the backoff, not at every run; given up after queue_lifetime, once, and recorded', async () => {
    // the job is refused for good (67); its notice to c!a!b!user is deferred (75), always
    site = await makeSite({ exits: 'r@y.example=67,c!a!b!user=75' });
    const t0 = Date.now();
    const id = await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    const first = await run(site, t0);
    expect(first.summary).toEqual({ done: 0, retry: 0, failed: 1, skipped: 0 });
    expect(notices(site)).toBe(1);
    expect(first.log).toContain(`hub/${id}: notice to <c!a!b!user>: will retry after ${new Date(t0 + backoffMs(1)).toISOString()}: x-unix; sendmail exited 75`);
    let st = await readState(site.spool, 'hub', id);
    expect(st?.noticeRetry).toEqual({ since: new Date(t0).toISOString(), attempts: 1, nextAttempt: new Date(t0 + backoffMs(1)).toISOString() });
    expect(st?.failed?.noticeSent).toBe(false);

    // a minute later: not due (before: sent again at every run)
    await run(site, t0 + MIN);
    expect(notices(site)).toBe(1);
    // after the backoff: again, and the next wait doubles, as a job's would
    await run(site, t0 + backoffMs(1) + 1000);
    expect(notices(site)).toBe(2);
    st = await readState(site.spool, 'hub', id);
    expect(st?.noticeRetry?.attempts).toBe(2);
    expect(Date.parse(st!.noticeRetry!.nextAttempt)).toBe(t0 + backoffMs(1) + 1000 + backoffMs(2));
    // --now ignores the backoff, as it does for jobs
    await run(site, t0 + backoffMs(1) + 2000, true);
    expect(notices(site)).toBe(3);

    // mailbag failed: pending, deferred since t0
    const pending = await listFailed(site.spool, 'hub');
    expect(pending[0]).toMatchObject({ id, noticeSent: false, noticeDeferredSince: new Date(t0).toISOString() });
    expect(pending[0]!.noticeGivenUp).toBeUndefined();
    expect((await cliCommand(failedMain, site, ['hub'])).out).toContain(`notice pending (deferred since ${new Date(t0).toISOString()}, next attempt after `);

    // still deferred just within the lifetime: not given up
    const life = site.config.queueLifetimeMs;
    const within = await run(site, t0 + life - MIN, true);
    expect(within.summary.noticesGivenUp).toBeUndefined();
    expect(notices(site)).toBe(4);
    // the first try after the lifetime that is deferred again: given up, said once
    const end = t0 + life + HOUR;
    const last = await run(site, end);
    expect(notices(site)).toBe(5);
    expect(last.summary).toEqual({ done: 0, retry: 0, failed: 0, skipped: 0, noticesGivenUp: 1 });
    const said = last.log.filter((l) => l.includes('given up'));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(new RegExp(`^hub/${id}: notice to <c!a!b!user> given up: the mail system has deferred it since ${new Date(t0).toISOString()} \\(5 attempts\\), longer than the queue lifetime \\(120 h\\): x-unix; .* exited 75`));
    st = await readState(site.spool, 'hub', id);
    expect(st?.failed).toMatchObject({ noticeSent: false, noticeGivenUp: new Date(end).toISOString() });

    // never again, also with --now
    const after = await run(site, end + 10 * 86_400_000, true);
    expect(notices(site)).toBe(5);
    expect(after.summary.noticesGivenUp).toBeUndefined();
    const f = (await listFailed(site.spool, 'hub'))[0]!;
    expect(f).toMatchObject({ noticeSent: false, noticeGivenUp: new Date(end).toISOString() });
    const text = (await cliCommand(failedMain, site, ['hub'])).out;
    expect(text).toContain(`notice given up ${new Date(end).toISOString()} (the mail system deferred it from ${new Date(t0).toISOString()} on)`);
    expect(text).not.toMatch(/notice (sent|pending)/);
    const json = JSON.parse((await cliCommand(failedMain, site, ['--json'])).out) as Array<Record<string, unknown>>;
    expect(json[0]).toMatchObject({ noticeSent: false, noticeGivenUp: new Date(end).toISOString() });

    // mailbag retry starts over: a new failure owes a new notice, with a new lifetime
    await retryFailed(site.spool, await findFailed(site.spool, `hub/${id}`), new Date(end + 10 * 86_400_000));
    st = await readState(site.spool, 'hub', id);
    expect(st?.noticeRetry).toBeUndefined();
    expect(st?.failed).toBeUndefined();
  });

  it('--now ignores the backoff of earlier runs, but a notice deferred in this run is not tried again in it', async () => {
    // the job is refused (67) and fails at once; its notice, deferred when the refusal is
    // recorded, was tried a second time by the failure's own notice step with --now
    site = await makeSite({ exits: 'r@y.example=67,c!a!b!user=75' });
    const id = await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    const t0 = Date.now();
    const first = await run(site, t0, true);
    expect(first.summary.failed).toBe(1);
    expect(notices(site)).toBe(1);
    expect(first.log.filter((l) => l.includes('will retry'))).toHaveLength(1);
    expect((await readState(site.spool, 'hub', id))?.noticeRetry).toEqual({ since: new Date(t0).toISOString(), attempts: 1, nextAttempt: new Date(t0 + backoffMs(1)).toISOString() });
    // the next --now run a minute later: tried again (from failed/), once
    await run(site, t0 + MIN, true);
    expect(notices(site)).toBe(2);
    expect((await readState(site.spool, 'hub', id))?.noticeRetry?.attempts).toBe(2);
  });

  it('a refusal that joins the owed notices later gets its own queue_lifetime: not given up with the earlier one', async () => {
    // a@ refused at t0, its notice deferred; b@ deferred until day 4, then refused: its
    // notice (deferred too) had been owed one day when the first one's lifetime ran out
    site = await makeSite({ exits: 'a@y.example=67,b@y.example=75,s@x.example=75' });
    site.config.delivery.mta = 'sendmail';
    const payload = `MAIL FROM:<s@x.example>\nRCPT TO:<a@y.example>\nDATA\n${MESSAGE}.\nMAIL FROM:<s@x.example>\nRCPT TO:<b@y.example>\nDATA\n${MESSAGE}.\n`;
    const id = await site.receive({ command: 'rsmtp' }, payload);
    const t0 = Date.now();
    expect((await run(site, t0)).summary.retry).toBe(1);
    site.env.FAKE_SENDMAIL_EXITS = 'a@y.example=67,b@y.example=67,s@x.example=75';
    const day4 = t0 + 4 * 24 * HOUR;
    expect((await run(site, day4)).summary.failed).toBe(1);
    const life = site.config.queueLifetimeMs;
    // past a@'s lifetime, not b@'s: deferred again, kept
    const mid = await run(site, t0 + life + HOUR);
    expect(mid.summary.noticesGivenUp).toBeUndefined();
    expect((await readState(site.spool, 'hub', id))?.failed?.noticeGivenUp).toBeUndefined();
    // the MTA takes notices again: both go out
    site.env.FAKE_SENDMAIL_EXITS = 'a@y.example=67,b@y.example=67,s@x.example=0';
    const before = notices(site);
    await run(site, t0 + life + 6 * HOUR);
    expect(notices(site)).toBe(before + 2);
    expect((await readState(site.spool, 'hub', id))?.failed?.noticeSent).toBe(true);
  });

  it('mailbag run --quiet that gives one up: exit 0, the summary says so (the line itself is not printed)', async () => {
    site = await makeSite({ exits: 'r@y.example=67,c!a!b!user=75' });
    const id = await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    const r1 = await cliCommand(runMain, site, ['--quiet']);
    expect(r1).toEqual({ code: 0, out: 'run: 0 done, 0 to retry, 1 failed, 0 skipped\n', err: '' });
    // deferred since six days, due now
    const st = (await readState(site.spool, 'hub', id))!;
    const six = new Date(Date.now() - 6 * 86_400_000).toISOString();
    await writeState(site.spool, 'hub', id, { ...st, noticeRetry: { since: six, attempts: 12, nextAttempt: six } });
    const r2 = await cliCommand(runMain, site, ['--quiet']);
    expect(r2).toEqual({ code: 0, out: 'run: 0 done, 0 to retry, 0 failed, 0 skipped, 1 notice given up\n', err: '' });
    const loud = await cliCommand(runMain, site, []);
    expect(loud).toEqual({ code: 0, out: 'run: 0 done, 0 to retry, 0 failed, 0 skipped\n', err: '' });
    expect(notices(site)).toBe(2);
  });

  it('of a job still in in/ (one recipient refused, another deferred): the notice waits for the backoff too', async () => {
    // two transactions, one sendmail call each: a@ refused (67), b@ deferred (75); the
    // notice to s@x.example deferred (75)
    site = await makeSite({ exits: 'a@y.example=67,b@y.example=75,s@x.example=75' });
    site.config.delivery.mta = 'sendmail';
    const payload = `MAIL FROM:<s@x.example>\nRCPT TO:<a@y.example>\nDATA\n${MESSAGE}.\nMAIL FROM:<s@x.example>\nRCPT TO:<b@y.example>\nDATA\n${MESSAGE}.\n`;
    const id = await site.receive({ command: 'rsmtp' }, payload);
    const t0 = Date.now();
    const first = await run(site, t0);
    expect(first.summary.retry).toBe(1);
    expect(notices(site)).toBe(1);
    const calls = site.sendmailCalls().length;
    let st = await readState(site.spool, 'hub', id);
    expect(st?.noticeRetry?.attempts).toBe(1);
    // a minute later: neither the job nor its notice (before: the notice at every run)
    const soon = await run(site, t0 + MIN);
    expect(soon.summary.skipped).toBe(1);
    expect(site.sendmailCalls()).toHaveLength(calls);
    // after the backoff both are tried again: b@ accepted now, the notice deferred again.
    // Delivery is over: the job fails with a@'s refusal (not, 5 days later, as "not
    // delivered within the queue lifetime"); its notice waits in failed/ for its backoff
    site.env.FAKE_SENDMAIL_EXITS = 'a@y.example=67,b@y.example=0,s@x.example=75';
    const t1 = t0 + backoffMs(1) + 1000;
    const later = await run(site, t1);
    expect(notices(site)).toBe(2);
    expect(later.summary).toEqual({ done: 0, retry: 0, failed: 1, skipped: 0 });
    const [f] = await listFailed(site.spool, 'hub');
    expect(f).toMatchObject({ id, noticeSent: false, noticeDeferredSince: new Date(t0).toISOString() });
    expect(f!.reason).toMatch(/^<a@y\.example>: x-unix; sendmail exited 67/);
    st = await readState(site.spool, 'hub', id);
    expect(st?.noticeRetry?.attempts).toBe(2);
    expect(st?.tx['1']?.accepted).toEqual(['b@y.example']);
    // not due a minute later; then the MTA takes it: sent once, recorded, the retry gone
    site.env.FAKE_SENDMAIL_EXITS = 'a@y.example=67,s@x.example=0';
    await run(site, t1 + MIN);
    expect(notices(site)).toBe(2);
    await run(site, t1 + backoffMs(2) + 1000);
    expect(notices(site)).toBe(3);
    st = await readState(site.spool, 'hub', id);
    expect(st?.failed?.noticeSent).toBe(true);
    expect(st?.noticeRetry).toBeUndefined();
    const notice = site.sendmailCalls().filter((c) => c.argv[2] === '<>').at(-1)!;
    expect(notice.argv).toEqual(['-oi', '-f', '<>', '--', 's@x.example']);
    expect(notice.stdin.toString()).toMatch(/^Final-Recipient: rfc822; a@y\.example\r$/m);
    expect(notice.stdin.toString()).not.toMatch(/b@y\.example/);
    await run(site, t1 + 10 * HOUR, true);
    expect(notices(site)).toBe(3);
  });
});
