// An rmail payload (UUCP From_ envelope + message) as a transaction: the envelope
// lines are read the way sendmail's rmail reads them (lib/envelope), the recipients
// come from the arguments, and the message is the byte range after the envelope.
// Recipient checks follow rmail.c: one beginning with `-` is a usage error (64).

import { createReadStream } from 'node:fs';
import { InputError } from '../errors.js';
import { UucpEnvelopeReader, type UucpEnvelope } from '../envelope/index.js';
import { LIMITS } from '../limits.js';
import type { Transaction } from './message.js';

/** Check rmail recipients (arguments): none, empty, or beginning `-` is refused. */
export function checkRmailRecipients(recipients: string[]): void {
  if (recipients.length === 0) throw new InputError('no-recipients', 'rmail: no recipients');
  if (recipients.length > LIMITS.maxRecipients) throw new InputError('bad-recipient', `rmail: more than ${LIMITS.maxRecipients} recipients`);
  for (const r of recipients) {
    if (r === '' || r.startsWith('-')) throw new InputError('bad-recipient', `rmail: recipient ${JSON.stringify(r.slice(0, 80))} is empty or begins with "-"`);
    // eslint-disable-next-line no-control-regex
    if (/[\0-\x1f\x7f-\x9f]/.test(r)) throw new InputError('bad-recipient', `rmail: recipient ${JSON.stringify(r.slice(0, 80))} has a control character`);
    if (Buffer.byteLength(r) > LIMITS.maxAddressLength) throw new InputError('bad-recipient', 'rmail: recipient too long');
  }
}

/** Read the envelope at `offset` of the file; throws InputError bad-envelope (65) when it is refused. */
export async function readEnvelope(path: string, offset: number): Promise<UucpEnvelope> {
  const reader = new UucpEnvelopeReader();
  const stream = createReadStream(path, { start: offset, highWaterMark: 16 * 1024 });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const out = reader.push(chunk);
      if (out) {
        if (!out.ok) throw new InputError('bad-envelope', `rmail: ${out.issue.message}`);
        return out.value.envelope;
      }
    }
  } finally {
    stream.destroy();
  }
  const out = reader.end();
  if (!out.ok) throw new InputError('bad-envelope', `rmail: ${out.issue.message}`);
  return out.value.envelope;
}

/** The transaction of an rmail job whose payload starts at `offset` of `path`. */
export async function rmailTransaction(path: string, offset: number, recipients: string[]): Promise<{ tx: Transaction; envelope: UucpEnvelope }> {
  checkRmailRecipients(recipients);
  const envelope = await readEnvelope(path, offset);
  return {
    envelope,
    tx: {
      index: 0,
      sender: envelope.sender,
      mailParams: [],
      recipients: recipients.map((address) => ({ address, params: [] })),
      body: { path, start: offset + envelope.length, end: undefined, stuffed: false },
      line: 0,
      bodyUndeclared: true,
    },
  };
}
