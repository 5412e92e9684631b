import { describe, expect, test } from 'vitest';
import { Readable } from 'node:stream';
import { InputError } from '../../../lib/errors.js';
import { LIMITS } from '../../../lib/limits.js';
import {
  BsmtpBodyEncoder,
  createBsmtpStream,
  encodeBsmtp,
  formatBsmtpEnvelope,
  keepParams,
  MAIL_PARAMS,
  normaliseBody,
  paramsFromObject,
  RCPT_PARAMS,
  writeBsmtp,
} from '../../../lib/bsmtp/index.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

async function collect(it: AsyncIterable<Buffer> | Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe('BSMTP writer: Exim use_bsmtp shape', () => {
  test('checklist 7: MAIL, RCPT…, DATA, stuffed message with LF, final dot; no HELO/QUIT', () => {
    const out = encodeBsmtp({ sender: 'a@x.example', recipients: ['r1@y.example', 'r2@y.example'] }, b('Subject: hi\n.hidden: header\n\n.\n..two\nend\n'));
    expect(out.toString('latin1')).toBe(
      'MAIL FROM:<a@x.example>\nRCPT TO:<r1@y.example>\nRCPT TO:<r2@y.example>\nDATA\n' +
        'Subject: hi\n..hidden: header\n\n..\n...two\nend\n.\n',
    );
  });

  test('the null sender is <>', () => {
    expect(formatBsmtpEnvelope({ sender: '', recipients: ['p@x'] })).toBe('MAIL FROM:<>\nRCPT TO:<p@x>\nDATA\n');
  });

  test('ESMTP parameters are appended in the order given', () => {
    const env = formatBsmtpEnvelope({
      sender: 'a@x',
      mailParams: [
        { name: 'RET', value: 'HDRS' },
        { name: 'ENVID', value: 'QQ314159' },
        { name: 'SIZE', value: '1234' },
        { name: 'BODY', value: '8BITMIME' },
        { name: 'SMTPUTF8', value: null },
      ],
      recipients: [{ address: 'r@y', params: [{ name: 'NOTIFY', value: 'SUCCESS,FAILURE' }, { name: 'ORCPT', value: 'rfc822;r+2Bx@y' }] }, 'q@y'],
    });
    expect(env).toBe(
      'MAIL FROM:<a@x> RET=HDRS ENVID=QQ314159 SIZE=1234 BODY=8BITMIME SMTPUTF8\n' +
        'RCPT TO:<r@y> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;r+2Bx@y\nRCPT TO:<q@y>\nDATA\n',
    );
  });

  test('addresses with spaces travel in BSMTP (quoted local parts), UTF-8 too', () => {
    expect(formatBsmtpEnvelope({ sender: '"john doe"@x', recipients: ['jörg@bücher.example'] })).toBe(
      'MAIL FROM:<"john doe"@x>\nRCPT TO:<jörg@bücher.example>\nDATA\n',
    );
  });

  test('refuses envelopes the reader would refuse', () => {
    const bad: Array<[Parameters<typeof formatBsmtpEnvelope>[0], string]> = [
      [{ sender: 'a@x', recipients: [] }, 'no-recipients'],
      [{ sender: 'a\n@x', recipients: ['r@y'] }, 'bad-sender'],
      [{ sender: '<a@x>', recipients: ['r@y'] }, 'bad-sender'],
      [{ sender: 'a@x', recipients: ['-oQ/tmp'] }, 'bad-recipient'],
      [{ sender: 'a@x', recipients: ['r@y\r\nDATA'] }, 'bad-recipient'],
      [{ sender: 'a@x', recipients: ['r>@y'] }, 'bad-recipient'],
      [{ sender: 'a@x', recipients: [''] }, 'bad-recipient'],
      [{ sender: 'a@x', mailParams: [{ name: 'RET', value: 'HDRS\nQUIT' }], recipients: ['r@y'] }, 'bad-bsmtp'],
      [{ sender: 'a@x', mailParams: [{ name: 'ret', value: 'HDRS' }], recipients: ['r@y'] }, 'bad-bsmtp'],
      [{ sender: 'a@x', mailParams: [{ name: 'RET', value: '' }], recipients: ['r@y'] }, 'bad-bsmtp'],
      [{ sender: 'a@x', recipients: [{ address: 'r@y', params: [{ name: 'NO TIFY', value: 'NEVER' }] }] }, 'bad-bsmtp'],
      [{ sender: 'a@x', recipients: [{ address: 'r@y', params: [{ name: 'ORCPT', value: 'x'.repeat(LIMITS.maxBsmtpCommandLine) }] }] }, 'bad-bsmtp'],
    ];
    for (const [env, code] of bad) {
      let caught: unknown;
      try {
        formatBsmtpEnvelope(env);
      } catch (err) {
        caught = err;
      }
      expect(caught, JSON.stringify(env)).toBeInstanceOf(InputError);
      expect((caught as InputError).code, JSON.stringify(env)).toBe(code);
    }
  });

  test('parameter helpers', () => {
    const mail = paramsFromObject({ RET: 'FULL', ENVID: 'x1', SMTPUTF8: true, AUTH: '<>', BODY: undefined });
    expect(mail).toEqual([
      { name: 'RET', value: 'FULL' },
      { name: 'ENVID', value: 'x1' },
      { name: 'SMTPUTF8', value: null },
      { name: 'AUTH', value: '<>' },
    ]);
    expect(keepParams(mail, MAIL_PARAMS).map((p) => p.name)).toEqual(['RET', 'ENVID', 'SMTPUTF8']);
    expect(keepParams(paramsFromObject({ notify: 'NEVER', orcpt: 'rfc822;a@b', x: '1' }), RCPT_PARAMS)).toEqual([
      { name: 'NOTIFY', value: 'NEVER' },
      { name: 'ORCPT', value: 'rfc822;a@b' },
    ]);
    expect(paramsFromObject(false)).toEqual([]);
  });
});

describe('BSMTP body encoding and its normalisation', () => {
  const cases: Array<[string, string, string]> = [
    // [body, stuffed output, normalised body]
    ['', '.\n', ''],
    ['a\n', 'a\n.\n', 'a\n'],
    ['a', 'a\n.\n', 'a\n'],
    ['a\r\n', 'a\n.\n', 'a\n'],
    ['a\r\r\n', 'a\n.\n', 'a\n'],
    ['a\r', 'a\n.\n', 'a\n'],
    ['\r', '\n.\n', '\n'],
    ['a\rb\n', 'a\rb\n.\n', 'a\rb\n'],
    ['\r.x\n', '\r.x\n.\n', '\r.x\n'],
    ['.', '..\n.\n', '.\n'],
    ['.\n', '..\n.\n', '.\n'],
    ['.\r\n', '..\n.\n', '.\n'],
    ['x\n.\nFrom y\n', 'x\n..\nFrom y\n.\n', 'x\n.\nFrom y\n'],
    ['\n\n', '\n\n.\n', '\n\n'],
    ['\xff\x00\x80\n', '\xff\x00\x80\n.\n', '\xff\x00\x80\n'],
  ];

  test.each(cases)('%j', (body, stuffed, normal) => {
    const enc = new BsmtpBodyEncoder();
    expect(Buffer.concat([enc.push(b(body)), enc.end()]).toString('latin1')).toBe(stuffed);
    expect(normaliseBody(b(body)).toString('latin1')).toBe(normal);
  });

  test('every split of every case, and one byte at a time, gives the same bytes', () => {
    for (const [body, stuffed] of cases) {
      const bytes = b(body);
      for (let cut = 0; cut <= bytes.length; cut++) {
        const enc = new BsmtpBodyEncoder();
        const out = Buffer.concat([enc.push(bytes.subarray(0, cut)), enc.push(bytes.subarray(cut)), enc.end()]);
        expect(out.toString('latin1'), `${JSON.stringify(body)} cut at ${cut}`).toBe(stuffed);
      }
      const enc = new BsmtpBodyEncoder();
      const parts = [...bytes].map((x) => enc.push(Buffer.from([x])));
      expect(Buffer.concat([...parts, enc.end()]).toString('latin1')).toBe(stuffed);
    }
  });

  test('push after end and end twice are programming errors', () => {
    const enc = new BsmtpBodyEncoder();
    enc.end();
    expect(() => enc.push(b('x'))).toThrow();
    expect(() => enc.end()).toThrow();
  });
});

describe('BSMTP streams', () => {
  test('createBsmtpStream: envelope, body, dot (and optional HELO/QUIT)', async () => {
    const s = createBsmtpStream({ sender: 'a@x', recipients: ['r@y'] });
    const out = await collect(Readable.from([b('Sub'), b('ject: x\r'), b('\n\r\n.'), b('body')]).pipe(s));
    expect(out.toString('latin1')).toBe('MAIL FROM:<a@x>\nRCPT TO:<r@y>\nDATA\nSubject: x\n\n..body\n.\n');
    const wrapped = createBsmtpStream({ sender: '', recipients: ['r@y'] }, { helo: 'home.example', quit: true });
    const out2 = await collect(Readable.from([] as Buffer[]).pipe(wrapped));
    expect(out2.toString('latin1')).toBe('HELO home.example\nMAIL FROM:<>\nRCPT TO:<r@y>\nDATA\n.\nQUIT\n');
  });

  test('createBsmtpStream refuses a bad envelope before writing anything', () => {
    expect(() => createBsmtpStream({ sender: 'a@x', recipients: ['-x'] })).toThrow(InputError);
    expect(() => createBsmtpStream({ sender: 'a@x', recipients: ['x@y'] }, { helo: 'a b' })).toThrow(InputError);
  });

  test('writeBsmtp: several transactions from bytes, sync and async chunks', async () => {
    async function* gen(): AsyncGenerator<Buffer> {
      yield b('.a');
      yield b('\r');
      yield b('\nb');
    }
    const out = await collect(
      writeBsmtp(
        [
          { envelope: { sender: 'a@x', recipients: ['r@y'] }, body: b('one\n') },
          { envelope: { sender: '', recipients: ['s@y', 't@y'] }, body: [b('tw'), b('o')] },
          { envelope: { sender: 'c@x', recipients: ['u@y'] }, body: gen() },
        ],
        { quit: true },
      ),
    );
    expect(out.toString('latin1')).toBe(
      'MAIL FROM:<a@x>\nRCPT TO:<r@y>\nDATA\none\n.\n' +
        'MAIL FROM:<>\nRCPT TO:<s@y>\nRCPT TO:<t@y>\nDATA\ntwo\n.\n' +
        'MAIL FROM:<c@x>\nRCPT TO:<u@y>\nDATA\n..a\nb\n.\nQUIT\n',
    );
  });
});
