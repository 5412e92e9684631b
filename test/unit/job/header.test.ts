import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MailbagError } from '../../../lib/errors.js';
import { LIMITS } from '../../../lib/limits.js';
import { decodeJobHeader, encodeJobHeader, JOB_MAGIC_LINE, MAX_JOB_PREFIX, type JobHeader } from '../../../lib/job/index.js';

const header: JobHeader = {
  id: '019a9f0c2e1b000a1b2c3d4e',
  from: 'home',
  to: 'hub',
  created: '2026-11-22T05:21:36.123Z',
  command: 'rmail',
  args: ['alice@example.org', 'bob@example.net'],
  sender: 'me@example.net',
  recipients: ['alice@example.org', 'bob@example.net'],
};

// the exact bytes a version 1 job file starts with (docs/formats.md, "Job file")
const GOLDEN =
  'mailbag-job 1\n' +
  '{"id":"019a9f0c2e1b000a1b2c3d4e","from":"home","to":"hub","created":"2026-11-22T05:21:36.123Z",' +
  '"command":"rmail","args":["alice@example.org","bob@example.net"],"sender":"me@example.net",' +
  '"recipients":["alice@example.org","bob@example.net"]}\n';

function issueOf(bytes: Buffer | string): { code: string; message: string } {
  const r = decodeJobHeader(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'utf8'));
  if (r.ok) throw new Error(`decoded, but should not have: ${JSON.stringify(r.value)}`);
  return r.issue;
}

function withHeader(json: string): Buffer {
  return Buffer.from(`${JOB_MAGIC_LINE}${json}\n`, 'utf8');
}

function withField(k: string, v: unknown): Buffer {
  return withHeader(JSON.stringify({ ...header, [k]: v }));
}

describe('job header encoding', () => {
  it('writes the golden bytes, fields in fixed order whatever the input order', () => {
    expect(encodeJobHeader(header).toString('utf8')).toBe(GOLDEN);
    const shuffled = Object.fromEntries(Object.entries(header).reverse()) as unknown as JobHeader;
    expect(encodeJobHeader(shuffled).toString('utf8')).toBe(GOLDEN);
  });

  it('decodes the golden bytes and says where the payload starts', () => {
    const file = Buffer.concat([Buffer.from(GOLDEN), Buffer.from('From me Sun Nov 22 05:21:36 2026\nbody\n')]);
    const r = decodeJobHeader(file);
    expect(r).toEqual({ ok: true, value: { header, length: Buffer.byteLength(GOLDEN) } });
  });

  it('keeps the null sender and 8-bit addresses', () => {
    const h = { ...header, command: 'rsmtp', args: [], sender: '', recipients: ['jörg@exämple.de'] };
    const r = decodeJobHeader(encodeJobHeader(h));
    expect(r.ok && r.value.header).toEqual(h);
  });

  it('refuses to write a header it could not read back', () => {
    expect(() => encodeJobHeader({ ...header, to: '../etc' })).toThrow(MailbagError);
    expect(() => encodeJobHeader({ ...header, args: ['a\nb'] })).toThrow(/NUL, CR or LF/);
    expect(() => encodeJobHeader({ ...header, id: 'x' })).toThrow(/job id/);
  });
});

describe('job header round trip (property)', () => {
  const name = fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,20}$/);
  // eslint-disable-next-line no-control-regex
  const text = fc.string({ unit: 'binary', maxLength: 60 }).filter((s) => !/[\0-\x1f\x7f]/.test(s));
  const headerArb = fc.record({
    id: fc.tuple(fc.integer({ min: 0, max: 2 ** 47 }), fc.stringMatching(/^[0-9a-z]{4,20}$/)).map(([t, r]) => t.toString(16).padStart(12, '0') + r),
    from: name,
    to: name,
    created: fc.date({ min: new Date(0), max: new Date(8.64e15), noInvalidDate: true }).map((d) => d.toISOString()).filter((s) => /^\d{4}-/.test(s)),
    command: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,10}$/),
    args: fc.array(text, { maxLength: 8 }),
    sender: text,
    recipients: fc.array(text, { maxLength: 8 }),
  });

  it('decode(encode(h) + payload) gives h back and the payload untouched', () => {
    fc.assert(
      fc.property(headerArb, fc.uint8Array({ maxLength: 200 }), (h, payload) => {
        const head = encodeJobHeader(h);
        const r = decodeJobHeader(Buffer.concat([head, payload]));
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        expect(r.value.header).toEqual(h);
        expect(r.value.length).toBe(head.length);
      }),
      { numRuns: 300 },
    );
  });
});

