// A notice the MTA defers, said as "will retry after TIME", is said only once its record
// says so: `mailbag run` (the built binary) killed with SIGKILL at that line
// (MAILBAG_FAULT=runner-notice-deferred), then run again at once. The record of the
// deferral is committed first and the line follows it (as b64b752 did for the given-up
// line): a kill between leaves the record, so the next run keeps the backoff the line
// spoke of. Before, the line came first: the kill left no deferral recorded, and the next
// run tried the notice again at once, against the line's "after TIME".

import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { newJobId, type JobHeader } from '../../lib/job/index.js';
import { readState, writeState } from '../../lib/runner/state.js';
import { mailbagBin } from '../helpers/mta-common.js';
import { need } from '../helpers/need.js';
import { RMAIL_PAYLOAD } from '../unit/runner/helpers.js';
import { makeRunnerSite, runRunner } from './runner-site.js';

const ready = need('the built mailbag', [mailbagBin], 'run npm run build (npm test does it first)');

describe.skipIf(!ready)('a notice deferred, the runner killed between its record and its line', () => {
  it('the line is true: the notice waits for the time it names', async () => {
    const site = await makeRunnerSite('mailbag-notice-deferred-');
    const { calls, spool } = site;
    const h: JobHeader = { id: newJobId(), from: 'hub', to: 'home', created: new Date().toISOString(), command: 'rmail', args: ['r@y.example'], sender: 'c!a!b!user', recipients: ['r@y.example'] };
    await spool.writeJob('in', 'hub', h, Buffer.from(RMAIL_PAYLOAD));
    // the recipient refused for good (67), every notice deferred (75)
    const runner = (fault: string) => runRunner(site, { exits: 'r@y.example=67,75', fault });
    const killed = await runner('runner-notice-deferred');
    expect(killed.signal).toBe('SIGKILL');
    const again = await runner('');
    expect(again.code, again.stderr.toString()).toBe(0);

    // the notice (to <>'s sender, -f <>) was tried once: the second run kept its backoff
    const notices = readdirSync(calls).filter((f) => f.endsWith('.argv')).filter((f) => readFileSync(join(calls, f), 'utf8').split('\n')[2] === '<>');
    expect(notices).toHaveLength(1);
    const st = await readState(spool, 'hub', h.id);
    expect(st?.noticeRetry?.attempts).toBe(1);
    // a "will retry after TIME" said names the time recorded
    for (const l of `${killed.stdout.toString()}${again.stdout.toString()}`.split('\n').filter((x) => x.includes('will retry after'))) {
      expect(l).toContain(`will retry after ${st!.noticeRetry!.nextAttempt}`);
    }
  });
});

describe.skipIf(!ready)('a notice that can never be sent (its failed job does not read), the runner killed at its line', () => {
  it('the line is said once: the record that nobody can be told comes first', async () => {
    const site = await makeRunnerSite('mailbag-notice-unsendable-');
    const { dir, spool } = site;
    const id = newJobId();
    // a failed job whose file is not a job (a disk or a hand did this), its notice owed
    mkdirSync(join(dir, 'spool', 'failed', 'hub'), { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, 'spool', 'failed', 'hub', id), 'not a job\n', { mode: 0o600 });
    await writeState(spool, 'hub', id, { attempts: 1, tx: {}, failed: { reason: 'x', at: new Date().toISOString(), status: '5.1.1', noticeSent: false } });
    const runner = (fault: string) => runRunner(site, { fault });
    const killed = await runner('runner-notice-unsendable');
    expect(killed.signal).toBe('SIGKILL');
    const again = await runner('');
    const said = `${killed.stdout.toString()}${again.stdout.toString()}`.split('\n').filter((l) => l.includes('no notice can be sent'));
    expect(said.length).toBeLessThanOrEqual(1);
    expect((await readState(spool, 'hub', id))?.failed?.noticeSent).toBe(true);
  });
});
