// RFC 3464 delivery status notifications: the notice the runner sends to an envelope
// sender when a job fails for good. Pure: the caller passes the clock, the site name,
// the failed recipients and (a bounded prefix of) the original message; out comes one
// RFC 5322 message, multipart/report; report-type=delivery-status, CRLF line ends.
// It is sent with the null sender `<>` and never to `<>` (the caller checks).

import { randomBytes } from 'node:crypto';

export interface NoticeRecipient {
  /** the recipient as given to us (Final-Recipient) */
  recipient: string;
  /** ORCPT=type;xtext from the job, decoded to `type;value` (Original-Recipient) */
  originalRecipient?: string | undefined;
  /** RFC 3463 status, e.g. `5.1.1` */
  status: string;
  /** `smtp; 550 5.1.1 no such user` or `x-unix; sendmail exited 67` */
  diagnostic?: string | undefined;
  /** failed (default) or delayed */
  action?: 'failed' | 'delayed';
}

export interface NoticeInput {
  /** this site's name (Reporting-MTA, From: MAILER-DAEMON@site) */
  site: string;
  /** the envelope sender the notice goes to; must not be empty */
  sender: string;
  recipients: NoticeRecipient[];
  /** one line for the human part: why it failed */
  reason: string;
  /** the job id, named in the human text and an X-Mailbag-Job field */
  jobId: string;
  /** ENVID from the job, in its xtext form (as RFC 3464 writes it) */
  envid?: string | undefined;
  /** when the job was created (Arrival-Date) */
  arrival?: Date | undefined;
  /** the original message or its first bytes; undefined = not available */
  original?: Buffer | undefined;
  /** true when `original` is the whole message (else only its header is returned) */
  originalComplete?: boolean;
  /** RET=HDRS asks for headers only */
  ret?: 'FULL' | 'HDRS' | undefined;
  now: Date;
  /** boundary and Message-ID randomness; tests pass a fixed one */
  random?: string;
}

/** Largest original returned in full; above it only the header goes back (as Postfix's bounce_size_limit). */
export const NOTICE_FULL_LIMIT = 100 * 1024;

