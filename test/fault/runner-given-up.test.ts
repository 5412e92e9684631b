// A notice given up (the MTA deferred it for longer than queue_lifetime) is said once:
// `mailbag run` (the built binary) killed with SIGKILL between the record that says so
// and the line (MAILBAG_FAULT=runner-notice-given-up), then run again. The record is
// committed first and the line follows it, like every other state change of the runner:
// a kill between leaves the record (the notice is never tried again) and no line to say
// twice. Before, the line came first: the kill there left the notice owed, and the next
// run tried it again and printed the line again (cron mailed it twice).

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { newJobId, type JobHeader } from '../../lib/job/index.js';
import { readState, writeState } from '../../lib/runner/state.js';
import { mailbagBin } from '../helpers/mta-common.js';
import { need } from '../helpers/need.js';
import { makeRunnerSite, runRunner } from './runner-site.js';

const ready = need('the built mailbag', [mailbagBin], 'run npm run build (npm test does it first)');

describe.skipIf(!ready)('a notice given up, the runner killed between its record and its line', () => {
  it('is recorded, tried no more and never said twice', async () => {
    const site = await makeRunnerSite('mailbag-given-up-');
    const { calls, spool } = site;
    // a job that failed 6 days ago; its notice deferred since then, due now
    const day = 86_400_000;
    const made = Date.now() - 6 * day;
    const h: JobHeader = { id: newJobId(made), from: 'hub', to: 'home', created: new Date(made).toISOString(), command: 'rmail', args: ['r@y.example'], sender: 's@x.example', recipients: ['r@y.example'] };
    await spool.writeJob('failed', 'hub', h, Buffer.from('From s@x.example  Sun Nov 22 04:10:00 2026\nSubject: t\n\nbody\n'));
    const since = new Date(made).toISOString();
    await writeState(spool, 'hub', h.id, {
      attempts: 1,
      tx: { '0': { accepted: [], failed: [{ address: 'r@y.example', status: '5.1.1', diagnostic: 'x-unix; sendmail exited 67' }], noticed: false } },
      noticeRetry: { since, attempts: 9, nextAttempt: new Date(Date.now() - 60_000).toISOString() },
      failed: { reason: '<r@y.example>: x-unix; sendmail exited 67', at: since, status: '5.1.1', noticeSent: false },
    });
    // every notice deferred (75)
    const runner = (fault: string) => runRunner(site, { exits: '75', fault });
    const killed = await runner('runner-notice-given-up');
    expect(killed.signal).toBe('SIGKILL');
    const again = await runner('');
    expect(again.code, again.stderr).toBe(0);

    const said = `${killed.stdout.toString()}${again.stdout.toString()}`.split('\n').filter((l) => l.includes(' given up: '));
    expect(said.length).toBeLessThanOrEqual(1);
    // the notice was tried once: the record of its end survived the kill
    expect(readdirSync(calls).filter((f) => f.endsWith('.argv'))).toHaveLength(1);
    expect(readFileSync(join(calls, '1.argv'), 'utf8').split('\n')[2]).toBe('<>');
    const st = await readState(spool, 'hub', h.id);
    expect(st?.failed?.noticeGivenUp).toBeDefined();
    expect(again.stdout.toString()).toBe('run: 0 done, 0 to retry, 0 failed, 0 skipped\n');
  });
});
