import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { InputError } from '../../../lib/errors.js';
import { LIMITS } from '../../../lib/limits.js';
import {
  UucpEnvelopeReader,
  formatCtime,
  formatFromLine,
  leadingFromLines,
  parseUucpEnvelope,
  type UucpEnvelope,
} from '../../../lib/envelope/index.js';

const DATE = 'Tue Nov 22 04:10:00 2025';
const b = (s: string): Buffer => Buffer.from(s, 'utf8');

function parse(s: string): UucpEnvelope {
  const r = parseUucpEnvelope(b(s));
  if (!r.ok) throw new Error(`unexpected issue ${r.issue.code}: ${r.issue.message}`);
  return r.value;
}

function issue(s: string | Buffer): string {
  const r = parseUucpEnvelope(typeof s === 'string' ? b(s) : s);
  if (r.ok) throw new Error(`expected an issue, got sender ${JSON.stringify(r.value.sender)}`);
  return r.issue.code;
}

// formats.md §1.2 table and checklist items 1–2: what sendmail's rmail passes as -f and -p.
describe('From_ lines as sendmail rmail reads them', () => {
  test('checklist 1: bang path with remote from', () => {
    const e = parse(`From a!b!user  ${DATE} remote from c\nSubject: x\n\nhi\n`);
    expect(e.sender).toBe('c!a!b!user');
    expect(e.protocol).toBe('UUCP:c.UUCP');
    expect(e.systems).toEqual(['c']);
    expect(e.user).toBe('a!b!user');
    expect(e.fromSystem).toBe('c');
    expect(e.date).toBe(DATE);
    expect(e.lines).toBe(1);
    expect(e.length).toBe(`From a!b!user  ${DATE} remote from c\n`.length);
  });

  test('stacked >From lines join the systems in line order, the last user wins', () => {
    const env = `From user  ${DATE} remote from c\n>From x  ${DATE} remote from d\n`;
    const e = parse(`${env}Subject: x\n`);
    expect(e.sender).toBe('c!d!x');
    expect(e.protocol).toBe('UUCP:c.UUCP');
    expect(e.lines).toBe(2);
    expect(e.length).toBe(Buffer.byteLength(env));
  });

  test('RFC 976 three hops', () => {
    const e = parse(`From a3 ${DATE} remote from h3\n>From a2 ${DATE} remote from h2\n>From a1 ${DATE} remote from h1\n\nbody\n`);
    expect(e.sender).toBe('h3!h2!h1!a1');
    expect(e.systems).toEqual(['h3', 'h2', 'h1']);
  });

  test('line 1 may be a >From line, as rmail.c reads it', () => {
    expect(parse(`>From u ${DATE} remote from c\nX: y\n`).sender).toBe('c!u');
  });

  test('a later "From " line is an envelope line too', () => {
    expect(parse(`From u ${DATE} remote from c\nFrom v ${DATE} remote from d\nX: y\n`).sender).toBe('c!d!v');
  });

  test('without remote from, the word is split at its last "!"', () => {
    const e = parse(`From c!user  ${DATE}\nX: y\n`);
    expect(e.sender).toBe('c!user');
    expect(e.systems).toEqual(['c']);
    expect(e.protocol).toBe('UUCP:c.UUCP');
    const f = parse(`From a!b!user ${DATE}\nX: y\n`);
    expect(f.sender).toBe('a!b!user');
    expect(f.fromSystem).toBe('a!b');
    expect(f.user).toBe('user');
  });

  test('a domain sender is kept as is, protocol UUCP', () => {
    const e = parse(`From user@x.example  ${DATE}\nX: y\n`);
    expect(e.sender).toBe('user@x.example');
    expect(e.protocol).toBe('UUCP');
    expect(e.fromSystem).toBeNull();
    expect(e.systems).toEqual([]);
  });

  test('a dotted remote host gives UUCP:<host> without .UUCP', () => {
    const e = parse(`From u  ${DATE} remote from gw.example.org\nX: y\n`);
    expect(e.protocol).toBe('UUCP:gw.example.org');
    expect(e.sender).toBe('gw.example.org!u');
  });

  test('the domain option replaces UUCP (rmail -D)', () => {
    const r = parseUucpEnvelope(b(`From u  ${DATE} remote from c\nX: y\n`), { domain: 'BANG' });
    expect(r.ok && r.value.protocol).toBe('BANG:c.BANG');
    const s = parseUucpEnvelope(b(`From u  ${DATE}\nX: y\n`), { domain: 'BANG' });
    expect(s.ok && s.value.protocol).toBe('BANG');
  });

  test('an empty sender is the null sender', () => {
    const e = parse(`From   ${DATE}\nX: y\n`);
    expect(e.sender).toBe('');
    expect(e.protocol).toBe('UUCP');
    // rmail.c would say `c!<>`; a null sender relayed through c is still a null sender
    expect(parse(`From   ${DATE} remote from c\nX: y\n`).sender).toBe('');
    // a user written `<>` (rmail.c passes `-f<>`) is the null sender too
    expect(parse(`From <> ${DATE}\nX: y\n`).sender).toBe('');
    expect(parse(`From <>  ${DATE} remote from c\nX: y\n`).sender).toBe('');
    // `a! <date>`: rmail.c splits at the `!` and finds an empty user, `a!<>`
    const bang = parse(`From a! ${DATE}\nX: y\n`);
    expect(bang.sender).toBe('');
    expect(bang.systems).toEqual(['a']);
    expect(bang.protocol).toBe('UUCP:a.UUCP');
  });

  test('one or two spaces before the date; Exim and Postfix shapes', () => {
    expect(parse(`From MAILER-DAEMON Tue Nov 22 04:10:00 2025\nX: y\n`).sender).toBe('MAILER-DAEMON');
    expect(parse(`From u@x  Tue Nov  2 04:10:00 2025\nX: y\n`).date).toBe('Tue Nov  2 04:10:00 2025');
    expect(parse(`From u@x Tue Nov  2 04:10:00 2025\nX: y\n`).sender).toBe('u@x');
  });

  test('CR and tabs count as whitespace (C isspace), as in rmail.c', () => {
    const e = parse(`From u\t${DATE} remote from c\r\nX: y\n`);
    expect(e.sender).toBe('c!u');
    expect(e.date).toBe(DATE);
  });

  test('the envelope ends at the first other line; the message follows untouched', () => {
    const payload = b(`From u@x  ${DATE}\nFrom: someone\n>From not-envelope\n`);
    const e = parse(payload.toString());
    expect(payload.subarray(e.length).toString()).toBe('From: someone\n>From not-envelope\n');
  });

  test('an envelope with no message after it gives an empty message (rmail says "no data")', () => {
    const e = parse(`From u@x  ${DATE}\n`);
    expect(e.length).toBe(Buffer.byteLength(`From u@x  ${DATE}\n`));
  });

  test('UTF-8 senders are kept', () => {
    expect(parse(`From jörg@bücher.example  ${DATE}\nX: y\n`).sender).toBe('jörg@bücher.example');
  });
});

