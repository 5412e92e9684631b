// A notice that returns 8-bit bytes goes out with BODY=8BITMIME (RFC 6152), which the SMTP
// and LMTP methods pass on when the server offers 8BITMIME; a 7-bit one with none. Also:
// recipients whose NOTIFY leaves FAILURE out are not named, and none left means no notice.
import { describe, expect, it } from 'vitest';
import type { Deliverer, Transaction } from '../../../lib/deliver/index.js';
import { sendNotice } from '../../../lib/runner/notify.js';

function recorder(): { d: Deliverer; sent: Transaction[] } {
  const sent: Transaction[] = [];
  const d = {
    deliver: async (tx: Transaction) => {
      sent.push(tx);
      return tx.recipients.map((r) => ({ address: r.address, kind: 'accepted' as const, status: '2.0.0', diagnostic: 'ok' }));
    },
  } as unknown as Deliverer;
  return { d, sent };
}

const ctx = { site: 'home', now: new Date(Date.UTC(2026, 10, 23)), log: () => undefined };
const tx = (body: Buffer, params: string[] = []): Transaction => ({
  index: 0,
  sender: 's@x.test',
  mailParams: [],
  recipients: [{ address: 'r@y.test', params }],
  body: { path: '', start: 0, end: undefined, stuffed: false, buffer: body },
  line: 0,
});
const request = (t: Transaction) => ({ sender: 's@x.test', recipients: [{ recipient: 'r@y.test', status: '5.1.1' }], reason: 'refused', jobId: 'j1', created: '2026-11-22T00:00:00.000Z', tx: t });

describe('a notice\'s envelope', () => {
  it('says BODY=8BITMIME when what it returns has 8-bit bytes, and nothing for 7-bit', async () => {
    const { d, sent } = recorder();
    expect(await sendNotice(d, ctx, request(tx(Buffer.from('Subject: caf\xe9\n\nna\xefve\n', 'latin1'))))).toBe(true);
    expect(await sendNotice(d, ctx, request(tx(Buffer.from('Subject: cafe\n\nplain\n'))))).toBe(true);
    expect(sent.map((t) => [t.sender, t.mailParams])).toEqual([['', ['BODY=8BITMIME']], ['', []]]);
  });
  it('is not sent when no failed recipient asked for one (NOTIFY=NEVER)', async () => {
    const { d, sent } = recorder();
    expect(await sendNotice(d, ctx, request(tx(Buffer.from('Subject: x\n\ny\n'), ['NOTIFY=NEVER'])))).toBe(true);
    expect(sent).toEqual([]);
  });
});
