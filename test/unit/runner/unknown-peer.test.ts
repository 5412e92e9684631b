// A peer removed from the configuration while jobs for it wait: its received jobs are not
// run (no whitelist to run them by) and its queued ones are not sent, but neither waits
// for ever. Older than queue_lifetime, each fails for good (4.4.7) and its sender gets a
// notice, as for a configured peer (DESIGN.md promise 4: nothing retries silently for
// ever). Before, `mailbag run` skipped them at every run (exit 0, with --quiet not a
// word) and never expired them: mail lost without a notice.

import { afterEach, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main as dispatchMain } from '../../../lib/cli/dispatch.js';
import { main as runMain } from '../../../lib/cli/run-jobs.js';
import { newJobId, type JobHeader } from '../../../lib/job/index.js';
import { readState } from '../../../lib/runner/state.js';
import { cliCommand, makeSite, RMAIL_PAYLOAD, type Site } from './helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

const DAY = 86_400_000;

function header(made: number, from: string, to: string, rcpt: string): JobHeader {
  return { id: newJobId(made), from, to, created: new Date(made).toISOString(), command: 'rmail', args: [rcpt], sender: 's@x.example', recipients: [rcpt] };
}

describe('jobs of a peer no longer in the configuration', () => {
  it('received and queued ones older than queue_lifetime fail with a notice; younger received ones wait, said', async () => {
    site = await makeSite();
    const now = Date.now();
    const oldIn = header(now - 6 * DAY, 'gone', 'home', 'in-old@y.example');
    const youngIn = header(now - DAY, 'gone', 'home', 'in-young@y.example');
    const oldOut = header(now - 6 * DAY, 'home', 'gone', 'out-old@y.example');
    await site.spool.writeJob('in', 'gone', oldIn, Buffer.from(RMAIL_PAYLOAD));
    await site.spool.writeJob('in', 'gone', youngIn, Buffer.from(RMAIL_PAYLOAD));
    await site.spool.writeJob('out', 'gone', oldOut, Buffer.from(RMAIL_PAYLOAD));

    const r = await cliCommand(runMain, site, []);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(`gone/${oldOut.id}: failed: not delivered within the queue lifetime\n`);
    expect(r.out).toContain(`gone/${oldIn.id}: expired: not delivered within the queue lifetime (120 h): gone is not a configured peer\n`);
    expect(r.out).toContain('gone: not a configured peer; 1 inbound job(s) left alone, each fails once older than queue_lifetime (120 h)\n');
    expect(r.out).toMatch(/^run: 0 done, 0 to retry, 1 failed, 1 skipped\n$/m);
    expect((await site.spool.listJobs('in', 'gone')).map((j) => j.id)).toEqual([youngIn.id]);
    expect((await site.spool.listJobs('failed', 'gone')).map((j) => j.id).sort()).toEqual([oldIn.id, oldOut.id].sort());
    // one notice each, to the sender, with the null sender; the message never handed to the MTA
    const calls = site.sendmailCalls();
    expect(calls.map((c) => c.argv.slice(2).join(' ')).sort()).toEqual(['<> -- s@x.example', '<> -- s@x.example']);
    expect(calls.map((c) => c.stdin.toString()).join('\n')).toMatch(/Status: 4\.4\.7/);
    for (const id of [oldIn.id, oldOut.id]) expect((await readState(site.spool, 'gone', id))?.failed).toMatchObject({ status: '4.4.7', noticeSent: true });

    // the next run: nothing again
    const again = await cliCommand(runMain, site, ['--quiet']);
    expect(again.out).toBe('run: 0 done, 0 to retry, 0 failed, 1 skipped\n');
    expect(site.sendmailCalls()).toHaveLength(2);
  });

  it('mailbag dispatch expires the queued ones too, and sends their notices', async () => {
    site = await makeSite();
    // hub dials us (no host): dispatch has nobody to dial, only the expiry and its notices
    const toml = join(site.dir, 'hub.toml');
    writeFileSync(toml, `site = "home"\nspool = ${JSON.stringify(site.spool.root)}\n[delivery]\nsendmail = ${JSON.stringify(site.config.delivery.sendmail)}\nmta = "postfix"\n[peers.hub]\naccept = ["rmail"]\n`);
    const oldOut = header(Date.now() - 6 * DAY, 'home', 'gone', 'out-old@y.example');
    await site.spool.writeJob('out', 'gone', oldOut, Buffer.from(RMAIL_PAYLOAD));
    const r = await cliCommand(dispatchMain, site, [], toml);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(`gone/${oldOut.id}: failed: not delivered within the queue lifetime\n`);
    expect((await site.spool.listJobs('failed', 'gone')).map((j) => j.id)).toEqual([oldOut.id]);
    expect(site.sendmailCalls().map((c) => c.argv.slice(2).join(' '))).toEqual(['<> -- s@x.example']);
  });
});
