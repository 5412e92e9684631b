// apply11 (req-sec11.md R5, the header part): a job header whose sender or a recipient
// holds any C0 control or DEL is refused, by the decoder and the encoder alike, and so a
// bag carrying one is refused bad-job at staging, on both of the stager's paths. Such a
// header from a peer reached the admin's terminal raw (status --jobs, failed: an ESC
// sequence colours, retitles, makes a fake link). args may keep TAB. The printing side
// (lib/cli/status.ts, failed.ts) is test/review11/sec11-terminal-escape.test.ts.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeJobHeader, encodeJobHeader, JOB_MAGIC_LINE, type JobHeader } from '../../../lib/job/header.js';
import { BagRefusal, DirectSink, LocalGrowth, PartialSource, stageFrom } from '../../../lib/session/stage-bag.js';
import { tempDir } from '../session/sites.js';

const ID = '0190a1b2c3d4abcdefgh';
const E = '\x1b';

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
  ['ESC (colour) in the sender', { sender: `s${E}[31mRED${E}[0m@x.test` }, 'sender contains a control character (U+001B)'],
  ['an OSC 8 link in a recipient', { recipients: ['ok@y.test', `r${E}]8;;http://evil.test${E}\\click${E}]8;;${E}\\@y.test`] }, 'recipients[1] contains a control character (U+001B)'],
  ['DEL in the sender', { sender: 'a\x7f@x.test' }, 'sender contains a control character (U+007F)'],
  ['TAB in a recipient', { recipients: ['a\t@y.test'] }, 'recipients[0] contains a control character (U+0009)'],
  ['BEL in the sender', { sender: 'a\x07@x.test' }, 'sender contains a control character (U+0007)'],
  ['OSC 0 (title) in args', { args: [`${E}]0;pwned${E}\\a@y.test`] }, 'args[0] contains a control character (U+001B)'],
  ['DEL in args', { args: ['a\x7f'] }, 'args[0] contains a control character (U+007F)'],
];

describe('job header: C0 controls and DEL in the envelope', () => {
  for (const [what, over, message] of BAD) {
    it(`${what}: refused by the decoder and the encoder, naming the code point only`, () => {
      const p = problemOf(header(over));
      expect(p).toBe(message);
      expect(p).not.toMatch(/[\x00-\x1f\x7f]/); // eslint-disable-line no-control-regex
      expect(() => encodeJobHeader(header(over))).toThrow(`cannot write job: ${message}`);
    });
  }

  it('NUL, CR and LF keep their own words', () => {
    expect(problemOf(header({ sender: 'a\rb' }))).toBe('sender contains NUL, CR or LF');
    expect(problemOf(header({ args: ['a\nb'] }))).toBe('args[0] contains NUL, CR or LF');
  });

  it('args may keep TAB; non-ASCII addresses are taken', () => {
    expect(problemOf(header({ args: ['a\tb'] }))).toBe('accepted');
    const h = header({ sender: 'jörg@bücher.example', recipients: ['δοκιμή@παράδειγμα.δοκιμή'], args: ['δοκιμή@παράδειγμα.δοκιμή'] });
    expect(problemOf(h)).toBe('accepted');
    expect(encodeJobHeader(h).equals(raw(h))).toBe(true);
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

describe('a bag from a peer whose job carries an escape sequence', () => {
  // small entries are gathered whole, larger ones (over 256 KiB) streamed: both paths
  for (const size of [2000, 256 * 1024 + 1]) {
    it(`is refused bad-job at staging and nothing is staged (${size} bytes)`, async () => {
      const head = raw(header({ sender: `s${E}[31mRED${E}[0m@x.test` }));
      const bag = gzipSync(await tarOf(ID, Buffer.concat([head, Buffer.alloc(size - head.length, 0x61)])));
      const t = tempDir('apply11-header');
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
      expect(refusal!.message).toMatch(/sender contains a control character \(U\+001B\)$/);
      expect(existsSync(staging)).toBe(false);
    });
  }
});