describe('From_ lines refused', () => {
  test('checklist 2: a missing From_ line', () => {
    expect(issue('Subject: x\n\nhi\n')).toBe('from-missing');
    expect(issue(`from u ${DATE}\nX: y\n`)).toBe('from-missing');
    expect(issue(`From:u ${DATE}\n`)).toBe('from-missing');
  });

  test('an empty payload or a line without newline', () => {
    expect(issue('')).toBe('from-truncated');
    expect(issue('Fro')).toBe('from-truncated');
    expect(issue('>Fro')).toBe('from-truncated');
    expect(issue(`From u ${DATE}`)).toBe('from-truncated');
    expect(issue(`From u ${DATE}\n>From v ${DATE}`)).toBe('from-truncated');
  });

  test('checklist 2: an overlong From_ line (2048 bytes or more with its LF)', () => {
    const head = `From u ${DATE} `;
    const fits = `${head}${'x'.repeat(LIMITS.maxFromLine - head.length - 1)}\n`;
    expect(Buffer.byteLength(fits)).toBe(LIMITS.maxFromLine);
    expect(parse(`${fits}X: y\n`).sender).toBe('u');
    const over = `${head}${'x'.repeat(LIMITS.maxFromLine - head.length)}\n`;
    expect(issue(`${over}X: y\n`)).toBe('from-too-long');
    // also without any newline in sight
    expect(issue(`From ${'u'.repeat(5000)}`)).toBe('from-too-long');
  });

  test('too many envelope lines', () => {
    const lines = `From u ${DATE} remote from c\n` + `>From u ${DATE} remote from d\n`.repeat(LIMITS.maxFromLines - 1);
    expect(parse(`${lines}X: y\n`).lines).toBe(LIMITS.maxFromLines);
    expect(issue(`${lines}>From u ${DATE} remote from e\nX: y\n`)).toBe('from-too-many-lines');
  });

  test('a word beginning with "!"', () => {
    expect(issue(`From !a!user ${DATE}\nX: y\n`)).toBe('from-bang');
    expect(issue(`From u ${DATE}\n>From !x ${DATE}\nX: y\n`)).toBe('from-bang');
    expect(issue(`From !user ${DATE} remote from c\nX: y\n`)).toBe('from-bang');
  });

  test('corrupt lines', () => {
    expect(issue('From \nX: y\n')).toBe('from-corrupt');
    expect(issue('From a!\nX: y\n')).toBe('from-corrupt');
    expect(issue(`From u ${DATE} remote from \nX: y\n`)).toBe('from-corrupt');
  });

  test('NUL, control characters and non-UTF-8 in the sender', () => {
    expect(issue(b(`From u\0x ${DATE}\nX: y\n`))).toBe('from-bad-byte');
    expect(issue(b(`From u ${DATE} \0\nX: y\n`))).toBe('from-bad-byte');
    expect(issue(b(`From u\x01x ${DATE}\nX: y\n`))).toBe('from-bad-byte');
    expect(issue(Buffer.concat([b('From u'), Buffer.from([0xff]), b(` ${DATE}\nX: y\n`)]))).toBe('from-bad-byte');
  });
});

