import { describe, expect, test } from 'vitest';
import { LIMITS } from '../../../lib/limits.js';
import { checkRecipient, checkSender, rmailCanCarrySender } from '../../../lib/envelope/index.js';

const code = (r: { ok: boolean; issue?: { code: string } }): string | true => (r.ok ? true : (r.issue?.code ?? '?'));

describe('checkRecipient', () => {
  test('ordinary, bang and UTF-8 addresses pass for both kinds of job', () => {
    for (const a of ['r@y.example', 'c!d!user', 'postmaster', 'jörg@bücher.example', 'a+tag@x', "o'brien@c.example"]) {
      expect(checkRecipient(a, 'rmail')).toEqual({ ok: true, value: a });
      expect(checkRecipient(a, 'bsmtp')).toEqual({ ok: true, value: a });
    }
  });

  test('a recipient beginning with "-" is bad-recipient (sendmail would take it for an option)', () => {
    for (const job of ['rmail', 'bsmtp'] as const) {
      const r = checkRecipient('-oQ/tmp/x', job);
      expect(code(r)).toBe('bad-recipient');
      expect(!r.ok && r.issue.message).toMatch(/begins with "-"/);
    }
  });

  test('control characters and NUL are refused everywhere', () => {
    for (const a of ['a\0@x', 'a\r@x', 'a\n@x', 'a\t@x', 'a\x7f@x', 'a\x1b@x']) {
      expect(code(checkRecipient(a, 'rmail')), JSON.stringify(a)).toBe('bad-recipient');
      expect(code(checkRecipient(a, 'bsmtp')), JSON.stringify(a)).toBe('bad-recipient');
    }
  });

  test('whitespace: refused for rmail (uuxqt re-splits), carried by BSMTP', () => {
    expect(code(checkRecipient('"john doe"@x', 'rmail'))).toBe('bad-recipient');
    expect(checkRecipient('"john doe"@x', 'bsmtp').ok).toBe(true);
  });

  test('<> refused in BSMTP (the address is written inside <…>)', () => {
    expect(code(checkRecipient('a>b@x', 'bsmtp'))).toBe('bad-recipient');
    expect(code(checkRecipient('<a@x>', 'bsmtp'))).toBe('bad-recipient');
  });

  test('empty and overlong', () => {
    expect(code(checkRecipient('', 'rmail'))).toBe('bad-recipient');
    const max = `${'a'.repeat(LIMITS.maxAddressLength - 2)}@x`;
    expect(checkRecipient(max, 'rmail').ok).toBe(true);
    expect(code(checkRecipient(`a${max}`, 'bsmtp'))).toBe('bad-recipient');
    // the limit is in bytes of UTF-8, not characters
    expect(code(checkRecipient(`${'ü'.repeat(LIMITS.maxAddressLength / 2)}@x`, 'bsmtp'))).toBe('bad-recipient');
  });
});

describe('checkSender', () => {
  test('BSMTP carries the null sender; rmail cannot', () => {
    expect(checkSender('', 'bsmtp')).toEqual({ ok: true, value: '' });
    for (const s of ['', '<>', 'MAILER-DAEMON', 'Mailer-Daemon']) {
      expect(code(checkSender(s, 'rmail')), s).toBe('bad-sender');
      expect(rmailCanCarrySender(s)).toBe(false);
    }
    expect(rmailCanCarrySender('MAILER-DAEMON@example.org')).toBe(true);
  });

  test('rmail senders: one word, no leading or trailing "!"', () => {
    expect(rmailCanCarrySender('a!b!user')).toBe(true);
    expect(rmailCanCarrySender('user@x.example')).toBe(true);
    for (const s of ['a b@x', '!a', 'a!', 'a\tb']) expect(rmailCanCarrySender(s), s).toBe(false);
    expect(checkSender('"a b"@x', 'bsmtp').ok).toBe(true);
  });

  test('control characters, <> and length', () => {
    expect(code(checkSender('a\n@x', 'bsmtp'))).toBe('bad-sender');
    expect(code(checkSender('a>@x', 'bsmtp'))).toBe('bad-sender');
    expect(code(checkSender('a'.repeat(LIMITS.maxAddressLength + 1), 'bsmtp'))).toBe('bad-sender');
  });
});
