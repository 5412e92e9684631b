// Property tests: whatever the body, the envelope and the chunking, writer → reader
// gives back the same envelope and the body after the documented normalisation
// (normaliseBody); and the reader survives arbitrary bytes.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import {
  BsmtpBodyEncoder,
  BsmtpReader,
  encodeBsmtp,
  normaliseBody,
  type BsmtpEnvelope,
  type BsmtpEvent,
} from '../../../lib/bsmtp/index.js';
import { InputError } from '../../../lib/errors.js';

/** bodies made of the pieces that matter, and arbitrary bytes */
const piece = fc.oneof(
  fc.constantFrom('.', '..', '\r', '\n', '\r\n', '\n.\n', '\r\n.\r\n', '.\r\n', 'From ', '>From ', 'x', ' ', '\0', '\xff\xfe', '\x80'),
  fc.string({ maxLength: 12 }),
  fc.uint8Array({ maxLength: 12 }).map((u) => Buffer.from(u).toString('latin1')),
);
const body = fc.array(piece, { maxLength: 40 }).map((parts) => Buffer.from(parts.join(''), 'latin1'));

const atom = fc.stringMatching(/^[A-Za-z0-9._%+=-]{1,12}$/).filter((s) => !s.startsWith('-'));
const address = fc.oneof(
  fc.tuple(atom, atom).map(([l, d]) => `${l}@${d}`),
  fc.tuple(atom, atom).map(([l, d]) => `"${l} ${l}"@${d}`),
  fc.array(atom, { minLength: 2, maxLength: 3 }).map((p) => p.join('!')),
  fc.constant('jörg@bücher.example'),
);
const paramValue = fc.stringMatching(/^[!-~]{1,16}$/);
const param = fc.record({
  name: fc.constantFrom('RET', 'ENVID', 'SIZE', 'BODY', 'SMTPUTF8', 'NOTIFY', 'ORCPT', 'X-FOO'),
  value: fc.option(paramValue, { nil: null }),
});
const envelope: fc.Arbitrary<BsmtpEnvelope> = fc.record({
  sender: fc.oneof(fc.constant(''), address),
  mailParams: fc.array(param, { maxLength: 4 }),
  recipients: fc.array(fc.record({ address, params: fc.array(param, { maxLength: 3 }) }), { minLength: 1, maxLength: 4 }),
});

/** split `bytes` at the given fractions */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => Math.floor(c * (bytes.length + 1))))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    out.push(bytes.subarray(last, p));
    last = p;
  }
  out.push(bytes.subarray(last));
  return out;
}
const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), { maxLength: 12 });

function readAll(chunks: Buffer[]): { events: BsmtpEvent[]; messages: Array<{ envelope: BsmtpEnvelope; body: Buffer }> } {
  const reader = new BsmtpReader();
  const events: BsmtpEvent[] = [];
  for (const c of chunks) events.push(...reader.push(c));
  events.push(...reader.end());
  const messages: Array<{ envelope: BsmtpEnvelope; body: Buffer }> = [];
  let current: { envelope: BsmtpEnvelope; parts: Buffer[] } | null = null;
  for (const e of events) {
    if (e.type === 'message') current = { envelope: e.envelope, parts: [] };
    else if (e.type === 'body') current?.parts.push(e.chunk);
    else if (e.type === 'end-of-message' && current) {
      messages.push({ envelope: current.envelope, body: Buffer.concat(current.parts) });
      current = null;
    }
  }
  return { events, messages };
}

