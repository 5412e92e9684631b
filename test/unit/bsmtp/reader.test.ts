import { describe, expect, test } from 'vitest';
import { LIMITS } from '../../../lib/limits.js';
import {
  BsmtpChecker,
  BsmtpReader,
  bsmtpIssueError,
  encodeBsmtp,
  readBsmtp,
  validateBsmtp,
  type BsmtpEvent,
  type BsmtpIssueCode,
} from '../../../lib/bsmtp/index.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function read(s: string | Buffer) {
  const r = readBsmtp(typeof s === 'string' ? b(s) : s);
  if (!r.ok) throw new Error(`unexpected issue ${r.issue.code}: ${r.issue.message}`);
  return r.value;
}

function issue(s: string | Buffer): { code: BsmtpIssueCode; line: number; message: string } {
  const r = readBsmtp(typeof s === 'string' ? b(s) : s);
  if (r.ok) throw new Error(`expected an issue, read ${r.value.transactions.length} transactions`);
  return r.issue;
}

describe('BSMTP reader: what checklist 8 says we accept', () => {
  test('Exim use_bsmtp output, several transactions', () => {
    const v = read('MAIL FROM:<a@x>\nRCPT TO:<r1@y>\nRCPT TO:<r2@y>\nDATA\nSubject: s\n\n..x\n.\nMAIL FROM:<>\nRCPT TO:<p@y>\nDATA\nbounce\n.\n');
    expect(v.transactions).toHaveLength(2);
    expect(v.transactions[0]?.envelope).toEqual({
      sender: 'a@x',
      mailParams: [],
      recipients: [
        { address: 'r1@y', params: [] },
        { address: 'r2@y', params: [] },
      ],
    });
    expect(v.transactions[0]?.body.toString()).toBe('Subject: s\n\n.x\n');
    expect(v.transactions[1]?.envelope.sender).toBe('');
    expect(v.transactions[1]?.body.toString()).toBe('bounce\n');
    expect(v.quit).toBe(false);
  });

  test('HELO/EHLO act as RSET, QUIT ends the input (the rest is ignored)', () => {
    const v = read('HELO home\nMAIL FROM:<a@x>\nRCPT TO:<r@y>\nEHLO again\nMAIL FROM:<b@x>\nRCPT TO:<s@y>\nDATA\nhi\n.\nQUIT\ngarbage after quit\n');
    expect(v.transactions.map((t) => t.envelope.sender)).toEqual(['b@x']);
    expect(v.transactions[0]?.envelope.recipients.map((r) => r.address)).toEqual(['s@y']);
    expect(v.quit).toBe(true);
  });

  test('RSET and NOOP, VRFY, EXPN, ETRN, HELP as no-ops', () => {
    const v = read('MAIL FROM:<a@x>\nRCPT TO:<r@y>\nRSET\nNOOP\nvrfy x\nEXPN y\nETRN z\nhelp\nMAIL FROM:<b@x>\nRCPT TO:<s@y>\nDATA\nx\n.\n');
    expect(v.transactions.map((t) => t.envelope.sender)).toEqual(['b@x']);
  });

  test('lower-case verbs, MAIL FROM: a without brackets, spaces after the colon', () => {
    const v = read('mail from: a@x\nrcpt to: r@y NOTIFY=NEVER\nRcPt To:<s@y>\ndata\nx\n.\n');
    expect(v.transactions[0]?.envelope).toEqual({
      sender: 'a@x',
      mailParams: [],
      recipients: [
        { address: 'r@y', params: [{ name: 'NOTIFY', value: 'NEVER' }] },
        { address: 's@y', params: [] },
      ],
    });
  });

  test('CRLF line ends everywhere', () => {
    const v = read('HELO h\r\nMAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\nSubject: s\r\n\r\n..x\r\nbare\rcr\r\n.\r\nQUIT\r\n');
    expect(v.transactions[0]?.body.toString('latin1')).toBe('Subject: s\n\n.x\nbare\rcr\n');
    expect(v.quit).toBe(true);
  });

  test('ESMTP parameters kept verbatim, names upper-cased', () => {
    const v = read('MAIL FROM:<a@x> ret=HDRS envid=Abc+2Bdef size=42 BODY=8BITMIME smtputf8\nRCPT TO:<r@y> notify=success,FAILURE ORCPT=rfc822;R@Y\nDATA\n.\n');
    const e = v.transactions[0]?.envelope;
    expect(e?.mailParams).toEqual([
      { name: 'RET', value: 'HDRS' },
      { name: 'ENVID', value: 'Abc+2Bdef' },
      { name: 'SIZE', value: '42' },
      { name: 'BODY', value: '8BITMIME' },
      { name: 'SMTPUTF8', value: null },
    ]);
    expect(e?.recipients[0]?.params).toEqual([
      { name: 'NOTIFY', value: 'success,FAILURE' },
      { name: 'ORCPT', value: 'rfc822;R@Y' },
    ]);
    expect(v.transactions[0]?.body.length).toBe(0);
  });

  test('quoted local parts with spaces and ">" inside quotes, UTF-8 addresses', () => {
    const v = read('MAIL FROM:<"john doe"@x>\nRCPT TO:<jörg@bücher.example>\nDATA\nx\n.\n'.replace('jörg@bücher', Buffer.from('jörg@bücher').toString('latin1')));
    expect(v.transactions[0]?.envelope.sender).toBe('"john doe"@x');
    expect(v.transactions[0]?.envelope.recipients[0]?.address).toBe('jörg@bücher.example');
  });

  test('NUL and 8-bit bytes in the body are data; a dot after a bare CR is data', () => {
    const body = Buffer.from([0x41, 0x00, 0xff, 0x0d, 0x2e, 0x0a, 0x80, 0x0a]);
    const v = read(Buffer.concat([b('MAIL FROM:<a@x>\nRCPT TO:<r@y>\nDATA\n'), body, b('.\n')]));
    expect(v.transactions[0]?.body).toEqual(body);
  });

  test('a stuffed line whose dot is followed by a CR', () => {
    expect(read('MAIL FROM:<a@x>\nRCPT TO:<r@y>\nDATA\n.\rx\n.\r\r\n').transactions[0]?.body.toString('latin1')).toBe('\rx\n');
  });

  test('a last QUIT without its newline', () => {
    expect(read('MAIL FROM:<a@x>\nRCPT TO:<r@y>\nDATA\nx\n.\nQUIT').quit).toBe(true);
  });

  test('an empty stream reads as no transactions; the checker calls it bsmtp-empty', async () => {
    expect(read('').transactions).toEqual([]);
    const r = await validateBsmtp([]);
    expect(!r.ok && r.issue.code).toBe('bsmtp-empty');
  });
});