describe('hostile job headers', () => {
  it('every truncation of a valid header is "truncated", never a header', () => {
    const bytes = encodeJobHeader(header);
    for (let n = 0; n < bytes.length; n++) {
      expect(issueOf(bytes.subarray(0, n)).code, `cut at ${n}`).toBe('truncated');
    }
  });

  it('refuses a wrong magic', () => {
    expect(issueOf('From me Sun Nov 22\n').code).toBe('bad-magic');
    expect(issueOf('mailbag-bag 1\n{}\n').code).toBe('bad-magic');
    expect(issueOf('MAILBAG-JOB 1\n{}\n').code).toBe('bad-magic');
    expect(issueOf('mailbag-job one\n{}\n').code).toBe('bad-magic');
    expect(issueOf('mailbag-job 1 \n{}\n').code).toBe('bad-magic');
    expect(issueOf('\0\0\0\0').code).toBe('bad-magic');
    expect(issueOf('mailbag-job 1234567890123').code).toBe('bad-magic');
  });

  it('refuses version 2 by name', () => {
    const issue = issueOf(GOLDEN.replace('mailbag-job 1', 'mailbag-job 2'));
    expect(issue).toEqual({ code: 'bad-version', message: 'job format version 2 is not supported; this mailbag reads version 1' });
    expect(issueOf('mailbag-job 0\n').code).toBe('bad-version');
  });

  it('refuses a header over LIMITS.maxJobHeader without reading past the cap', () => {
    const big = Buffer.concat([Buffer.from(JOB_MAGIC_LINE), Buffer.alloc(LIMITS.maxJobHeader + 10, 0x61)]);
    expect(issueOf(big).code).toBe('header-too-big');
    // the same with a newline far past the cap
    expect(issueOf(Buffer.concat([big, Buffer.from('\n')])).code).toBe('header-too-big');
    expect(MAX_JOB_PREFIX).toBeLessThan(LIMITS.maxJobHeader + 64);
  });

  it('refuses a header with a recipient list that makes it oversized, when written', () => {
    const many = Array.from({ length: LIMITS.maxRecipients }, () => 'x'.repeat(LIMITS.maxArgLength));
    expect(() => encodeJobHeader({ ...header, args: many, recipients: many })).toThrow(/over \d+ bytes/);
  });

  it('refuses non-JSON, non-objects, bad UTF-8 and NUL', () => {
    expect(issueOf(withHeader('{"id":')).code).toBe('bad-header');
    expect(issueOf(withHeader('[]')).code).toBe('bad-header');
    expect(issueOf(withHeader('null')).code).toBe('bad-header');
    expect(issueOf(Buffer.concat([Buffer.from(JOB_MAGIC_LINE + '{"id":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n')])).message).toMatch(/UTF-8/);
    expect(issueOf(withField('sender', 'a\u0000b')).message).toMatch(/sender contains NUL/);
    expect(issueOf(withField('args', ['ok', 'x\ry'])).message).toMatch(/args\[1\] contains NUL, CR or LF/);
  });

  it.each([
    ['id', '../../etc/passwd', /id .* is not a job id/],
    ['id', '019A9F0C2E1B000A1B2C', /not a job id/],
    ['id', '019a9f0c2e1b', /not a job id/],
    ['id', 12, /not a job id/],
    ['from', '..', /not a site name/],
    ['to', '../hub', /not a peer name/],
    ['to', 'hub/x', /not a peer name/],
    ['to', '.hidden', /not a peer name/],
    ['to', 'Hub', /not a peer name/],
    ['to', 'a'.repeat(LIMITS.maxNameLength + 1), /not a peer name/],
    ['created', 'yesterday', /created/],
    ['created', '2026-11-22T05:21:36+01:00', /created/],
    ['created', '2026-13-45T05:21:36Z', /created/],
    ['command', '/bin/sh', /command/],
    ['command', 'rmail; rm -rf /', /command/],
    ['command', '', /command/],
    ['args', 'a@b', /args must be an array/],
    ['args', [1], /args\[0\] must be a string/],
    ['args', ['x'.repeat(LIMITS.maxArgLength + 1)], /longer than 1000 bytes/],
    ['args', Array.from({ length: LIMITS.maxRecipients + 1 }, () => 'a'), /more than 1000/],
    ['recipients', Array.from({ length: LIMITS.maxRecipients + 1 }, () => 'a'), /more than 1000/],
    ['sender', null, /sender must be a string/],
    ['sender', 'x'.repeat(LIMITS.maxAddressLength + 1), /longer than/],
  ])('refuses %s = %j', (k, v, why) => {
    const issue = issueOf(withField(k, v));
    expect(issue.code).toBe('bad-header');
    expect(issue.message).toMatch(why);
  });

  it('refuses missing and unknown fields (including __proto__)', () => {
    const { sender: _s, ...missing } = header;
    expect(issueOf(withHeader(JSON.stringify(missing))).message).toMatch(/missing field "sender"/);
    expect(issueOf(withHeader(JSON.stringify({ ...header, extra: 1 }))).message).toMatch(/unknown field "extra"/);
    expect(issueOf(withHeader(JSON.stringify(header).replace('{', '{"__proto__":{"x":1},'))).message).toMatch(/unknown field "__proto__"/);
  });

  it('multi-byte arguments count in bytes, not characters', () => {
    const arg = 'ä'.repeat(LIMITS.maxArgLength / 2 + 1); // 1002 bytes, 501 characters
    expect(issueOf(withField('args', [arg])).message).toMatch(/longer than 1000 bytes/);
  });
});
