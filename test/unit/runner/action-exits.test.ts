// An admin action's exit status is read as uuxqt reads a command's (DESIGN.md promise 4,
// formats.md "only 75 is temporary everywhere"): 75, a signal or a program that cannot
// run are temporary and the job is retried; any other non-zero exit fails it for good,
// and its notice then carries a permanent (5.x.x) status. Before, an action exiting 74
// (EX_IOERR) or 71 (EX_OSERR) failed the job for good with the 4.3.0 a sendmail's 74
// maps to: a notice saying "Action: failed" with a temporary status (RFC 3464 §2.3.4).

import { afterEach, describe, expect, it } from 'vitest';
import { runJobs } from '../../../lib/runner/runner.js';
import { readState } from '../../../lib/runner/state.js';
import { FAKE_SENDMAIL, makeSite, type Site } from './helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

async function actionSite(exits: string): Promise<Site> {
  return makeSite({ exits, toml: `accept = ["rnews"]\n[peers.hub.actions]\nrnews = ["${FAKE_SENDMAIL}", "-x"]` });
}

describe('an admin action\'s exit status', () => {
  it('exit 75: temporary, retried after the backoff', async () => {
    site = await actionSite('75');
    const id = await site.receive({ command: 'rnews', args: [], sender: '' }, 'article\n');
    const summary = await runJobs({ config: site.config, spool: site.spool, env: site.env });
    expect(summary).toEqual({ done: 0, retry: 1, failed: 0, skipped: 0 });
    expect((await readState(site.spool, 'hub', id))?.lastError).toMatch(/exited 75$/);
  });

  for (const [code, status] of [[74, '5.3.0'], [71, '5.3.0'], [67, '5.1.1'], [1, '5.3.0']] as const) {
    it(`exit ${code}: failed for good with ${status}, and the notice says so`, async () => {
      site = await actionSite(`${code},0`);
      const id = await site.receive({ command: 'rnews', args: ['r@y.example'], sender: 's@x.example', recipients: ['r@y.example'] }, 'article\n');
      const summary = await runJobs({ config: site.config, spool: site.spool, env: site.env });
      expect(summary).toEqual({ done: 0, retry: 0, failed: 1, skipped: 0 });
      expect((await readState(site.spool, 'hub', id))?.failed).toMatchObject({ status, noticeSent: true });
      const notice = site.sendmailCalls()[1]!;
      expect(notice.argv.slice(0, 3)).toEqual(['-oi', '-f', '<>']);
      expect(notice.stdin.toString()).toMatch(new RegExp(`^Status: ${status.replace(/\./g, '\\.')}\\r?$`, 'm'));
      // one diagnostic type, the command's own (before: "x-mailbag; x-unix; …")
      expect(notice.stdin.toString()).toMatch(new RegExp(`^Diagnostic-Code: x-unix; \\S+ exited ${code}`, 'm'));
    });
  }
});
