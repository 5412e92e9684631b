// sec12: a job header refuses the C1 controls (U+0080-U+009F) where it refuses C0 controls
// and DEL, with the same words. Before, the header took them (only the printing, peerText
// in status/failed/run, turned them into `?`), so a peer's job could carry CSI (U+009B) or
// OSC (U+009D) into every other place a header's text goes (logs, notices, an action's
// argv, sendmail's). The check is on code points of the decoded text: the UTF-8 bytes
// 0x80-0x9F inside another character (`ą` is C4 85, `…` E2 80 A6) are no C1 control, and
// SMTPUTF8 addresses are taken as before. The front doors (lib/envelope/address.ts) and
// mailbag's rmail refuse them in an address too. A bag carrying such a job from a peer
// (one running an older mailbag, or written by hand) is refused bad-job at staging; what
// the sending side then does with the job: below, with two real spools.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeJobHeader, encodeJobHeader, JOB_MAGIC_LINE, type JobHeader } from '../../../lib/job/header.js';
import { checkRecipient, checkSender } from '../../../lib/envelope/address.js';
import { checkRmailRecipients } from '../../../lib/deliver/rmail.js';
import { BagRefusal, DirectSink, LocalGrowth, PartialSource, stageFrom } from '../../../lib/session/stage-bag.js';
import { tempDir } from '../session/sites.js';

const ID = '0190a1b2c3d4abcdefgh';

function header(over: Partial<JobHeader> = {}): JobHeader {
  return { id: ID, from: 'home', to: 'hub', created: '2026-11-22T18:00:00.000Z', command: 'rmail', args: ['me@hub.example'], sender: 'a@home.example', recipients: ['me@hub.example'], ...over };
}

/** the header as a peer could write it: no check on the way */
function raw(h: unknown): Buffer {
  return Buffer.from(`${JOB_MAGIC_LINE}${JSON.stringify(h)}\n`);
}

function problemOf(h: unknown): string {
  const r = decodeJobHeader(raw(h));
  if (r.ok) return 'accepted';
  return r.issue.message.replace(/^bad job header: /, '');
}

const BAD: [string, Partial<JobHeader>, string][] = [
  ['CSI (U+009B) in a recipient', { recipients: ['ok@y.test', 'x\u009b2J@y.test'] }, 'recipients[1] contains a control character (U+009B)'],
  ['OSC (U+009D) ... ST (U+009C) in the sender', { sender: 's\u009d0;pwned\u009c@x.test' }, 'sender contains a control character (U+009D)'],
  ['U+0080 in the sender', { sender: 'a\u0080@x.test' }, 'sender contains a control character (U+0080)'],
  ['NEL (U+0085) in a recipient', { recipients: ['a\u0085b@y.test'] }, 'recipients[0] contains a control character (U+0085)'],
  ['U+009F in args', { args: ['a\u009f'] }, 'args[0] contains a control character (U+009F)'],
  ['CSI in args', { args: ['x\u009b2J@y.test'] }, 'args[0] contains a control character (U+009B)'],
];

describe('sec12: job header, C1 controls', () => {
  for (const [what, over, message] of BAD) {
    it(`${what}: refused by the decoder and the encoder, naming the code point only`, () => {
      const p = problemOf(header(over));
      expect(p).toBe(message);
      expect(p).not.toMatch(/[\x00-\x1f\x7f-\x9f]/); // eslint-disable-line no-control-regex
      expect(() => encodeJobHeader(header(over))).toThrow(`cannot write job: ${message}`);
    });
  }

  it('characters whose UTF-8 holds bytes 0x80-0x9F, U+00A0 and up, SMTPUTF8 addresses: taken', () => {
    // ą = C4 85, … = E2 80 A6, € = E2 82 AC, 𝄞 = F0 9D 84 9E, U+00A0 = C2 A0
    const h = header({ sender: 'ą…€𝄞@bücher.example', recipients: ['δοκιμή@παράδειγμα.δοκιμή', 'a\u00a0b@y.test', 'ÿ@y.test'], args: ['jörg@bücher.example', 'a\tb'] });
    expect(Buffer.from(h.sender).includes(0x85)).toBe(true);
    expect(problemOf(h)).toBe('accepted');
    expect(encodeJobHeader(h).equals(raw(h))).toBe(true);
  });
});

describe('sec12: front doors, C1 controls in an address', () => {
  it('checkRecipient and checkSender refuse them, rmail and BSMTP alike; UTF-8 is taken', () => {
    for (const job of ['rmail', 'bsmtp'] as const) {
      expect(checkRecipient('x\u009b2J@y.test', job)).toMatchObject({ ok: false, issue: { code: 'bad-recipient' } });
      expect(checkSender('s\u009d0;x\u009c@x.test', job)).toMatchObject({ ok: false, issue: { code: 'bad-sender' } });
      expect(checkRecipient('ą…@bücher.example', job).ok).toBe(true);
      expect(checkSender('ą…@bücher.example', job).ok).toBe(true);
    }
    expect(() => checkRmailRecipients(['x\u0085@y.test'])).toThrow(/has a control character/);
    expect(() => checkRmailRecipients(['ą@y.test'])).not.toThrow();
  });
});

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

async function tarOf(name: string, bytes: Buffer): Promise<Buffer> {
  const pack = tar.pack();
  pack.entry({ name, size: bytes.length }, bytes);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('sec12: a bag from a peer whose job carries a C1 control', () => {
  for (const size of [2000, 256 * 1024 + 1]) {
    it(`is refused bad-job at staging and nothing is staged (${size} bytes)`, async () => {
      const head = raw(header({ recipients: ['x\u009b2J@y.test'] }));
      const bag = gzipSync(await tarOf(ID, Buffer.concat([head, Buffer.alloc(size - head.length, 0x61)])));
      const t = tempDir('sec12-c1');
      cleanups.push(t.remove);
      const hash = createHash('sha256').update(bag).digest('hex');
      const inDir = join(t.dir, 'in');
      mkdirSync(inDir);
      const part = join(inDir, `${hash}.part`);
      writeFileSync(part, bag);
      const staging = join(inDir, `${hash}.d`);
      const caps = { maxBag: 64 * 1024 * 1024, maxExpanded: 64 * 1024 * 1024, maxJobs: 100, maxJob: 2 * 1024 * 1024 };
      const req = { bag: hash, codec: 'gzip' as const, caps, site: 'hub', peer: 'home', accept: ['rmail'], part, staging, size: bag.length };
      let refusal: BagRefusal | undefined;
      try {
        await stageFrom(new PartialSource(part, bag.length, new LocalGrowth(bag.length)), req, new DirectSink());
      } catch (err) {
        if (!(err instanceof BagRefusal)) throw err;
        refusal = err;
      }
      expect(refusal?.code).toBe('bad-job');
      expect(refusal!.message).toMatch(/recipients\[0\] contains a control character \(U\+009B\)$/);
      expect(existsSync(staging)).toBe(false);
    });
  }
});
