// Jobs we queued for a peer do not wait forever (DESIGN.md promise 4): one older than
// queue_lifetime, or one larger than the peer accepts, moves to failed/PEER with its
// reason, and its sender (never <>) gets one RFC 3464 notice, also while the peer
// cannot be reached.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PassThrough } from 'node:stream';
import { main as runMain } from '../../../lib/cli/run-jobs.js';
import { main as syncMain } from '../../../lib/cli/sync.js';
import type { CliIo } from '../../../lib/cli/io.js';
import { listFailed } from '../../../lib/runner/failed.js';
import { runJobs } from '../../../lib/runner/runner.js';
import { expireQueued, storeFor } from '../../../lib/session/index.js';
import { runSession } from '../../../lib/session/session.js';
import { createPair } from '../../../lib/transport/pair.js';
import { newJobId } from '../../../lib/job/index.js';
import { CAPS, session, makeSite as makeSessionSite } from '../session/sites.js';
import { makeSite, MESSAGE, RMAIL_PAYLOAD, type Site } from './helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
  vi.unstubAllEnvs();
});

const DAY = 86_400_000;

/** an rmail job from a!b!user, or with sender '' a BSMTP job with the null sender */
async function queue(s: Site, ageMs: number, sender: string, size = 0): Promise<string> {
  const made = Date.now() - ageMs;
  const id = newJobId(made);
  const command = sender === '' ? 'rsmtp' : 'rmail';
  const header = { id, from: 'home', to: 'hub', created: new Date(made).toISOString(), command, args: command === 'rmail' ? ['r@y.example'] : [], sender, recipients: ['r@y.example'] };
  const text = command === 'rmail' ? RMAIL_PAYLOAD : `MAIL FROM:<>\nRCPT TO:<r@y.example>\nDATA\n${MESSAGE}.\n`;
  const payload = Buffer.concat([Buffer.from(text), Buffer.alloc(size, 0x61)]);
  await s.spool.writeJob('out', 'hub', header, payload);
  return id;
}

function io(s: Site): CliIo & { out: () => string } {
  const stdout = new PassThrough();
  const chunks: Buffer[] = [];
  stdout.on('data', (c: Buffer) => chunks.push(c));
  return { stdin: new PassThrough(), stdout, stderr: new PassThrough(), env: s.env, cwd: s.dir, isTTY: false, out: () => Buffer.concat(chunks).toString() };
}

describe('outgoing jobs older than queue_lifetime', () => {
  it('fail from a cron\'d `mailbag run` while the peer is down: one notice to the sender, none to <>, the young job stays', async () => {
    site = await makeSite();
    const old = await queue(site, 6 * DAY, 'a@x.example');
    const oldNull = await queue(site, 6 * DAY, '');
    const young = await queue(site, 4 * DAY, 'b@x.example');

    const cli = io(site);
    expect(await runMain(['--config', site.config.file!], cli)).toBe(0);
    expect(cli.out()).toContain(`hub/${old}: failed: not delivered within the queue lifetime`);

    expect((await site.spool.listJobs('out', 'hub')).map((r) => r.id)).toEqual([young]);
    const failed = await listFailed(site.spool, 'hub');
    expect(failed.map((f) => [f.id, f.reason, f.noticeSent])).toEqual([
      [old, 'not delivered to hub within 5 days', true],
      [oldNull, 'not delivered to hub within 5 days', true],
    ]);
    const calls = site.sendmailCalls();
    expect(calls).toHaveLength(1);
    expect(calls[0]!.argv.slice(0, 3)).toEqual(['-oi', '-f', '<>']);
    expect(calls[0]!.argv.at(-1)).toBe('c!a!b!user');
    const text = calls[0]!.stdin.toString();
    expect(text).toMatch(/^Content-Type: multipart\/report; report-type=delivery-status;/m);
    expect(text).toMatch(/^Final-Recipient: rfc822; r@y\.example\r$/m);
    expect(text).toMatch(/^Status: 4\.4\.7\r$/m);
    expect(text).toMatch(/not delivered to hub within 5 days/);

    // the next run has nothing more to say
    expect(await runMain(['--config', site.config.file!, '--quiet'], io(site))).toBe(0);
    expect(site.sendmailCalls()).toHaveLength(1);
  });

  it('fail from `mailbag sync` when the peer cannot be reached, and the notice goes out', async () => {
    site = await makeSite();
    vi.stubEnv('FAKE_SENDMAIL_DIR', site.calls);
    vi.stubEnv('FAKE_SENDMAIL_EXITS', '0');
    const old = await queue(site, 6 * DAY, 'a@x.example');
    const young = await queue(site, DAY, 'b@x.example');
    // the peer's command (`true`) ends at once: no session
    await expect(syncMain(['hub', '--config', site.config.file!], io(site))).rejects.toThrow();
    expect((await site.spool.listJobs('out', 'hub')).map((r) => r.id)).toEqual([young]);
    expect((await listFailed(site.spool, 'hub')).map((f) => [f.id, f.noticeSent])).toEqual([[old, true]]);
    expect(site.sendmailCalls()).toHaveLength(1);
  });

  it('are left alone while a session with the peer holds its lock', async () => {
    site = await makeSite();
    await queue(site, 6 * DAY, 'a@x.example');
    const lock = await site.spool.lock('session-hub');
    try {
      expect(await expireQueued(site.config, 'hub', { spool: site.spool })).toBeUndefined();
      expect(await site.spool.listJobs('out', 'hub')).toHaveLength(1);
    } finally {
      await lock.release();
    }
    expect(await expireQueued(site.config, 'hub', { spool: site.spool })).toHaveLength(1);
    expect(await site.spool.listJobs('out', 'hub')).toHaveLength(0);
  });
});

describe('an outgoing job larger than the peer accepts', () => {
  it('fails in the session with the peer\'s cap in its reason; the others cross; its sender gets one notice', async () => {
    site = await makeSite();
    const big = await queue(site, 0, 'a@x.example', 3 * 1024 * 1024);
    const small = await queue(site, 0, 'b@x.example');
    const hub = await makeSessionSite(site.dir, 'hub');
    const home = storeFor(site.config, site.spool, 'hub', site.config.peers.hub);
    await home.open();
    const [a, b] = createPair();
    const [rHome] = await Promise.all([
      runSession({ link: a, store: home, site: 'home', peer: 'hub', codecs: ['br', 'gzip'], caps: CAPS, keepaliveMs: 500 }),
      session(hub, 'home', b, { caps: { ...CAPS, maxJob: 1024 * 1024 } }),
    ]);
    expect(rHome.held).toEqual([big]);
    expect(rHome.sent.jobs).toBe(1);
    expect((await hub.spool.listJobs('in', 'home')).map((r) => r.id)).toEqual([small]);
    expect(await site.spool.listJobs('out', 'hub')).toEqual([]);
    const failed = await listFailed(site.spool, 'hub');
    expect(failed.map((f) => f.id)).toEqual([big]);
    expect(failed[0]!.reason).toMatch(/larger than hub accepts \(its limit of 1M per message\)/);

    await runJobs({ config: site.config, spool: site.spool, env: site.env, log: () => undefined });
    const calls = site.sendmailCalls();
    expect(calls).toHaveLength(1);
    expect(calls[0]!.argv.at(-1)).toBe('c!a!b!user');
    expect(calls[0]!.stdin.toString()).toMatch(/^Status: 5\.3\.4\r$/m);
    expect(calls[0]!.stdin.toString()).toMatch(/its limit of 1M per message/);
  });
});
