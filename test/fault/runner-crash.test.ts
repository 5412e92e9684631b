// The runner (`mailbag run`, the built binary) killed with SIGKILL at each named point
// (MAILBAG_FAULT), then run again: nothing is lost, and the only duplicates are the two
// docs/spool.md names — a message the MTA took just before the kill at
// runner-after-handover is handed over again, and a notice sent just before the kill at
// runner-after-notice is sent again. (A power cut can also bring back a job removed in
// the last, not yet fsynced batch: that needs a VM to show, not a SIGKILL.) The MTA is the fake sendmail, which records every
// call: exactly what is needed to count deliveries and notices.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { newJobId, type JobHeader } from '../../lib/job/index.js';
import { mailbagBin } from '../helpers/mta-common.js';
import { need } from '../helpers/need.js';
import { makeRunnerSite, runRunner, type RunnerSite } from './runner-site.js';

const ready = need('the built mailbag', [mailbagBin], 'run npm run build (npm test does it first)');

const MESSAGE = 'Subject: crash test\n\nbody\n';
const PAYLOAD = `From s@x.example  Sun Nov 22 04:10:00 2026\n${MESSAGE}`;

type Site = RunnerSite;
const makeSite = (): Promise<RunnerSite> => makeRunnerSite();

async function receive(s: Site, recipients: string[]): Promise<string> {
  const h: JobHeader = { id: newJobId(), from: 'hub', to: 'home', created: new Date().toISOString(), command: 'rmail', args: recipients, sender: 's@x.example', recipients };
  await s.spool.writeJob('in', 'hub', h, Buffer.from(PAYLOAD));
  return h.id;
}

function runner(s: Site, exits: string, fault?: string) {
  return runRunner(s, { exits, ...(fault ? { fault } : {}), args: ['--now'] });
}

/** Calls of the fake sendmail: deliveries (per recipient) and notices (-f <>). */
function tally(s: Site): { deliveries: string[]; notices: string[] } {
  const n = readdirSync(s.calls).filter((f) => f.endsWith('.argv')).length;
  const deliveries: string[] = [];
  const notices: string[] = [];
  for (let i = 1; i <= n; i++) {
    const argv = readFileSync(join(s.calls, `${i}.argv`), 'utf8').split('\n').slice(0, -1);
    const rcpts = argv.slice(argv.indexOf('--') + 1);
    (argv[2] === '<>' ? notices : deliveries).push(...rcpts);
  }
  return { deliveries, notices };
}

const queues = async (s: Site) => ({
  in: (await s.spool.listJobs('in', 'hub')).length,
  failed: (await s.spool.listJobs('failed', 'hub')).length,
  records: existsSync(join(s.spool.root, 'run', 'hub')) ? readdirSync(join(s.spool.root, 'run', 'hub')).length : 0,
});