describe('BSMTP reader: hostile streams', () => {
  const head = 'MAIL FROM:<a@x>\nRCPT TO:<r@y>\nDATA\n';
  const refused: Array<[string, string | Buffer, BsmtpIssueCode, number]> = [
    ['missing final dot', `${head}hello\n`, 'bsmtp-incomplete', 5],
    ['a final dot without LF', `${head}hello\n.`, 'bsmtp-incomplete', 5],
    ['a final dot cut after its CR', `${head}hello\n.\r`, 'bsmtp-incomplete', 5],
    ['MAIL and RCPT without DATA', 'MAIL FROM:<a@x>\nRCPT TO:<r@y>\n', 'bsmtp-incomplete', 3],
    ['a command line cut short', 'MAIL FROM:<a@x>\nRCPT TO:<r', 'bsmtp-incomplete', 2],
    ['an unknown verb', `${head}x\n.\nBDAT 10 LAST\n`, 'bsmtp-unknown-command', 6],
    ['a leading From_ line', `From a@x  Sun Nov 22 04:10:00 2026\n${head}x\n.\n`, 'bsmtp-unknown-command', 1],
    ['a lone dot as a command', `.\n${head}`, 'bsmtp-unknown-command', 1],
    ['an empty command line', `${head}x\n.\n\n`, 'bsmtp-unknown-command', 6],
    ['NUL in a command', b('MAIL FROM:<a@x>\0\n'), 'bsmtp-nul', 1],
    ['bare CR in a command', 'MAIL FROM:<a@x>\rRCPT TO:<r@y>\n', 'bsmtp-bare-cr', 1],
    ['two CRs before LF in a command', 'MAIL FROM:<a@x>\r\r\n', 'bsmtp-bare-cr', 1],
    ['RCPT before MAIL', 'RCPT TO:<r@y>\n', 'bsmtp-sequence', 1],
    ['DATA without RCPT', 'MAIL FROM:<a@x>\nDATA\n', 'bsmtp-sequence', 2],
    ['DATA without MAIL', 'DATA\n', 'bsmtp-sequence', 1],
    ['MAIL twice', 'MAIL FROM:<a@x>\nMAIL FROM:<b@x>\n', 'bsmtp-sequence', 2],
    ['MAIL without FROM:', 'MAIL <a@x>\n', 'bsmtp-syntax', 1],
    ['RCPT FROM:', 'MAIL FROM:<a@x>\nRCPT FROM:<r@y>\n', 'bsmtp-syntax', 2],
    ['unterminated <', 'MAIL FROM:<a@x\n', 'bsmtp-syntax', 1],
    ['garbage after >', 'MAIL FROM:<a@x>junk\n', 'bsmtp-syntax', 1],
    ['no address', 'MAIL FROM:\n', 'bsmtp-syntax', 1],
    ['bad parameter name', 'MAIL FROM:<a@x> R_ET=x\n', 'bsmtp-syntax', 1],
    ['empty parameter value', 'MAIL FROM:<a@x> RET=\n', 'bsmtp-syntax', 1],
    ['DATA with an argument', 'MAIL FROM:<a@x>\nRCPT TO:<r@y>\nDATA now\n', 'bsmtp-syntax', 3],
    ['a command that is not UTF-8', b('MAIL FROM:<\xff@x>\n'), 'bsmtp-syntax', 1],
    ['an empty recipient', 'MAIL FROM:<a@x>\nRCPT TO:<>\n', 'bsmtp-bad-address', 2],
    ['a recipient beginning with -', 'MAIL FROM:<a@x>\nRCPT TO:<-oi@y>\n', 'bsmtp-bad-address', 2],
    ['a control character in an address', 'MAIL FROM:<a\x01@x>\n', 'bsmtp-bad-address', 1],
    ['a command line over the cap', `MAIL FROM:<${'a'.repeat(LIMITS.maxBsmtpCommandLine)}@x>\n`, 'bsmtp-command-too-long', 1],
    ['a command line over the cap and no LF', 'A'.repeat(LIMITS.maxBsmtpCommandLine + 10), 'bsmtp-command-too-long', 1],
  ];

  test.each(refused)('%s', (_name, input, code, line) => {
    const got = issue(input);
    expect(got.code).toBe(code);
    expect(got.line).toBe(line);
    expect(got.message).not.toMatch(/^BSMTP line/);
    const err = bsmtpIssueError(got);
    expect(err.code).toBe('bad-bsmtp');
    expect(err.message).toBe(`BSMTP line ${line}: ${got.message}`);
    // a caller that already put the line in front does not get it twice
    expect(bsmtpIssueError({ ...got, message: err.message }).message).toBe(err.message);
  });

  test('a command line exactly at the cap is taken, with or without CR', () => {
    const envid = 'e'.repeat(LIMITS.maxBsmtpCommandLine - 'MAIL FROM:<a@x> ENVID='.length);
    const line = `MAIL FROM:<a@x> ENVID=${envid}`;
    expect(line).toHaveLength(LIMITS.maxBsmtpCommandLine);
    for (const end of ['\n', '\r\n']) {
      const v = read(`${line}${end}RCPT TO:<r@y>\nDATA\n.\n`);
      expect(v.transactions[0]?.envelope.mailParams[0]?.value).toBe(envid);
    }
    expect(issue(`${line}x\nRCPT TO:<r@y>\nDATA\n.\n`).code).toBe('bsmtp-command-too-long');
  });

  test('a huge text line is refused without being buffered', () => {
    const reader = new BsmtpReader({ maxTextLine: 1000 });
    reader.push(b(`${head}`));
    const events: BsmtpEvent[] = [];
    for (let i = 0; i < 20; i++) events.push(...reader.push(b('x'.repeat(100))));
    const err = events.find((e) => e.type === 'error');
    expect(err?.type === 'error' && err.issue.code).toBe('bsmtp-line-too-long');
    expect(reader.done).toBe(true);
    // text lines up to the cap are fine
    for (const end of ['\n', '\r\n']) {
      const ok = readBsmtp(b(`${head}${'y'.repeat(1000)}${end}.\n`), { maxTextLine: 1000 });
      expect(ok.ok).toBe(true);
      const over = readBsmtp(b(`${head}${'y'.repeat(1001)}${end}.\n`), { maxTextLine: 1000 });
      expect(!over.ok && over.issue.code).toBe('bsmtp-line-too-long');
    }
    // a run of CRs counts (only one CR before the LF is free)
    const crs = readBsmtp(b(`${head}${'\r'.repeat(5000)}\n.\n`), { maxTextLine: 1000 });
    expect(!crs.ok && crs.issue.code).toBe('bsmtp-line-too-long');
  });

  test('the default text-line cap', () => {
    const long = 'z'.repeat(LIMITS.maxBsmtpTextLine + 1);
    expect(issue(`${head}${long}\n.\n`).code).toBe('bsmtp-line-too-long');
    expect(read(`${head}${long.slice(1)}\n.\n`).transactions[0]?.body.length).toBe(LIMITS.maxBsmtpTextLine + 1);
  });

  test('too many transactions, too many recipients, too big', () => {
    const one = `${head}x\n.\n`;
    expect(readBsmtp(b(one.repeat(3)), { maxTransactions: 3 }).ok).toBe(true);
    const t = readBsmtp(b(one.repeat(4)), { maxTransactions: 3 });
    expect(!t.ok && t.issue.code).toBe('bsmtp-too-many-transactions');
    const r = readBsmtp(b('MAIL FROM:<a@x>\nRCPT TO:<a@y>\nRCPT TO:<b@y>\nRCPT TO:<c@y>\n'), { maxRecipients: 2 });
    expect(!r.ok && r.issue.code).toBe('bsmtp-too-many-recipients');
    const s = readBsmtp(b(`${head}12345\n.\n`), { maxMessageSize: 5 });
    expect(!s.ok && s.issue.code).toBe('bsmtp-too-big');
    expect(readBsmtp(b(`${head}1234\n.\n`), { maxMessageSize: 5 }).ok).toBe(true);
    expect(!s.ok && bsmtpIssueError(s.issue).code).toBe('too-big');
    expect(bsmtpIssueError(issue('RCPT TO:<r@y>\n')).code).toBe('bad-bsmtp');
  });

  test('nothing is accepted after the first error', () => {
    const reader = new BsmtpReader();
    const first = reader.push(b('FOO\nMAIL FROM:<a@x>\n'));
    expect(first.map((e) => e.type)).toEqual(['error']);
    expect(reader.push(b('RCPT TO:<r@y>\nDATA\nx\n.\n'))).toEqual([]);
    expect(reader.end()).toEqual([]);
  });

  test('messages before an error were complete; the error still comes', () => {
    const reader = new BsmtpReader();
    const events = reader.push(b(`${head}x\n.\nBOGUS\n`));
    expect(events.map((e) => e.type)).toEqual(['message', 'body', 'end-of-message', 'error']);
  });

  test('truncated at every byte position of a small batch: complete messages only, never a partial one', () => {
    const batch = Buffer.concat([
      encodeBsmtp({ sender: 'a@x', mailParams: [{ name: 'RET', value: 'HDRS' }], recipients: ['r@y'] }, b('Subject: 1\n\n.dot\nline\n')),
      encodeBsmtp({ sender: '', recipients: ['s@y', 't@y'] }, b('.\n..\n\r\nend')),
    ]);
    const firstEnd = batch.indexOf(b('\n.\nMAIL')) + 3;
    for (let cut = 0; cut <= batch.length; cut++) {
      const r = readBsmtp(batch.subarray(0, cut));
      if (cut === firstEnd || cut === batch.length || cut === 0) {
        expect(r.ok, `cut ${cut}`).toBe(true);
        if (r.ok) expect(r.value.transactions).toHaveLength(cut === 0 ? 0 : cut === firstEnd ? 1 : 2);
        continue;
      }
      expect(r.ok, `cut ${cut}`).toBe(false);
      if (!r.ok) expect(r.issue.code, `cut ${cut}`).toBe('bsmtp-incomplete');
      // the streaming reader never reports an end-of-message for a cut-off message
      const reader = new BsmtpReader();
      const events = [...reader.push(batch.subarray(0, cut)), ...reader.end()];
      const ends = events.filter((e) => e.type === 'end-of-message').length;
      expect(ends, `cut ${cut}`).toBe(cut >= firstEnd ? 1 : 0);
      expect(events.at(-1)?.type).toBe('error');
    }
  });
});

