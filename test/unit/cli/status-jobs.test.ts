// req-audit #5: `mailbag status --jobs [PEER]` shows each received job waiting in in/ with
// the runner's record (attempts, next attempt, last error), so an admin sees why mail is
// stuck without retrying it. And req-audit #4: `mailbag failed NOSUCHPEER` and `mailbag
// status NOSUCHPEER` agree (an unknown peer with nothing queued is an error, 75).

import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { main as statusMain, type JobsReport } from '../../../lib/cli/status.js';
import { main as failedMain } from '../../../lib/cli/failed.js';
import { main as runMain } from '../../../lib/cli/run-jobs.js';
import { MailbagError } from '../../../lib/errors.js';
import { cliCommand as cmd, makeSite, RMAIL_PAYLOAD, type Site } from '../runner/helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

async function refused(f: () => Promise<unknown>): Promise<MailbagError> {
  try {
    await f();
  } catch (err) {
    expect(err).toBeInstanceOf(MailbagError);
    return err as MailbagError;
  }
  throw new Error('no error');
}

describe('mailbag status --jobs', () => {
  it('lists each waiting job with attempts, next attempt and last error, and retries nothing', async () => {
    site = await makeSite({ exits: 'stuck@y.example=75,0', toml: '' });
    site.env.FAKE_SENDMAIL_STDERR = 'mailbox of stuck is over quota';
    const stuck = await site.receive({ command: 'rmail', args: ['stuck@y.example'], sender: 's@x.example', recipients: ['stuck@y.example'] }, RMAIL_PAYLOAD);
    const fine = await site.receive({ command: 'rmail', args: ['ok@y.example'], sender: 's@x.example', recipients: ['ok@y.example'] }, RMAIL_PAYLOAD);
    const r = await cmd(runMain, site, ['--quiet']);
    expect(r.out).toMatch(/run: 1 done, 1 to retry/);
    const fresh = await site.receive({ command: 'rmail', args: ['new@y.example'], sender: 't@x.example', recipients: ['new@y.example'] }, RMAIL_PAYLOAD);
    const calls = site.sendmailCalls().length;

    const text = await cmd(statusMain, site, ['--jobs']);
    expect(text.code).toBe(0);
    const lines = text.out.split('\n');
    expect(lines[0]).toMatch(/^site home, spool /);
    const at = lines.findIndex((l) => l.startsWith(`hub/${stuck}  rmail  from <s@x.example>  to <stuck@y.example>  `));
    expect(at, text.out).toBeGreaterThan(0);
    expect(lines[at]).toMatch(/received \d+s ago$/);
    expect(lines[at + 1]).toMatch(/^ {4}1 attempt; next attempt \S+ \(in \d+[smh]/);
    expect(lines[at + 1]).toContain('last error: ');
    expect(lines[at + 1]).toContain('over quota');
    const n = lines.findIndex((l) => l.startsWith(`hub/${fresh}  rmail  from <t@x.example>  to <new@y.example>`));
    expect(lines[n + 1]).toBe('    not tried yet: the next mailbag run delivers it');
    expect(text.out).not.toContain(fine); // delivered: no longer waiting

    const json = JSON.parse((await cmd(statusMain, site, ['--jobs', '--json', 'hub'])).out) as JobsReport;
    expect(json.version).toBe(1);
    expect(json.jobs.map((j) => j.id)).toEqual([stuck, fresh]);
    expect(json.jobs[0]).toMatchObject({ peer: 'hub', command: 'rmail', sender: 's@x.example', recipients: ['stuck@y.example'], attempts: 1, startedAt: null });
    expect(Date.parse(json.jobs[0]!.nextAttempt!)).toBeGreaterThan(Date.now());
    expect(json.jobs[0]!.lastError).toContain('over quota');
    expect(json.jobs[1]).toMatchObject({ attempts: 0, nextAttempt: null, lastError: null });
    expect(json.jobs[0]!.bytes).toBeGreaterThan(RMAIL_PAYLOAD.length);
    // looking did not hand anything to the MTA
    expect(site.sendmailCalls()).toHaveLength(calls);
  });

  it('says so when nothing waits; an unknown peer with nothing queued is an error (75), as for status', async () => {
    site = await makeSite();
    expect((await cmd(statusMain, site, ['--jobs'])).out).toMatch(/\nno received jobs waiting\n$/);
    expect((await cmd(statusMain, site, ['--jobs', 'hub'])).out).toMatch(/\nno received jobs waiting for hub\n$/);
    const e = await refused(() => cmd(statusMain, site!, ['--jobs', 'nosuchpeer']));
    expect(e.exitCode).toBe(75);
    expect(e.message).toContain('unknown peer "nosuchpeer"');
  });
});

describe('mailbag failed PEER', () => {
  it('an unknown peer with no failed jobs is an error (75, 4.3.5) like mailbag status PEER; a known one with none is not', async () => {
    site = await makeSite();
    const s = await refused(() => cmd(statusMain, site!, ['nosuchpeer']));
    const f = await refused(() => cmd(failedMain, site!, ['nosuchpeer']));
    expect([f.exitCode, f.status, f.message]).toEqual([s.exitCode, s.status, s.message]);
    expect(f.exitCode).toBe(75);
    expect(await cmd(failedMain, site, ['hub'])).toEqual({ code: 0, out: 'no failed jobs for hub\n', err: '' });
  });

  it('a peer no longer configured still lists its failed jobs', async () => {
    site = await makeSite({ exits: '67' });
    const id = await site.receive({ command: 'rmail', args: ['r@y.example'], sender: 's@x.example', recipients: ['r@y.example'] }, RMAIL_PAYLOAD);
    await cmd(runMain, site, ['--quiet']);
    const { renameSync, mkdirSync } = await import('node:fs');
    mkdirSync(join(site.spool.root, 'failed', 'gone'), { recursive: true });
    renameSync(join(site.spool.root, 'failed', 'hub', id), join(site.spool.root, 'failed', 'gone', id));
    const r = await cmd(failedMain, site, ['gone']);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`gone/${id}`);
  });
});