describe('BSMTP round trip (fast-check)', () => {
  test('writer → reader gives back the envelope and the normalised body, whatever the chunking', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(envelope, body), { minLength: 1, maxLength: 3 }), cuts, (txs, c) => {
        const stream = Buffer.concat(txs.map(([env, b]) => encodeBsmtp(env, b)));
        const { events, messages } = readAll(split(stream, c));
        expect(events.filter((e) => e.type === 'error')).toEqual([]);
        expect(messages).toHaveLength(txs.length);
        txs.forEach(([env, b], i) => {
          expect(messages[i]?.envelope).toEqual(env);
          expect(messages[i]?.body.equals(normaliseBody(b))).toBe(true);
        });
      }),
      { numRuns: 500 },
    );
  });

  // odd addresses, as an MTA may hand them over unquoted (Exim's $local_part is the
  // dequoted form: RCPT TO:<"a\\"b"@x> gives a"b): quotes, backslashes, a source route
  const odd = fc.oneof(
    address,
    fc.stringMatching(/^[A-Za-z0-9"\\@:., !-]{1,16}$/).filter((s) => !s.startsWith('-')),
    fc.tuple(atom, atom).map(([l, d]) => `${l}"${l}@${d}`),
    fc.tuple(atom, atom).map(([l, d]) => `"${l}\\"@${d}`),
    fc.tuple(atom, atom).map(([l, d]) => `@${d}:${l}@${d}`),
  );
  test('an envelope the writer takes reads back unchanged; one it cannot is refused when written, never garbled', () => {
    fc.assert(
      fc.property(fc.oneof(fc.constant(''), odd), fc.array(odd, { minLength: 1, maxLength: 3 }), (sender, rcpts) => {
        const env: BsmtpEnvelope = { sender, mailParams: [], recipients: rcpts.map((address) => ({ address, params: [] })) };
        let stream: Buffer;
        try {
          stream = encodeBsmtp(env, Buffer.from('x\n'));
        } catch (err) {
          expect(err).toBeInstanceOf(InputError);
          return;
        }
        const { events, messages } = readAll([stream]);
        expect(events.filter((e) => e.type === 'error'), stream.toString()).toEqual([]);
        expect(messages.map((m) => m.envelope)).toEqual([env]);
      }),
      { numRuns: 2000 },
    );
  });

  test('the encoder gives the same bytes however its input is chunked', () => {
    fc.assert(
      fc.property(body, cuts, (b, c) => {
        const whole = new BsmtpBodyEncoder();
        const expected = Buffer.concat([whole.push(b), whole.end()]);
        const enc = new BsmtpBodyEncoder();
        const got = Buffer.concat([...split(b, c).map((p) => enc.push(p)), enc.end()]);
        expect(got.equals(expected)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  test('normalisation is idempotent and only drops CRs before LF and adds a final LF', () => {
    fc.assert(
      fc.property(body, (b) => {
        const n = normaliseBody(b);
        expect(normaliseBody(n).equals(n)).toBe(true);
        expect(n.includes('\r\n')).toBe(false);
        if (b.length > 0) expect(n[n.length - 1]).toBe(0x0a);
        // removing every CR and LF from both leaves the same bytes, but for CRs that stood before an LF
        const strip = (x: Buffer): string => x.toString('latin1').replace(/\r+(\n|$)/g, '$1').replace(/\n/g, '');
        expect(strip(n)).toBe(strip(b));
      }),
      { numRuns: 300 },
    );
  });

  test('a stuffed body never ends the message early: exactly one end-of-message per transaction', () => {
    fc.assert(
      fc.property(body, (b) => {
        const stream = encodeBsmtp({ sender: 'a@x', recipients: ['r@y'] }, b);
        // the only "\n.\n" (or a leading ".\n") is the terminator
        const text = stream.toString('latin1').slice('MAIL FROM:<a@x>\nRCPT TO:<r@y>\nDATA\n'.length);
        const body = text.slice(0, text.length - 2);
        expect(body === '' || body.endsWith('\n')).toBe(true);
        expect(`\n${body}`.includes('\n.\n')).toBe(false);
        expect(readAll([stream]).events.filter((e) => e.type === 'end-of-message')).toHaveLength(1);
      }),
      { numRuns: 300 },
    );
  });
});

describe('BSMTP reader on arbitrary bytes', () => {
  const noise = fc.array(
    fc.oneof(
      fc.constantFrom('MAIL FROM:<a@x>\n', 'RCPT TO:<r@y>\n', 'DATA\n', '.\n', 'QUIT\n', 'RSET\n', 'HELO h\r\n', '\r', '\n', '\0', '.', 'mail from: b@x\r\n'),
      fc.uint8Array({ maxLength: 20 }).map((u) => Buffer.from(u).toString('latin1')),
    ),
    { maxLength: 30 },
  );

  test('never throws; events are well formed; an error is last and alone', () => {
    fc.assert(
      fc.property(noise, cuts, (parts, c) => {
        const bytes = Buffer.from(parts.join(''), 'latin1');
        const { events } = readAll(split(bytes, c));
        const errors = events.filter((e) => e.type === 'error');
        expect(errors.length).toBeLessThanOrEqual(1);
        if (errors.length === 1) expect(events.at(-1)?.type).toBe('error');
        // message … body* … end-of-message, never nested, never a body outside a message
        let open = false;
        for (const e of events) {
          if (e.type === 'message') {
            expect(open).toBe(false);
            open = true;
          } else if (e.type === 'body') expect(open).toBe(true);
          else if (e.type === 'end-of-message') {
            expect(open).toBe(true);
            open = false;
          }
        }
        // an open message at the end is always reported as incomplete
        if (open) expect(errors[0]?.type === 'error' && errors[0].issue.code).toMatch(/^bsmtp-/);
        // the same bytes in one chunk give the same events (modulo how bodies are chunked)
        const one = readAll([bytes]);
        expect(one.messages).toEqual(readAll(split(bytes, c)).messages);
        expect(one.events.filter((e) => e.type === 'error')).toEqual(errors);
      }),
      { numRuns: 500 },
    );
  });
});
