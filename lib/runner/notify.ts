// Failure notices on their way out: compose the RFC 3464 report for a transaction's
// failed recipients and hand it to the MTA with the null sender, by the same delivery
// method as the mail itself. Never to <>: a null-sender message that fails is only
// recorded (RFC 3464 §2, RFC 5321 §4.5.5), so notices cannot loop.

import { composeNotice, NOTICE_FULL_LIMIT, type NoticeRecipient } from '../notice/dsn.js';
import type { Deliverer } from '../deliver/index.js';
import { paramValue, readPlainPrefix, xtextDecode, type Transaction } from '../deliver/message.js';
import { faultPoint } from '../spool/fault.js';

export interface NoticeRequest {
  /** the envelope sender to notify; '' = nobody */
  sender: string;
  recipients: NoticeRecipient[];
  reason: string;
  jobId: string;
  /** ISO time the job was made (Arrival-Date) */
  created: string;
  /** the transaction, for the returned message and RET/ENVID; undefined = not readable */
  tx: Transaction | undefined;
}

/**
 * Compose and send one notice with the null sender. Returns true when it went out
 * or can never go out (null sender: nobody to tell; refused for good), false to try
 * again on a later run.
 */
export async function sendNotice(d: Deliverer, ctx: { site: string; now: Date; log: (line: string) => void; deferred?: (diagnostic: string) => void }, n: NoticeRequest): Promise<boolean> {
  if (n.sender === '' || n.sender === '<>') return true;
  const recipients = n.tx ? asRequested(n.tx, n.recipients) : n.recipients;
  if (recipients.length === 0) return true;
  let original: Buffer | undefined;
  let complete = false;
  if (n.tx) {
    try {
      const p = await readPlainPrefix(n.tx.body, NOTICE_FULL_LIMIT);
      original = p.bytes;
      complete = p.complete;
    } catch {
      original = undefined;
    }
  }
  const ret = n.tx ? paramValue(n.tx.mailParams, 'RET') : undefined;
  const envid = n.tx ? paramValue(n.tx.mailParams, 'ENVID') : undefined;
  const message = composeNotice({
    site: ctx.site,
    sender: n.sender,
    recipients,
    reason: n.reason,
    jobId: n.jobId,
    // RFC 3464 §2.2.1: Original-Envelope-Id is written in xtext, as it came
    envid,
    arrival: new Date(n.created),
    original,
    originalComplete: complete,
    ret: ret?.toUpperCase() === 'HDRS' ? 'HDRS' : ret ? 'FULL' : undefined,
    now: ctx.now,
  });
  const noticeTx: Transaction = {
    index: 0,
    sender: '',
    // 8-bit bytes of the returned message (RFC 6152); the SMTP and LMTP methods pass it
    // on when the server offers 8BITMIME, the others need no declaration
    mailParams: message.some((b) => b >= 0x80) ? ['BODY=8BITMIME'] : [],
    recipients: [{ address: n.sender, params: [] }],
    body: { path: '', start: 0, end: undefined, stuffed: false, buffer: message },
    line: 0,
  };
  const [res] = await d.deliver(noticeTx, new Set());
  faultPoint('runner-after-notice');
  if (!res || res.kind === 'temporary') {
    // `deferred`: the caller says what comes next (when, or that it gives up)
    if (ctx.deferred) ctx.deferred(res?.diagnostic ?? 'no result');
    else ctx.log(`notice to <${n.sender}> for job ${n.jobId}: will retry: ${res?.diagnostic ?? 'no result'}`);
    return false;
  }
  if (res.kind === 'permanent') ctx.log(`notice to <${n.sender}> for job ${n.jobId} refused: ${res.diagnostic}`);
  return true;
}

/**
 * The recipients the sender asked to hear about, as the transaction's RCPT parameters
 * say (RFC 3461 §4.1): one whose NOTIFY lacks FAILURE (NEVER, SUCCESS, DELAY) gets no
 * failure notice, one whose NOTIFY lacks DELAY no delay notice; without NOTIFY the
 * default is failures. Each keeps its ORCPT as Original-Recipient.
 */
export function asRequested(tx: Transaction, recipients: NoticeRecipient[]): NoticeRecipient[] {
  return recipients.flatMap((r) => {
    const rcpt = tx.recipients.find((x) => x.address === r.recipient);
    const notify = rcpt ? paramValue(rcpt.params, 'NOTIFY') : undefined;
    const wanted = (r.action ?? 'failed') === 'delayed' ? 'DELAY' : 'FAILURE';
    if (notify !== undefined && !notify.toUpperCase().split(',').includes(wanted)) return [];
    const orcpt = rcpt ? paramValue(rcpt.params, 'ORCPT') : undefined;
    return [{ ...r, originalRecipient: r.originalRecipient ?? (orcpt ? xtextDecode(orcpt) : undefined) }];
  });
}