describe('UucpEnvelopeReader fed chunks', () => {
  const payload = b(`From user  ${DATE} remote from c\n>From x  ${DATE} remote from d\n>Fromage: not envelope\nbody\n`);

  test('every split point gives the same envelope and the same rest', () => {
    const whole = parseUucpEnvelope(payload);
    expect(whole.ok).toBe(true);
    if (!whole.ok) return;
    for (let cut = 0; cut <= payload.length; cut++) {
      const reader = new UucpEnvelopeReader();
      let out = reader.push(payload.subarray(0, cut));
      let fed = cut;
      if (out === null) {
        out = reader.push(payload.subarray(cut));
        fed = payload.length;
      }
      if (out === null) out = reader.end();
      expect(out.ok).toBe(true);
      if (!out.ok) return;
      expect(out.value.envelope).toEqual(whole.value);
      // rest + what was not fed yet = the message
      expect(Buffer.concat([out.value.rest, payload.subarray(fed)]).toString()).toBe('>Fromage: not envelope\nbody\n');
    }
  });

  test('one byte at a time', () => {
    const reader = new UucpEnvelopeReader();
    let out = null;
    let i = 0;
    for (; i < payload.length && out === null; i++) out = reader.push(payload.subarray(i, i + 1));
    expect(out?.ok && out.value.envelope.sender).toBe('c!d!x');
    expect(out?.ok && Buffer.concat([out.value.rest, payload.subarray(i)]).toString()).toBe('>Fromage: not envelope\nbody\n');
  });

  test('the outcome is given once and kept', () => {
    const reader = new UucpEnvelopeReader();
    const first = reader.push(b('Subject: x\n'));
    expect(first?.ok).toBe(false);
    expect(reader.push(b(`From u ${DATE}\n`))).toBe(first);
    expect(reader.end()).toBe(first);
  });
});

