// A job that fails while in in/PEER/ is moved to failed/PEER/ before its notice goes out
// (the record first, then the move, then the notices: docs/spool.md R5). The notice
// returns the original message (RFC 3464 §2; RET), read from where the job now is:
// failed/PEER/ID. Before, it was read from the job's old path in in/PEER/: gone, so an
// rmail job's notice went out without the message, and a BSMTP job's read error (its
// dot-unstuffing stream did not pass it on) escaped as an uncaught exception: mailbag
// run died with "internal error" (75), in-process the run never ended.

import { afterEach, describe, expect, it } from 'vitest';
import { runJobs } from '../../../lib/runner/runner.js';
import { makeSite, MESSAGE, RMAIL_PAYLOAD, type Site } from './helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

const SIX_DAYS_AGO = (): string => new Date(Date.now() - 6 * 86_400_000).toISOString();

function noticeText(s: Site): string[] {
  return s.sendmailCalls().filter((c) => c.argv[2] === '<>').map((c) => c.stdin.toString());
}

describe('the notice of a job that fails in in/ (expired) returns the original message', () => {
  it('an rmail job', async () => {
    site = await makeSite();
    await site.receive({ command: 'rmail', args: ['r@y.example'], created: SIX_DAYS_AGO() }, RMAIL_PAYLOAD);
    const summary = await runJobs({ config: site.config, spool: site.spool, env: site.env });
    expect(summary).toEqual({ done: 0, retry: 0, failed: 1, skipped: 0 });
    const [text, ...more] = noticeText(site);
    expect(more).toEqual([]);
    expect(text).toMatch(/^Status: 4\.4\.7\r$/m);
    // the returned message (message/rfc822 part): its header and body
    expect(text).toMatch(/^Subject: hello\r$/m);
    expect(text).toMatch(/^body line\r$/m);
  });

  it('a BSMTP job (dot-stuffed): the run ends, the notice goes out with the message', { timeout: 20_000 }, async () => {
    site = await makeSite();
    site.config.delivery.mta = 'sendmail';
    const payload = `MAIL FROM:<s@x.example>\nRCPT TO:<a@y.example>\nDATA\n${MESSAGE.replace(/^\./m, '..')}.\n`;
    const id = await site.receive({ command: 'rsmtp', created: SIX_DAYS_AGO() }, payload);
    const summary = await runJobs({ config: site.config, spool: site.spool, env: site.env });
    expect(summary).toEqual({ done: 0, retry: 0, failed: 1, skipped: 0 });
    expect((await site.spool.listJobs('failed', 'hub')).map((r) => r.id)).toEqual([id]);
    const [text, ...more] = noticeText(site);
    expect(more).toEqual([]);
    expect(text).toMatch(/^Subject: hello\r$/m);
    // unstuffed, as the message was
    expect(text).toMatch(/^\.leading dot\r$/m);
  });
});
