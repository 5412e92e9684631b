// A job the peer refused for good moves to failed/PEER on the sending side (the
// session does that); `mailbag run` then owes its sender a notice even though
// nothing came in from that peer.
import { afterEach, describe, expect, it } from 'vitest';
import { runJobs } from '../../../lib/runner/runner.js';
import { listFailed } from '../../../lib/runner/failed.js';
import { storeFor } from '../../../lib/session/index.js';
import { newJobId } from '../../../lib/job/index.js';
import { makeSite, RMAIL_PAYLOAD, type Site } from './helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

describe('a job the peer refused for good', () => {
  it('gets one RFC 3464 notice to its sender from the next run, with nothing in in/', async () => {
    site = await makeSite();
    const id = newJobId();
    const header = { id, from: 'home', to: 'hub', created: new Date().toISOString(), command: 'rmail', args: ['r@y.example'], sender: 'a@x.example', recipients: ['r@y.example'] };
    await site.spool.writeJob('out', 'hub', header, Buffer.from(RMAIL_PAYLOAD));
    const store = storeFor(site.config, site.spool, 'hub', site.config.peers.hub);
    await store.open();
    expect(await store.failRefusedJob('0'.repeat(64), id, 'hub refused it: command not accepted')).toBe(true);
    expect(await site.spool.listJobs('in', 'hub')).toEqual([]);

    const summary = await runJobs({ config: site.config, spool: site.spool, env: site.env, log: () => undefined });
    expect(summary.done + summary.failed).toBe(0);
    const calls = site.sendmailCalls();
    expect(calls).toHaveLength(1);
    expect(calls[0]!.argv.slice(0, 3)).toEqual(['-oi', '-f', '<>']);
    expect(calls[0]!.argv.at(-1)).toBe('c!a!b!user');
    const text = calls[0]!.stdin.toString();
    expect(text).toMatch(/^Content-Type: multipart\/report; report-type=delivery-status;/m);
    expect(text).toMatch(/^Final-Recipient: rfc822; r@y\.example\r$/m);
    expect(text).toMatch(/hub refused it: command not accepted/);
    const failed = await listFailed(site.spool);
    expect(failed.map((f) => [f.id, f.noticeSent])).toEqual([[id, true]]);

    // a second run sends nothing more
    await runJobs({ config: site.config, spool: site.spool, env: site.env, log: () => undefined });
    expect(site.sendmailCalls()).toHaveLength(1);
  });
});