describe('formatCtime', () => {
  test('24 characters, UTC, day padded with a space', () => {
    expect(formatCtime(new Date(Date.UTC(2026, 10, 22, 4, 10, 0)))).toBe('Sun Nov 22 04:10:00 2026');
    expect(formatCtime(new Date(Date.UTC(2025, 0, 2, 23, 5, 9)))).toBe('Thu Jan  2 23:05:09 2025');
    expect(formatCtime(new Date(Date.UTC(2000, 1, 29, 0, 0, 0)))).toBe('Tue Feb 29 00:00:00 2000');
  });

  test('always 24 characters over the whole supported range', () => {
    fc.assert(
      fc.property(fc.integer({ min: Date.UTC(1000, 0, 1), max: Date.UTC(9999, 11, 31, 23, 59, 59) }), (t) => {
        const s = formatCtime(new Date(t));
        expect(s).toHaveLength(24);
        expect(s).toMatch(/^(Sun|Mon|Tue|Wed|Thu|Fri|Sat) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 1-3]\d \d\d:\d\d:\d\d \d{4}$/);
        // it is the same instant, to the second
        expect(Date.parse(`${s.slice(4, 10)}, ${s.slice(20)} ${s.slice(11, 19)} UTC`)).toBe(Math.floor(t / 1000) * 1000);
      }),
    );
  });

  test('refuses what cannot be 24 characters', () => {
    expect(() => formatCtime(new Date(Number.NaN))).toThrow(RangeError);
    expect(() => formatCtime(new Date(Date.UTC(10000, 0, 1)))).toThrow(RangeError);
  });
});

describe('formatFromLine', () => {
  const date = new Date(Date.UTC(2026, 10, 22, 4, 10, 0));

  test('the exact bytes we write', () => {
    expect(formatFromLine({ sender: 'me@home.example', date })).toBe('From me@home.example  Sun Nov 22 04:10:00 2026\n');
    expect(formatFromLine({ sender: 'me', date, remoteFrom: 'home' })).toBe('From me  Sun Nov 22 04:10:00 2026 remote from home\n');
  });

  test('refuses the null sender, <>, MAILER-DAEMON and what a From_ line cannot carry', () => {
    for (const sender of ['', '<>', 'MAILER-DAEMON', 'mailer-daemon', 'a b@x', '!a', 'a!', 'a\nb', 'x\0']) {
      expect(() => formatFromLine({ sender, date }), sender).toThrow(InputError);
      try {
        formatFromLine({ sender, date });
      } catch (err) {
        expect((err as InputError).code).toBe('bad-sender');
      }
    }
    expect(() => formatFromLine({ sender: 'a'.repeat(LIMITS.maxAddressLength + 1), date })).toThrow(InputError);
  });

  test('refuses a bad site name', () => {
    for (const remoteFrom of ['', 'a b', 'a!b', '-x', 'x'.repeat(LIMITS.maxNameLength + 1)]) {
      expect(() => formatFromLine({ sender: 'u', date, remoteFrom }), remoteFrom).toThrow(/remote from/);
    }
  });

  test('round trip: what we write parses back to the same sender (site! prefixed with remote from)', () => {
    const atom = fc.stringMatching(/^[A-Za-z0-9._%+=-]{1,20}$/);
    const sender = fc.oneof(
      fc.tuple(atom, atom).map(([l, d]) => `${l}@${d}`),
      fc.array(atom, { minLength: 1, maxLength: 4 }).map((parts) => parts.join('!')),
      fc.tuple(atom, atom, atom).map(([h, l, d]) => `${h}!${l}@${d}`),
    ).filter((s) => s.toUpperCase() !== 'MAILER-DAEMON');
    const site = fc.option(fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,20}$/), { nil: undefined });
    const when = fc.integer({ min: Date.UTC(1970, 0, 1), max: Date.UTC(2100, 0, 1) });
    fc.assert(
      fc.property(sender, site, when, (s, remoteFrom, t) => {
        const d = new Date(t);
        const line = formatFromLine({ sender: s, date: d, ...(remoteFrom !== undefined ? { remoteFrom } : {}) });
        const e = parse(`${line}Subject: x\n\nbody\n`);
        expect(e.sender).toBe(remoteFrom !== undefined ? `${remoteFrom}!${s}` : s);
        expect(e.date).toBe(formatCtime(d));
        expect(e.length).toBe(Buffer.byteLength(line));
        expect(e.lines).toBe(1);
      }),
    );
  });
});

