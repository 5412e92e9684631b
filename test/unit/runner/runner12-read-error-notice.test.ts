// A failed job's notice when its transactions cannot be read *for now* (EMFILE, ENFILE,
// EIO): Runner.transactionsOf returned undefined on any error, and its callers then sent
// the owed notice as one for the whole job, to every recipient not accepted, so a
// recipient already told in its own transaction's notice was told again (DESIGN.md
// promise 2). Now only a job that cannot be parsed falls back; a read that fails for now
// leaves the notice waiting for the next run, said, and a failure of the run (spool).
// The read error is put into lib/deliver/bsmtp-index (the one reader of a BSMTP job's
// transactions) as the errno error a failed open(2) gives Node: no descriptors to wait for.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';
import { loadConfig } from '../../../lib/config/index.js';
import { runJobs } from '../../../lib/runner/runner.js';
import { makeSite, type Site } from './helpers.js';

const fault = vi.hoisted(() => ({ armed: false, reads: 0 }));
vi.mock('../../../lib/deliver/bsmtp-index.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../../lib/deliver/bsmtp-index.js')>();
  return {
    ...real,
    indexBsmtp: async (path: string, offset: number) => {
      if (fault.armed) {
        fault.reads++;
        throw Object.assign(new Error(`EMFILE: too many open files, open '${path}'`), { errno: -24, code: 'EMFILE', syscall: 'open', path });
      }
      return real.indexBsmtp(path, offset);
    },
  };
});

let site: Site | undefined;
afterEach(() => {
  fault.armed = false;
  fault.reads = 0;
  site?.cleanup();
  site = undefined;
});

const BSMTP = ['r1', 'r2'].map((r) => `MAIL FROM:<s@x.example>\nRCPT TO:<${r}@y.example>\nDATA\nSubject: to ${r}\n\nhello ${r}\n.\n`).join('');
const LATER = new Date(Date.now() + 30 * 86_400_000);

/** the notices the fake sendmail was given: the recipients each reports */
function notices(s: Site): string[][] {
  return s.sendmailCalls()
    .filter((c) => /^Content-Type: multipart\/report/im.test(c.stdin.toString()))
    .map((c) => [...c.stdin.toString().matchAll(/^Final-Recipient: rfc822; ?(\S+)/gim)].map((m) => m[1]!));
}

function configWith(s: Site, peers: string): ReturnType<typeof loadConfig> {
  const file = join(s.dir, `${peers.length}.toml`);
  writeFileSync(file, ['site = "home"', `spool = "${s.spool.root}"`, '[delivery]', 'method = "sendmail"', `sendmail = "${s.config.delivery.sendmail}"`, 'mta = "sendmail"', 'concurrency = 1', peers].join('\n'));
  return loadConfig({ path: file, env: {} });
}

const HUB = '[peers.hub]\ntransport = "command"\ncommand = ["true"]\n';

it('a notice owed from failed/ whose job cannot be read now waits for the next run: not sent as one for the whole job', async () => {
  site = await makeSite();
  const s = site;
  const config = configWith(s, HUB);
  await s.receive({ command: 'rsmtp', sender: 's@x.example', recipients: ['r1@y.example', 'r2@y.example'] }, BSMTP);
  // r1 refused for good (its notice sent), r2 deferred
  await runJobs({ config, spool: s.spool, env: { ...s.env, FAKE_SENDMAIL_EXITS: 'r1@y.example=67,r2@y.example=75,0' } });
  expect(notices(s)).toEqual([['r1@y.example']]);
  // past the queue lifetime r2 fails too; the MTA defers its notice: owed from failed/
  await runJobs({ config, spool: s.spool, env: { ...s.env, FAKE_SENDMAIL_EXITS: 's@x.example=75,0' }, now: () => LATER });
  expect(notices(s)).toEqual([['r1@y.example'], ['r2@y.example']]);
  expect(await s.spool.listJobs('failed', 'hub')).toHaveLength(1);

  // the next run cannot read the job's transactions (out of descriptors)
  fault.armed = true;
  const lines: string[] = [];
  const summary = await runJobs({ config, spool: s.spool, env: { ...s.env, FAKE_SENDMAIL_EXITS: '0' }, now: () => LATER, force: true, log: (l) => lines.push(l) });
  expect(fault.reads).toBeGreaterThan(0);
  // nothing sent: before, one notice for the whole job named r1 again
  expect(notices(s), lines.join('\n')).toEqual([['r1@y.example'], ['r2@y.example']]);
  expect(lines.join('\n')).toMatch(/hub\/\S+: the notice waits for the next run: out of file descriptors: EMFILE/);
  expect(summary.unfinished?.map((u) => [u.peer, u.error.code])).toEqual([['hub', 'spool']]);

  // readable again: the notice goes, for r2 only, once
  fault.armed = false;
  await runJobs({ config, spool: s.spool, env: { ...s.env, FAKE_SENDMAIL_EXITS: '0' }, now: () => LATER, force: true });
  await runJobs({ config, spool: s.spool, env: { ...s.env, FAKE_SENDMAIL_EXITS: '0' }, now: () => LATER, force: true });
  expect(notices(s)).toEqual([['r1@y.example'], ['r2@y.example'], ['r2@y.example']]);
});

it('a job of a removed peer that expires while it cannot be read now fails at the next run, with a notice for the recipients not told yet', async () => {
  site = await makeSite();
  const s = site;
  await s.receive({ command: 'rsmtp', sender: 's@x.example', recipients: ['r1@y.example', 'r2@y.example'] }, BSMTP);
  await runJobs({ config: configWith(s, HUB), spool: s.spool, env: { ...s.env, FAKE_SENDMAIL_EXITS: 'r1@y.example=67,r2@y.example=75,0' } });
  expect(notices(s)).toEqual([['r1@y.example']]);
  // hub removed from the configuration while the job waits in in/hub; it is past its lifetime
  const removed = configWith(s, '[peers.other]\ntransport = "command"\ncommand = ["true"]\n');
  fault.armed = true;
  const lines: string[] = [];
  const summary = await runJobs({ config: removed, spool: s.spool, env: { ...s.env, FAKE_SENDMAIL_EXITS: '0' }, now: () => LATER, log: (l) => lines.push(l) });
  expect(fault.reads).toBeGreaterThan(0);
  // before: failed with one notice for the whole job, r1 told again
  expect(notices(s), lines.join('\n')).toEqual([['r1@y.example']]);
  expect(await s.spool.listJobs('in', 'hub')).toHaveLength(1);
  expect(lines.join('\n')).toMatch(/hub\/\S+: fails at the next run: out of file descriptors: EMFILE/);
  expect(summary.failed).toBe(0);
  expect(summary.unfinished?.map((u) => [u.peer, u.error.code])).toEqual([['hub', 'spool']]);

  fault.armed = false;
  const after: string[] = [];
  await runJobs({ config: removed, spool: s.spool, env: { ...s.env, FAKE_SENDMAIL_EXITS: '0' }, now: () => LATER, log: (l) => after.push(l) });
  expect(after.join('\n')).toMatch(/expired: not delivered within the queue lifetime .*hub is not a configured peer/);
  expect(notices(s)).toEqual([['r1@y.example'], ['r2@y.example']]);
});
