import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { runJobs, backoffMs, actionArgv } from '../../../lib/runner/runner.js';
import { listFailed, findFailed, retryFailed } from '../../../lib/runner/failed.js';
import { readState } from '../../../lib/runner/state.js';
import { makeSite, MESSAGE, RMAIL_PAYLOAD, type Site } from './helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

async function run(s: Site, force = false, now?: Date) {
  const log: string[] = [];
  const summary = await runJobs({ config: s.config, spool: s.spool, env: s.env, force, log: (l) => log.push(l), ...(now ? { now: () => now } : {}) });
  return { summary, log };
}

describe('runner with the sendmail method', () => {
  it('delivers an rmail job: sender from the bang path, recipients after --, message after the envelope; job and record gone', async () => {
    site = await makeSite();
    const id = await site.receive({ command: 'rmail', args: ['r@y.example', 'q@z.example'], sender: 'ignored', recipients: ['r@y.example', 'q@z.example'] }, RMAIL_PAYLOAD);
    const { summary } = await run(site);
    expect(summary).toEqual({ done: 1, retry: 0, failed: 0, skipped: 0 });
    const calls = site.sendmailCalls();
    expect(calls).toHaveLength(1);
    expect(calls[0]!.argv).toEqual(['-oi', '-f', 'c!a!b!user', '--', 'r@y.example', 'q@z.example']);
    expect(calls[0]!.argv).not.toContain('-oee');
    expect(calls[0]!.stdin.toString()).toBe(MESSAGE);
    expect(await site.spool.listJobs('in', 'hub')).toEqual([]);
    expect(await readState(site.spool, 'hub', id)).toBeUndefined();
  });

  it('exit 75 is retried with backoff, then delivered once', async () => {
    site = await makeSite({ exits: '75,0' });
    const id = await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    const first = await run(site);
    expect(first.summary.retry).toBe(1);
    const st = await readState(site.spool, 'hub', id);
    expect(st?.attempts).toBe(1);
    expect(Date.parse(st!.nextAttempt!) - Date.now()).toBeGreaterThan(backoffMs(1) - 60_000);
    // not due yet: skipped, sendmail not called again
    const second = await run(site);
    expect(second.summary.skipped).toBe(1);
    expect(site.sendmailCalls()).toHaveLength(1);
    const third = await run(site, false, new Date(Date.now() + backoffMs(1) + 1000));
    expect(third.summary.done).toBe(1);
    expect(site.sendmailCalls()).toHaveLength(2);
    expect(await site.spool.listJobs('in', 'hub')).toEqual([]);
  });

  it('a permanent exit moves the job to failed/ and sends one RFC 3464 notice with the null sender', async () => {
    site = await makeSite({ exits: 'r@y.example=67,0' });
    await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    const { summary } = await run(site);
    expect(summary.failed).toBe(1);
    const failed = await listFailed(site.spool);
    expect(failed).toHaveLength(1);
    expect(failed[0]!.reason).toMatch(/^<r@y\.example>: x-unix; sendmail exited 67/);
    expect(failed[0]!.noticeSent).toBe(true);
    const calls = site.sendmailCalls();
    expect(calls).toHaveLength(2);
    const notice = calls[1]!;
    expect(notice.argv).toEqual(['-oi', '-f', '<>', '--', 'c!a!b!user']);
    const text = notice.stdin.toString();
    expect(text).toMatch(/^Content-Type: multipart\/report; report-type=delivery-status;/m);
    expect(text).toMatch(/^Final-Recipient: rfc822; r@y\.example\r$/m);
    expect(text).toMatch(/^Action: failed\r$/m);
    expect(text).toMatch(/^Status: 5\.1\.1\r$/m);
    expect(text).toContain('Subject: hello');
    // no retry afterwards
    await run(site, true);
    expect(site.sendmailCalls()).toHaveLength(2);
  });

  it('never sends a notice to the null sender', async () => {
    site = await makeSite({ exits: '67' });
    site.config.delivery.mta = 'sendmail'; // one sendmail per transaction (Postfix would get -bs)
    const payload = `MAIL FROM:<>\nRCPT TO:<r@y.example>\nDATA\n${MESSAGE}.\n`;
    await site.receive({ command: 'rsmtp' }, payload);
    await run(site);
    const calls = site.sendmailCalls();
    expect(calls).toHaveLength(1);
    expect(calls[0]!.argv.slice(0, 3)).toEqual(['-oi', '-f', '<>']);
  });

  it('a forbidden command fails the job with its reason and notifies the sender', async () => {
    site = await makeSite();
    const id = await site.receive({ command: 'rnews', sender: 's@x.example', recipients: ['r@y.example'] }, 'whatever');
    const { summary } = await run(site);
    expect(summary.failed).toBe(1);
    expect((await site.spool.listJobs('failed', 'hub')).map((r) => r.id)).toEqual([id]);
    const failed = await listFailed(site.spool);
    expect(failed[0]!.reason).toMatch(/command "rnews" is not allowed for peer hub/);
    expect(failed[0]!.noticeSent).toBe(true);
    const calls = site.sendmailCalls();
    expect(calls).toHaveLength(1);
    expect(calls[0]!.argv).toEqual(['-oi', '-f', '<>', '--', 's@x.example']);
    expect(calls[0]!.stdin.toString()).toMatch(/^Status: 5\.7\.1\r$/m);
  });

  it('a job older than queue_lifetime fails; mailbag retry puts it back and it is delivered', async () => {
    site = await makeSite({ toml: '', exits: '0' });
    const old = new Date(Date.now() - 6 * 86_400_000).toISOString();
    const id = await site.receive({ command: 'rmail', args: ['r@y.example'], created: old }, RMAIL_PAYLOAD);
    const { summary } = await run(site);
    expect(summary.failed).toBe(1);
    const calls = site.sendmailCalls();
    expect(calls).toHaveLength(1); // only the notice
    expect(calls[0]!.argv).toEqual(['-oi', '-f', '<>', '--', 'c!a!b!user']);
    expect(calls[0]!.stdin.toString()).toMatch(/^Status: 4\.4\.7\r$/m);
    const ref = await findFailed(site.spool, `hub/${id}`);
    await retryFailed(site.spool, ref);
    const again = await run(site);
    expect(again.summary.done).toBe(1);
    expect(site.sendmailCalls()[1]!.argv).toEqual(['-oi', '-f', 'c!a!b!user', '--', 'r@y.example']);
  });

  it('a bad envelope fails the job (65-class) and notifies the header sender', async () => {
    site = await makeSite();
    await site.receive({ command: 'rmail', args: ['r@y.example'], sender: 's@x.example', recipients: ['r@y.example'] }, MESSAGE);
    const { summary } = await run(site);
    expect(summary.failed).toBe(1);
    expect((await listFailed(site.spool))[0]!.reason).toMatch(/From/);
  });

  it('admin actions run as argv with the arguments after --, no shell', async () => {
    site = await makeSite({ toml: 'accept = ["rmail", "rnews"]\n[peers.hub.actions]\nrnews = ["' + (await import('./helpers.js')).FAKE_SENDMAIL + '", "-x"]' });
    await site.receive({ command: 'rnews', args: ['a b', '$(touch /tmp/pwned)'] }, 'article\n');
    const { summary } = await run(site);
    expect(summary.done).toBe(1);
    expect(site.sendmailCalls()[0]!.argv).toEqual(['-x', '--', 'a b', '$(touch /tmp/pwned)']);
    expect(site.sendmailCalls()[0]!.stdin.toString()).toBe('article\n');
    expect(actionArgv(['/bin/x'], [])).toEqual([]);
  });

  it('DSN flags from a BSMTP job go on the sendmail command line, but never to Exim (-bS, parameters stripped)', async () => {
    const payload = `MAIL FROM:<s@x.example> RET=HDRS ENVID=abc+2B1\nRCPT TO:<r@y.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;r@y.example\nDATA\n${MESSAGE.replace('\n.leading', '\n..leading')}.\n`;
    site = await makeSite({ toml: '' });
    site.config.delivery.mta = 'sendmail'; // sendmail 8: one call per transaction, DSN flags on its command line
    await site.receive({ command: 'rsmtp' }, payload);
    await run(site);
    expect(site.sendmailCalls()[0]!.argv).toEqual(['-oi', '-f', 's@x.example', '-N', 'success,failure', '-R', 'hdrs', '-V', 'abc+1', '--', 'r@y.example']);
    expect(site.sendmailCalls()[0]!.stdin.toString()).toBe(MESSAGE);
    site.cleanup();
    site = await makeSite({ toml: '' });
    site.config.delivery.mta = 'exim';
    await site.receive({ command: 'rsmtp' }, payload);
    await run(site);
    // Exim gets the batch through -bS, parameters stripped
    const c = site.sendmailCalls()[0]!;
    expect(c.argv).toEqual(['-bS']);
    expect(c.stdin.toString()).toBe(`MAIL FROM:<s@x.example>\nRCPT TO:<r@y.example>\nDATA\n${MESSAGE.replace('\n.leading', '\n..leading')}.\n`);
    expect(existsSync(site.dir)).toBe(true);
  });
});
