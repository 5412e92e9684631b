// A failed job's notices read from failed/ by the configuration of the day: a BSMTP job
// whose peer no longer accepts rsmtp (the admin took it out of `accept`, or removed the
// peer) was no longer read per transaction, and the notice it still owed went as one
// for the whole job, to every recipient not accepted: the recipients already told of a
// refusal in their own transaction's notice were told again (DESIGN.md promise 2). A job
// delivered per transaction (its record holds them) is read as it was delivered.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { loadConfig } from '../../../lib/config/index.js';
import { runJobs } from '../../../lib/runner/runner.js';
import { makeSite, type Site } from './helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

const BSMTP = ['r1', 'r2'].map((r) => `MAIL FROM:<s@x.example>\nRCPT TO:<${r}@y.example>\nDATA\nSubject: to ${r}\n\nhello ${r}\n.\n`).join('');

/** the notices the fake sendmail was given (to the sender): the recipients each reports */
function notices(s: Site): string[][] {
  return s.sendmailCalls()
    .filter((c) => /^Content-Type: multipart\/report/im.test(c.stdin.toString()))
    .map((c) => [...c.stdin.toString().matchAll(/^Final-Recipient: rfc822; ?(\S+)/gim)].map((m) => m[1]!));
}

for (const [what, toml] of [
  ['the peer no longer accepts rsmtp', '[peers.hub]\ntransport = "command"\ncommand = ["true"]\naccept = ["rmail"]\n'],
  ['the peer was removed from the configuration', '[peers.other]\ntransport = "command"\ncommand = ["true"]\n'],
] as const) {
  it(`a notice a failed BSMTP job still owes goes for its own transaction only when ${what}`, async () => {
    site = await makeSite();
    const s = site;
    // a sendmail per transaction (the fake one speaks no SMTP for -bs)
    const configWith = (peers: string): ReturnType<typeof loadConfig> => {
      const file = join(s.dir, `${peers.length}.toml`);
      writeFileSync(file, ['site = "home"', `spool = "${s.spool.root}"`, '[delivery]', 'method = "sendmail"', `sendmail = "${s.config.delivery.sendmail}"`, 'mta = "sendmail"', peers].join('\n'));
      return loadConfig({ path: file, env: {} });
    };
    const config = configWith('[peers.hub]\ntransport = "command"\ncommand = ["true"]\n');
    await s.receive({ command: 'rsmtp', sender: 's@x.example', recipients: ['r1@y.example', 'r2@y.example'] }, BSMTP);
    // r1 refused for good (its notice sent), r2 deferred
    await runJobs({ config, spool: s.spool, env: { ...s.env, FAKE_SENDMAIL_EXITS: 'r1@y.example=67,r2@y.example=75,0' } });
    expect(notices(s)).toEqual([['r1@y.example']]);
    // past the queue lifetime: r2 fails too; its notice is deferred by the MTA
    const later = new Date(Date.now() + 30 * 86_400_000);
    await runJobs({ config, spool: s.spool, env: { ...s.env, FAKE_SENDMAIL_EXITS: 'r2@y.example=75,s@x.example=75,0' }, now: () => later });
    expect(notices(s)).toEqual([['r1@y.example'], ['r2@y.example']]);
    expect((await s.spool.listJobs('failed', 'hub')).length).toBe(1);
    // the configuration changes; the notice goes out from failed/
    const changed = configWith(toml);
    await runJobs({ config: changed, spool: s.spool, env: { ...s.env, FAKE_SENDMAIL_EXITS: '0' }, now: () => later, force: true });
    // r1 was told once, in its own transaction's notice: not again
    expect(notices(s)).toEqual([['r1@y.example'], ['r2@y.example'], ['r2@y.example']]);
  });
}

it('a job delivered in part whose peer was removed from the configuration expires with a notice for the recipients not told yet', async () => {
  site = await makeSite();
  const s = site;
  const configWith = (peers: string): ReturnType<typeof loadConfig> => {
    const file = join(s.dir, `${peers.length}.toml`);
    writeFileSync(file, ['site = "home"', `spool = "${s.spool.root}"`, '[delivery]', 'method = "sendmail"', `sendmail = "${s.config.delivery.sendmail}"`, 'mta = "sendmail"', peers].join('\n'));
    return loadConfig({ path: file, env: {} });
  };
  await s.receive({ command: 'rsmtp', sender: 's@x.example', recipients: ['r1@y.example', 'r2@y.example'] }, BSMTP);
  await runJobs({ config: configWith('[peers.hub]\ntransport = "command"\ncommand = ["true"]\n'), spool: s.spool, env: { ...s.env, FAKE_SENDMAIL_EXITS: 'r1@y.example=67,r2@y.example=75,0' } });
  expect(notices(s)).toEqual([['r1@y.example']]);
  // hub removed while the job waits in in/hub; it expires there (Runner.unknownPeer)
  const lines: string[] = [];
  await runJobs({ config: configWith('[peers.other]\ntransport = "command"\ncommand = ["true"]\n'), spool: s.spool, env: { ...s.env, FAKE_SENDMAIL_EXITS: '0' }, now: () => new Date(Date.now() + 30 * 86_400_000), log: (l) => lines.push(l) });
  expect(lines.join('\n')).toMatch(/expired: not delivered within the queue lifetime .*hub is not a configured peer/);
  expect(notices(s)).toEqual([['r1@y.example'], ['r2@y.example']]);
});
