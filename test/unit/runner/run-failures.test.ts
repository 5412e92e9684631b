// Failures of a run that must not pass for success: a runner lock file that is not a
// lock (no other runner is at work: nothing would ever run the peer's jobs), a run step
// of a session whose runner fails (sync, serve and dispatch report it and sync exits 75,
// also with --quiet), one unreadable job in failed/ (it stopped every peer's delivery),
// and `mailbag run --peer` with a name the configuration does not have.

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { main as runMain } from '../../../lib/cli/run-jobs.js';
import { failureLine } from '../../../lib/cli/run.js';
import { asMailbagError } from '../../../lib/errors.js';
import { newJobId } from '../../../lib/job/id.js';
import { runJobs } from '../../../lib/runner/runner.js';
import { readState, writeState, emptyState } from '../../../lib/runner/state.js';
import { runReceivedJobs } from '../../../lib/session/index.js';
import { cliCommand, makeSite, RMAIL_PAYLOAD, type Site } from './helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});


describe('failures a run must not hide', () => {
  it('a runner lock file that is not a lock: mailbag run exits 75 naming it (not "another runner is at work", exit 0)', async () => {
    site = await makeSite();
    await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    const junk = join(site.spool.root, 'locks', 'runner.hub.lock');
    writeFileSync(junk, 'leftover\n');
    const r = await cliCommand(runMain, site, []);
    expect(r.code).toBe(75);
    expect(r.err).toBe(`4.3.0 mailbag: hub: the received jobs wait in in/hub/ for the next mailbag run: spool: ${junk} is not a mailbag lock file; remove it if no mailbag is running\n`);
    expect(site.sendmailCalls()).toHaveLength(0);
  });

  it('one peer whose runner fails (a runner lock file that is not a lock) stops no other peer\'s delivery: said after, 75', async () => {
    site = await makeSite({ toml: '[peers.hub2]\ntransport = "command"\ncommand = ["true"]' });
    // hub2 sorts after hub in in/, and a peer listed first whose runner fails used to end the run there
    const id = await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    await site.spool.writeJob('in', 'hub2', { id: newJobId(), from: 'hub2', to: 'home', created: new Date().toISOString(), command: 'rmail', args: ['r2@y.example'], sender: '', recipients: [] }, Buffer.from(RMAIL_PAYLOAD));
    for (const bad of ['hub', 'hub2']) {
      writeFileSync(join(site.spool.root, 'locks', `runner.${bad}.lock`), 'leftover\n');
      const good = bad === 'hub' ? 'hub2' : 'hub';
      const r = await cliCommand(runMain, site, []);
      // before: runJobs threw at the bad peer: the good one's job waited (or was run and the run still ended there)
      expect(r.code, r.out + r.err).toBe(75);
      expect(r.err).toMatch(new RegExp(`^4\\.3\\.0 mailbag: ${bad}: the received jobs wait in in/${bad}/ for the next mailbag run: spool: .* is not a mailbag lock file; remove it if no mailbag is running\n$`));
      expect(r.out).toMatch(new RegExp(`^${good}/[0-9a-f]+: done$`, 'm'));
      rmSync(join(site.spool.root, 'locks', `runner.${bad}.lock`));
    }
    expect(site.sendmailCalls()).toHaveLength(2);
    expect(id).toBeTruthy();
  });

  it('a session\'s run step whose runner fails returns the failure (sync prints it and exits 75), not a log line alone', async () => {
    site = await makeSite();
    await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    writeFileSync(join(site.spool.root, 'locks', 'runner.hub.lock'), 'leftover\n');
    const lines: string[] = [];
    const summary = await runReceivedJobs(site.config, 'hub', (l) => lines.push(l));
    expect(summary?.unfinished).toHaveLength(1);
    const e = summary!.unfinished![0]!;
    expect(e.peer).toBe('hub');
    expect(e.error.exitCode).toBe(75);
    expect(e.error.message).toMatch(/^hub: the received jobs wait in in\/hub\/ for the next mailbag run: spool: .* is not a mailbag lock file/);
  });

  it('an unreadable job in failed/ that still owes a notice does not stop the delivery of the other jobs', async () => {
    site = await makeSite({ toml: '[peers.hub2]\ntransport = "command"\ncommand = ["true"]' });
    const bad = newJobId();
    await site.spool.ensureDir('failed', 'hub');
    writeFileSync(join(site.spool.root, 'failed', 'hub', bad), 'not a job at all\n');
    await writeState(site.spool, 'hub', bad, { ...emptyState(), failed: { reason: 'refused by hub', at: new Date().toISOString(), status: '5.7.1', noticeSent: false } });
    const id = await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    const lines: string[] = [];
    const summary = await runJobs({ config: site.config, spool: site.spool, env: site.env, log: (l) => lines.push(l) });
    expect(summary).toMatchObject({ done: 1, retry: 0, failed: 0 });
    expect(lines).toContain(`hub/${id}: done`);
    expect(lines.some((l) => l.startsWith(`hub/${bad}: no notice can be sent: `))).toBe(true);
    // said once: the next run does not try again
    expect((await readState(site.spool, 'hub', bad))?.failed?.noticeSent).toBe(true);
    const again: string[] = [];
    await runJobs({ config: site.config, spool: site.spool, env: site.env, log: (l) => again.push(l) });
    expect(again.filter((l) => l.includes(bad))).toEqual([]);
  });

  it('mailbag run --peer NAME for a peer the configuration does not have: 75 and 4.3.5 (a typo ran nothing and exited 0)', async () => {
    site = await makeSite();
    await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    const err = await cliCommand(runMain, site, ['--peer', 'hbu']).then(() => undefined, (e: unknown) => e);
    expect(asMailbagError(err).exitCode).toBe(75);
    expect(failureLine(err, 'mailbag run')).toBe('4.3.5 mailbag run: no peer "hbu" in the configuration (peers: hub)');
    expect(site.sendmailCalls()).toHaveLength(0);
  });

  it('a job whose runner record this mailbag cannot read (another version) fails the run, once per peer, and the other jobs are run', async () => {
    site = await makeSite();
    const stuck = await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    await site.spool.ensureDir('run');
    await site.spool.ensureDir('run', 'hub');
    writeFileSync(join(site.spool.root, 'run', 'hub', stuck), 'mailbag-run 9\n{}\n');
    const ok = await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    const r = await cliCommand(runMain, site, []);
    // before: "1 to retry" and exit 0 at every run, the job never run and never expired
    expect(r.code).toBe(75);
    expect(r.out).toContain(`hub/${ok}: done`);
    expect(r.out).toContain('run: 1 done, 1 to retry, 0 failed, 0 skipped');
    expect(r.err).toBe(`4.3.0 mailbag: hub: 1 job(s) could not be run (hub/${stuck}: ${join(site.spool.root, 'run', 'hub', stuck)}: not a runner record of a version this mailbag knows ("mailbag-run 9"))\n`);
  });

  it('a job whose runner record is cut short or corrupt (a disk, a hand) fails the run naming the file, and the other jobs are run', async () => {
    site = await makeSite();
    const stuck = await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    await site.spool.ensureDir('run');
    await site.spool.ensureDir('run', 'hub');
    const file = join(site.spool.root, 'run', 'hub', stuck);
    writeFileSync(file, 'mailbag-run 1\n{"attempts":1,"tx":{"0":{"accep');
    const ok = await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    const r = await cliCommand(runMain, site, ['--quiet']);
    // before: "unexpected error: …" without the file, exit 0 at every run (nothing at all
    // with --quiet): the job never run, never expired
    expect(r.code).toBe(75);
    expect(r.out).toBe('run: 1 done, 1 to retry, 0 failed, 0 skipped\n');
    expect(r.err).toMatch(new RegExp(`^4\\.3\\.0 mailbag: hub: 1 job\\(s\\) could not be run \\(hub/${stuck}: ${file}: runner record does not read \\(cut short or corrupt: .*\\); remove it to run the job afresh \\(recipients it recorded as accepted would get the message again\\)\\)\n$`));
    // the job is kept, the other delivered
    expect((await site.spool.listJobs('in', 'hub')).map((j) => j.id)).toEqual([stuck]);
    expect(site.sendmailCalls()).toHaveLength(1);
    expect(ok).toBeTruthy();
  });

  it('expiring one peer\'s old outgoing jobs fails (its ledger does not read): the other peers\' jobs are still run, then the failure is said, 75', async () => {
    site = await makeSite({ toml: '[peers.hub2]\ntransport = "command"\ncommand = ["true"]' });
    // an outgoing job for hub2 older than the queue lifetime (5 days), and hub2's ledger of another version
    const old = newJobId(Date.now() - 6 * 86_400_000);
    await site.spool.writeJob('out', 'hub2', { id: old, from: 'home', to: 'hub2', created: new Date(Date.now() - 6 * 86_400_000).toISOString(), command: 'rmail', args: ['r@y.example'], sender: 's@x.example', recipients: ['r@y.example'] }, Buffer.from(RMAIL_PAYLOAD));
    mkdirSync(join(site.spool.root, 'ledger'), { recursive: true });
    writeFileSync(join(site.spool.root, 'ledger', 'hub2'), 'mailbag-ledger 9\n');
    const id = await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    // before: the run stopped at hub2's expiry (exit 75) and hub's job waited
    const r = await cliCommand(runMain, site, []);
    expect(r.code).toBe(75);
    expect(r.out).toContain(`hub/${id}: done`);
    expect(r.err).toMatch(/^4\.3\.0 mailbag: hub2: cannot expire the old outgoing jobs: ledger .*: unknown version 9\n$/);
    expect(site.sendmailCalls()).toHaveLength(1);
  });
});