describe('formatFromLine takes only a sender that reads back as itself', () => {
  test('property: any string the writer takes parses back to the same sender, on one line', () => {
    // odd senders: every printable ASCII character but the space, `<>` and bang paths,
    // UTF-8 and C1 controls and the other Unicode spaces (not what C's isspace() splits at)
    const odd = fc.oneof(
      fc.stringMatching(/^[!-~]{1,12}$/),
      fc.array(fc.constantFrom('a', '!', '<>', '<', '>', '@', '"', '\\', 'MAILER-DAEMON', 'remote', 'from', '\u0085', '\u00a0', '\u2028', 'ü'), { minLength: 1, maxLength: 6 }).map((p) => p.join('')),
    );
    const site = fc.option(fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,8}$/), { nil: undefined });
    fc.assert(
      fc.property(odd, site, (s, remoteFrom) => {
        let line: string;
        try {
          line = formatFromLine({ sender: s, date: new Date(0), ...(remoteFrom !== undefined ? { remoteFrom } : {}) });
        } catch (err) {
          expect(err).toBeInstanceOf(InputError);
          return;
        }
        const e = parse(`${line}Subject: x\n`);
        expect(e.sender, line).toBe(remoteFrom !== undefined ? `${remoteFrom}!${s}` : s);
        expect(e.lines).toBe(1);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('leadingFromLines (what a message must lose before it follows our From_ line)', () => {
  test('From_ and >From_ lines at the start, any number of ">"', () => {
    const m = b(`From a@x  ${DATE}\n>From b@x ${DATE}\n>>From c\nSubject: s\n\nFrom d\n`);
    const n = leadingFromLines(m, true);
    expect(m.subarray(n ?? 0).toString()).toBe('Subject: s\n\nFrom d\n');
    expect(leadingFromLines(b('Subject: s\n'), true)).toBe(0);
    expect(leadingFromLines(b('From:x\n'), true)).toBe(0);
    expect(leadingFromLines(b(''), true)).toBe(0);
  });

  test('asks for more while the start is undecided', () => {
    expect(leadingFromLines(b(''), false)).toBeNull();
    expect(leadingFromLines(b('>Fr'), false)).toBeNull();
    expect(leadingFromLines(b('From a@x'), false)).toBeNull();
    expect(leadingFromLines(b('From a@x\n'), false)).toBeNull();
    expect(leadingFromLines(b('From a@x\nS'), false)).toBe(9);
    expect(leadingFromLines(b('From a@x'), true)).toBe(8);
  });

  test('an overlong line ends the scan (the receiver will refuse it, loudly)', () => {
    const long = `From ${'x'.repeat(LIMITS.maxFromLine)}\n`;
    expect(leadingFromLines(b(`From a\n${long}X: y\n`), true)).toBe(7);
    expect(leadingFromLines(b(long.slice(0, -1)), false)).toBe(0);
  });

  test('after dropping them, our From_ line + message parses back to exactly the message', () => {
    const message = b(`>From evil@x  ${DATE} remote from z\nSubject: s\n\nhi\n`);
    const kept = message.subarray(leadingFromLines(message, true) ?? 0);
    const payload = Buffer.concat([b(formatFromLine({ sender: 'me@x', date: new Date(0) })), kept]);
    const e = parse(payload.toString());
    expect(e.sender).toBe('me@x');
    expect(payload.subarray(e.length).equals(kept)).toBe(true);
  });
});