describe.skipIf(!ready)('runner killed at each point, then run again', () => {
  // delivery that succeeds: [point, deliveries after the rerun]
  const success: Array<[string, number]> = [
    ['runner-after-started', 1],
    ['runner-after-handover', 2], // the documented window: the MTA took it, we had not recorded it
    ['runner-after-remove', 1],
    ['runner-after-batch', 1],
  ];
  for (const [point, expected] of success) {
    it(`delivered: killed at ${point}`, async () => {
      const s = await makeSite();
      await receive(s, ['r@y.example']);
      const killed = await runner(s, '0', point);
      expect(killed.signal).toBe('SIGKILL');
      const again = await runner(s, '0');
      expect(again.code, again.stderr).toBe(0);
      expect(tally(s)).toEqual({ deliveries: Array(expected).fill('r@y.example'), notices: [] });
      expect(await queues(s)).toEqual({ in: 0, failed: 0, records: 0 });
    });
  }

  // a recipient refused for good (exit 67): hand-overs (attempts) and notices after the rerun
  const failure: Array<[string, { deliveries: number; notices: number }]> = [
    ['runner-after-started', { deliveries: 1, notices: 1 }],
    ['runner-after-handover', { deliveries: 2, notices: 1 }],
    ['runner-after-progress', { deliveries: 1, notices: 1 }],
    ['runner-after-notice', { deliveries: 1, notices: 2 }], // documented: notice sent, not yet recorded
    ['runner-after-fail-record', { deliveries: 1, notices: 1 }],
    ['runner-after-fail-move', { deliveries: 1, notices: 1 }],
  ];
  for (const [point, expected] of failure) {
    it(`refused for good: killed at ${point}`, async () => {
      const s = await makeSite();
      const id = await receive(s, ['bad@y.example']);
      const killed = await runner(s, 'bad@y.example=67,0', point);
      expect(killed.signal).toBe('SIGKILL');
      const again = await runner(s, 'bad@y.example=67,0');
      expect(again.code, again.stderr).toBe(0);
      const t = tally(s);
      expect(t.deliveries.length).toBe(expected.deliveries);
      expect(t.notices.length).toBe(expected.notices);
      expect(new Set(t.notices)).toEqual(new Set(['s@x.example']));
      expect(await queues(s)).toEqual({ in: 0, failed: 1, records: 1 });
      expect((await s.spool.listJobs('failed', 'hub'))[0]!.id).toBe(id);
      // nothing more on a third run
      await runner(s, '0');
      expect(tally(s).notices.length).toBe(expected.notices);
    });
  }

  // a BSMTP job: one transaction refused for good, one accepted; the notice deferred (75)
  // in the killed run and the next, accepted in the third. The job fails with the refusal
  // once both are settled (it does not wait in in/ for its notice); the accepted recipient
  // keeps its delivery; no run dies (after runner-after-fail-record the notice was read
  // from the job's old place in in/: an uncaught ENOENT, exit 75, before 8ed9ff8)
  const deferredNotice = ['runner-after-handover', 'runner-after-progress', 'runner-after-notice', 'runner-after-fail-record', 'runner-after-fail-move'];
  for (const point of deferredNotice) {
    it(`BSMTP, one refused, one accepted, the notice deferred: killed at ${point}`, async () => {
      const s = await makeSite();
      const h: JobHeader = { id: newJobId(), from: 'hub', to: 'home', created: new Date().toISOString(), command: 'rsmtp', args: [], sender: 's@x.example', recipients: ['bad@y.example', 'ok@y.example'] };
      const tx = (rcpt: string): string => `MAIL FROM:<s@x.example>\nRCPT TO:<${rcpt}>\nDATA\n${MESSAGE}.\n`;
      await s.spool.writeJob('in', 'hub', h, Buffer.from(tx('bad@y.example') + tx('ok@y.example')));
      const deferring = 'bad@y.example=67,s@x.example=75,0';
      expect((await runner(s, deferring, point)).signal).toBe('SIGKILL');
      const again = await runner(s, deferring);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr).toBe('');
      expect(await queues(s)).toEqual({ in: 0, failed: 1, records: 1 });
      const accepting = await runner(s, 'bad@y.example=67,0');
      expect(accepting.code, accepting.stderr).toBe(0);
      const t = tally(s);
      // ok@ handed over once (each kill point comes first with bad@'s transaction)
      expect(t.deliveries.filter((r) => r === 'ok@y.example')).toEqual(['ok@y.example']);
      expect(t.notices.every((r) => r === 's@x.example')).toBe(true);
      const state = JSON.parse(readFileSync(join(s.spool.root, 'run', 'hub', h.id), 'utf8').split('\n')[1]!) as { failed: { noticeSent: boolean; reason: string }; tx: Record<string, { accepted: string[] }> };
      expect(state.failed.noticeSent).toBe(true);
      expect(state.failed.reason).toMatch(/^<bad@y\.example>: /);
      expect(state.tx['1']!.accepted).toEqual(['ok@y.example']);
      // the notice accepted: never again
      const sent = t.notices.length;
      await runner(s, '0');
      expect(tally(s).notices.length).toBe(sent);
    });
  }
});
