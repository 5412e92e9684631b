// A small bag entry is gathered whole and split into its job header and payload
// (lib/session/stage-bag.ts splitJob) instead of going through readJobStream: the same
// header and bytes wherever the chunks break, and the same refusals.

import { describe, expect, it } from 'vitest';
import { MailbagError } from '../../../lib/errors.js';
import { encodeJobHeader, type JobHeader } from '../../../lib/job/header.js';
import { readJobStream } from '../../../lib/job/reader.js';
import { splitJob } from '../../../lib/session/stage-bag.js';

const header: JobHeader = {
  id: '0190a1b2c3d4abcdefgh',
  from: 'home',
  to: 'hub',
  created: '2026-11-22T18:00:00.000Z',
  command: 'rmail',
  args: ['me@hub.example'],
  sender: 'a@home.example',
  recipients: ['me@hub.example'],
};
const payload = Buffer.from('From: a@home.example\nSubject: split\n\nbody line\n'.repeat(20));
const job = Buffer.concat([encodeJobHeader(header), payload]);

async function* asIterable(chunks: Buffer[]): AsyncGenerator<Buffer> {
  for (const c of chunks) yield c;
}

describe('splitJob', () => {
  it('gives the header and the payload bytes readJobStream gives, wherever the chunks break', async () => {
    for (let cut = 1; cut < job.length; cut += 7) {
      for (const chunks of [[job.subarray(0, cut), job.subarray(cut)], [job.subarray(0, cut >> 1), job.subarray(cut >> 1, cut), job.subarray(cut)]]) {
        const s = splitJob(chunks, 'test');
        const r = await readJobStream(asIterable(chunks), 'test');
        const streamed: Buffer[] = [];
        for await (const c of r.payload) streamed.push(c);
        expect(s.header).toEqual(r.header);
        expect(Buffer.concat(s.payload).equals(payload)).toBe(true);
        expect(Buffer.concat(streamed).equals(payload)).toBe(true);
      }
    }
  });

  it('refuses what readJobStream refuses, as bad-job', async () => {
    const bad = [
      [Buffer.from('not-a-job 1\n{}\n')],
      [job.subarray(0, 20)],
      [Buffer.from('mailbag-job 1\n{"id":"x"}\n')],
      [],
    ];
    for (const chunks of bad) {
      const split = (() => {
        try {
          splitJob(chunks, 'test');
          return undefined;
        } catch (err) {
          return err;
        }
      })();
      const streamed = await readJobStream(asIterable(chunks), 'test').then(() => undefined, (err: unknown) => err);
      expect(split).toBeInstanceOf(MailbagError);
      expect((split as MailbagError).code).toBe('bad-job');
      expect((split as Error).message).toBe((streamed as Error).message);
    }
  });
});