/** Format a date as RFC 5322 wants it: `Sun, 22 Nov 2026 05:22:39 +0000`. */
export function rfc5322Date(d: Date): string {
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${days[d.getUTCDay()]}, ${p(d.getUTCDate())} ${months[d.getUTCMonth()]} ${d.getUTCFullYear()} ` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/** A DSN field value must be printable US-ASCII on one line (RFC 3464 §2.1.1). */
function fieldText(s: string, max = 900): string {
  const clean = s.replace(/[\r\n\t]+/g, ' ').replace(/[^\x20-\x7e]/g, '?').trim();
  return clean.length > max ? `${clean.slice(0, max)}...` : clean;
}

/** The header block of a message (up to and including the blank line), LF or CRLF. */
export function headerOf(message: Buffer): Buffer {
  const lf = message.indexOf('\n\n');
  const crlf = message.indexOf('\r\n\r\n');
  let end = -1;
  if (lf >= 0 && (crlf < 0 || lf < crlf)) end = lf + 2;
  else if (crlf >= 0) end = crlf + 4;
  return end < 0 ? message : message.subarray(0, end);
}

/** Bare LF → CRLF (CRLF stays), so the notice is one consistent text. */
function toCrlf(b: Buffer): Buffer {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) {
    if (i > 0 && b[i - 1] === 13) continue;
    out.push(b.subarray(start, i), Buffer.from('\r\n'));
    start = i + 1;
  }
  out.push(b.subarray(start));
  return Buffer.concat(out);
}

/** The sender as a mailbox for the To: field. */
function angle(addr: string): string {
  return `<${fieldText(addr, 990)}>`;
}

/** Compose the notice. Throws if asked to write to the null sender: that must never happen. */
export function composeNotice(input: NoticeInput): Buffer {
  if (input.sender === '' || input.sender === '<>') {
    throw new Error('a delivery status notification is never sent to the null sender');
  }
  const rnd = input.random ?? randomBytes(12).toString('hex');
  const site = fieldText(input.site) || 'localhost';
  const boundary = `mailbag-dsn-${rnd}`;
  const failed = input.recipients.filter((r) => (r.action ?? 'failed') === 'failed');
  const delayed = input.recipients.filter((r) => r.action === 'delayed');
  const CRLF = '\r\n';

  const head = [
    `From: Mail Delivery System <MAILER-DAEMON@${site}>`,
    `To: ${angle(input.sender)}`,
    `Subject: ${failed.length > 0 ? 'Undelivered Mail Returned to Sender' : 'Delayed Mail (still being retried)'}`,
    `Date: ${rfc5322Date(input.now)}`,
    `Message-ID: <${rnd}.dsn@${site}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status;${CRLF}\tboundary="${boundary}"`,
    '',
    'This is a MIME-encapsulated message (RFC 3464 delivery status notification).',
    '',
  ];

  const human = [
    `--${boundary}`,
    'Content-Description: Notification',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    `This is the mail system at ${site} (mailbag).`,
    '',
    failed.length > 0
      ? 'Your message could not be delivered to the recipients below. This is a permanent error;'
      : 'Your message has not yet been delivered to the recipients below. It is still being retried.',
    failed.length > 0 ? 'it will not be retried.' : '',
    '',
    `Reason: ${fieldText(input.reason)}`,
    `Job: ${fieldText(input.jobId)}`,
    '',
    ...input.recipients.map((r) => `<${fieldText(r.recipient)}>: ${fieldText(r.diagnostic ?? r.status)}`),
    '',
  ];

  const perMessage = [
    `--${boundary}`,
    'Content-Description: Delivery report',
    'Content-Type: message/delivery-status',
    '',
    `Reporting-MTA: dns; ${site}`,
    `X-Mailbag-Job: ${fieldText(input.jobId)}`,
  ];
  if (input.envid !== undefined && input.envid !== '') perMessage.push(`Original-Envelope-Id: ${fieldText(input.envid)}`);
  if (input.arrival) perMessage.push(`Arrival-Date: ${rfc5322Date(input.arrival)}`);
  perMessage.push('');

  const perRecipient: string[] = [];
  for (const r of [...failed, ...delayed]) {
    const orcpt = r.originalRecipient;
    if (orcpt) {
      const semi = orcpt.indexOf(';');
      perRecipient.push(semi > 0
        ? `Original-Recipient: ${fieldText(orcpt.slice(0, semi))}; ${fieldText(orcpt.slice(semi + 1))}`
        : `Original-Recipient: rfc822; ${fieldText(orcpt)}`);
    }
    perRecipient.push(
      `Final-Recipient: rfc822; ${fieldText(r.recipient)}`,
      `Action: ${r.action ?? 'failed'}`,
      `Status: ${/^[245]\.\d{1,3}\.\d{1,3}$/.test(r.status) ? r.status : (r.action === 'delayed' ? '4.0.0' : '5.0.0')}`,
    );
    if (r.diagnostic) {
      const d = fieldText(r.diagnostic);
      perRecipient.push(`Diagnostic-Code: ${/^[a-z0-9-]+;/i.test(d) ? d : `x-mailbag; ${d}`}`);
    }
    perRecipient.push('');
  }

  const full = input.original !== undefined && input.ret !== 'HDRS' && input.originalComplete === true && input.original.length <= NOTICE_FULL_LIMIT;
  const returned = input.original === undefined ? undefined : full ? input.original : headerOf(input.original);
  // 8-bit bytes in what comes back (RFC 2045 6.4: declared on the part and on the
  // multipart around it; without it both read as 7bit)
  const eightBit = returned !== undefined && returned.some((b) => b >= 0x80);
  if (eightBit) head.splice(head.indexOf(''), 0, 'Content-Transfer-Encoding: 8bit');
  const parts: Buffer[] = [Buffer.from([...head, ...human, ...perMessage, ...perRecipient].join(CRLF) + CRLF)];

  if (returned !== undefined) {
    const body = returned;
    parts.push(Buffer.from([
      `--${boundary}`,
      full ? 'Content-Description: Undelivered Message' : 'Content-Description: Undelivered Message Headers',
      full ? 'Content-Type: message/rfc822' : 'Content-Type: text/rfc822-headers',
      ...(eightBit ? ['Content-Transfer-Encoding: 8bit'] : []),
      '',
      '',
    ].join(CRLF)));
    const crlf = toCrlf(body);
    parts.push(crlf);
    if (crlf.length > 0 && !crlf.subarray(-2).equals(Buffer.from(CRLF))) parts.push(Buffer.from(CRLF));
    parts.push(Buffer.from(CRLF));
  }
  parts.push(Buffer.from(`--${boundary}--${CRLF}`));
  return Buffer.concat(parts);
}