describe('BsmtpChecker and validateBsmtp', () => {
  test('envelopes and sizes of a whole stream, in chunks', async () => {
    const stream = Buffer.concat([
      b('HELO h\n'),
      encodeBsmtp({ sender: 'a@x', recipients: ['r@y'] }, b('abc\n')),
      encodeBsmtp({ sender: '', recipients: ['s@y'] }, b('.\n')),
      b('QUIT\n'),
    ]);
    const chunks = Array.from({ length: Math.ceil(stream.length / 7) }, (_, i) => stream.subarray(i * 7, i * 7 + 7));
    const r = await validateBsmtp(chunks);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.quit).toBe(true);
    expect(r.value.transactions.map((t) => [t.envelope.sender, t.size, t.line])).toEqual([
      ['a@x', 4, 2],
      ['', 2, 7],
    ]);
  });

  test('the checker reports the first issue from push', () => {
    const c = new BsmtpChecker();
    expect(c.push(b('MAIL FROM:<a@x>\n'))).toBeNull();
    expect(c.push(b('DATA\n'))?.code).toBe('bsmtp-sequence');
    const r = c.end();
    expect(!r.ok && r.issue.code).toBe('bsmtp-sequence');
  });
});

describe('BSMTP reader: byte offsets of the DATA text (what lib/deliver/bsmtp-index.ts reads bodies by)', () => {
  const input = 'EHLO hub\r\nMAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\nSubject: s\r\n\r\n..x\r\n.\r\nMAIL FROM:<>\nRCPT TO:<p@y>\nDATA\n.\nQUIT\n';
  const stuffed = ['Subject: s\r\n\r\n..x\r\n', ''];

  test('dataStart and dataEnd frame the dot-stuffed text, whatever the chunk borders; without bodies, no body events and the same sizes', () => {
    for (let cut = 0; cut <= input.length; cut++) {
      for (const bodies of [true, false]) {
        const r = new BsmtpReader({ bodies });
        const events = [...r.push(b(input.slice(0, cut))), ...r.push(b(input.slice(cut))), ...r.end()];
        const starts = events.flatMap((e) => (e.type === 'message' ? [e.dataStart] : []));
        const ends = events.flatMap((e) => (e.type === 'end-of-message' ? [e.dataEnd] : []));
        expect(starts.map((s, i) => input.slice(s, ends[i])), `cut ${cut}`).toEqual(stuffed);
        expect(events.flatMap((e) => (e.type === 'end-of-message' ? [e.size] : []))).toEqual([15, 0]); // un-stuffed, LF line ends
        expect(events.some((e) => e.type === 'body')).toBe(bodies);
      }
    }
  });

  test('a source route is dropped, the mailbox kept (RFC 5321 §4.1.1.3)', () => {
    const v = read('MAIL FROM:<@hub.example,@gw.example:a@x> RET=HDRS\nRCPT TO:<@gw.example:r@y>\nDATA\nbody\n.\n');
    expect(v.transactions[0]!.envelope).toEqual({ sender: 'a@x', mailParams: [{ name: 'RET', value: 'HDRS' }], recipients: [{ address: 'r@y', params: [] }] });
  });
});
