// review12 (req-review12.md F1): b57940b's argvAddressProblem refuses an obsolete source
// route (`@relay.test:user@maildir.test`) for its ":" (and a multi-hop one for its ",")
// and fails such a recipient for good (5.1.3). RFC 5321 §4.1.1.3 / Appendix C: a receiver
// MUST accept a source route and SHOULD ignore it, and Postfix's sendmail does just that
// (its trivial-rewrite strips it: checked here with Debian's Postfix 3.7, the recipient
// reaches user@maildir.test). An rmail job may carry one (checkRecipient takes it; only the
// BSMTP reader drops routes, lib/bsmtp/envelope.ts splitPath), so a recipient delivered
// before b57940b now bounces. The fix (req-review12.md F1): drop a leading route
// (`@d(,@d)*:`) before the check and hand sendmail the mailbox, the result kept under the
// recipient as the job names it. Applied by the lead (session 12).
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { argvAddressProblem, deliverWithSendmail } from '../../lib/deliver/sendmail.js';
import type { Transaction } from '../../lib/deliver/message.js';
import { havePostfix, POSTFIX_SENDMAIL, startPostfix, type PostfixInstance } from '../helpers/postfix.js';

describe('review12: a source-routed recipient on sendmail\'s command line', () => {
  it('argvAddressProblem takes a leading source route (RFC 5321: accepted, ignored)', () => {
    expect(argvAddressProblem('@relay.test:user@maildir.test')).toBeUndefined();
    expect(argvAddressProblem('@a.test,@b.test:user@maildir.test')).toBeUndefined();
  });
});

const present = havePostfix();
let pf: PostfixInstance | undefined;
const dir = mkdtempSync(join(tmpdir(), 'mailbag-review12-route-'));

describe.runIf(present)('review12: source route with the real Postfix sendmail', () => {
  beforeAll(async () => {
    pf = await startPostfix({ mailboxes: ['user'] });
  }, 120_000);
  afterAll(async () => {
    await pf?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is delivered to its mailbox, as Postfix\'s sendmail did before b57940b', async () => {
    const body = join(dir, 'body');
    writeFileSync(body, 'Subject: review12\n\nhello\n');
    const routed = '@relay.test:user@maildir.test';
    const tx: Transaction = {
      index: 0,
      sender: 'a@home.test',
      mailParams: [],
      recipients: [{ address: routed, params: [] }],
      body: { path: body, start: 0, end: undefined, stuffed: false },
      line: 0,
      bodyUndeclared: true,
    };
    const res = await deliverWithSendmail(tx, new Set(), { program: POSTFIX_SENDMAIL, mta: 'postfix', env: { ...process.env, MAIL_CONFIG: pf!.configDir }, timeoutMs: 30_000 });
    await pf!.waitQueueEmpty();
    const n = join(pf!.maildir('user'), 'new');
    // with b57940b: [{ kind: 'permanent', status: '5.1.3', … holds ":" outside quotes }], nothing delivered
    expect(res).toMatchObject([{ address: routed, kind: 'accepted' }]);
    expect(existsSync(n) ? readdirSync(n).length : 0).toBe(1);
  });
});
