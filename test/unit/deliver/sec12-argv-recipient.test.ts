// sec12: a recipient handed to sendmail on its command line is read by it as an address
// list. Seen with Debian's Postfix 3.7 (its own sendmail, argv after `--`): `a,b`
// delivers to a and b, so does `<a,b>` (sendmail's rmail wraps a comma address so),
// `a;b`, `a b`, `a<TAB>b` and the group `g:a;b`; `q@x<r@y>` goes to r@y only. mailbag
// reported one recipient and delivered to two: a recipient routed or counted as one
// (lmtpd's domains: `victim@anywhere.example,x@home.test` routes by home.test, and the
// peer's sendmail relays to victim@anywhere.example; max_recipients) reached others.
// Now deliverWithSendmail hands over only a recipient that sendmail reads as that one
// address (argvAddressProblem); the others are refused 5.1.3 for the notice. A quoted
// `"a,b"@x` and `a\,b@x` are one address and still go (docs/security.md).
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { argvAddressProblem, deliverWithSendmail } from '../../../lib/deliver/sendmail.js';
import type { Transaction } from '../../../lib/deliver/message.js';
import { havePostfix, POSTFIX_SENDMAIL, startPostfix, type PostfixInstance } from '../../helpers/postfix.js';

describe('sec12: argvAddressProblem', () => {
  it('refuses what sendmail splits or reads as another address', () => {
    for (const a of ['a@y.test,root', '<a@y.test,root>', 'a@y.test;root', 'a@y.test root', 'a@y.test\troot', 'g:a@y.test;root', 'q@y.test<r@z.test>', 'q@y.test(c)', 'a"b@y.test', 'a@[1.2.3.4', 'a@y.test\\']) {
      expect(argvAddressProblem(a), a).toBeDefined();
    }
  });
  it('takes one address, quoted parts, escapes, domain literals and UTF-8', () => {
    for (const a of ['a@y.test', '"a,b"@y.test', '"a b;c"@y.test', 'a\\,b@y.test', 'a@[IPv6:::1]', 'jörg@bücher.example', 'δοκιμή@παράδειγμα.δοκιμή', 'a!b!c', 'a%b@y.test', 'a\u00a0b@y.test']) {
      expect(argvAddressProblem(a), a).toBeUndefined();
    }
  });
});

const present = havePostfix();
let pf: PostfixInstance | undefined;
const dir = mkdtempSync(join(tmpdir(), 'mailbag-sec12-argv-'));

function delivered(pfi: PostfixInstance, box: string): number {
  const n = join(pfi.maildir(box), 'new');
  return existsSync(n) ? readdirSync(n).length : 0;
}

describe.runIf(present)('sec12: recipients on real Postfix sendmail\'s command line', () => {
  beforeAll(async () => {
    pf = await startPostfix({ mailboxes: ['user', 'other', 'a,b', 'victim'] });
  }, 120_000);
  afterAll(async () => {
    await pf?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a recipient holding a comma is refused, not split; the others are delivered', async () => {
    const body = join(dir, 'body');
    writeFileSync(body, 'Subject: sec12\n\nhello\n');
    const split = 'victim@maildir.test,other@maildir.test';
    const angle = '<victim@maildir.test,other@maildir.test>';
    const tx: Transaction = {
      index: 0,
      sender: 'a@home.test',
      mailParams: [],
      recipients: [{ address: split, params: [] }, { address: angle, params: [] }, { address: '"a,b"@maildir.test', params: [] }, { address: 'user@maildir.test', params: [] }],
      body: { path: body, start: 0, end: undefined, stuffed: false },
      line: 0,
      bodyUndeclared: true,
    };
    const res = await deliverWithSendmail(tx, new Set(), { program: POSTFIX_SENDMAIL, mta: 'postfix', env: { ...process.env, MAIL_CONFIG: pf!.configDir }, timeoutMs: 30_000 });
    await pf!.waitQueueEmpty();
    // what Postfix made of them: one message each for the two whole addresses, none for
    // the two halves a split would have reached
    expect(delivered(pf!, 'user')).toBe(1);
    expect(delivered(pf!, 'a,b')).toBe(1);
    expect(delivered(pf!, 'victim')).toBe(0);
    expect(delivered(pf!, 'other')).toBe(0);
    const by = new Map(res.map((r) => [r.address, r]));
    expect(by.get(split)).toMatchObject({ kind: 'permanent', status: '5.1.3' });
    expect(by.get(split)!.diagnostic).toMatch(/not handed to sendmail: the recipient holds "," outside quotes/);
    expect(by.get(angle)).toMatchObject({ kind: 'permanent', status: '5.1.3' });
    expect(by.get('"a,b"@maildir.test')).toMatchObject({ kind: 'accepted' });
    expect(by.get('user@maildir.test')).toMatchObject({ kind: 'accepted' });
  });
});
