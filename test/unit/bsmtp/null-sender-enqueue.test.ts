// What the front door writes for a null sender (`mailbag enqueue -f ''`, mailbag-uux with
// an empty -a) must be a BSMTP job the far side's reader takes: that job is the only copy
// once enqueue has said 0 to the MTA, and a job its reader refuses fails at the far end
// with nobody to tell (its sender is <>). A line of message text the reader refuses
// (over LIMITS.maxBsmtpTextLine) is refused at the front door instead (65, 5.6.0), in
// both of its paths (async stdin and the synchronous one the real process uses), and
// nothing is left in the spool.

import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../../lib/config/index.js';
import { Spool } from '../../../lib/spool/spool.js';
import { enqueueMessage, enqueueMessageSync } from '../../../lib/cli/front-door.js';
import { readBsmtp } from '../../../lib/bsmtp/reader.js';
import { normaliseBody } from '../../../lib/bsmtp/writer.js';
import { indexBsmtp } from '../../../lib/deliver/bsmtp-index.js';
import { readJobFile } from '../../../lib/spool/spool.js';
import { MailbagError } from '../../../lib/errors.js';
import { LIMITS } from '../../../lib/limits.js';

let dir: string;
let spool: Spool;
let config: Config;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-null-sender-'));
  config = parseConfig(`site = "home"\nspool = "spool"\n[peers.hub]\nhost = "hub.example.org"\n`, join(dir, 'mailbag.toml'));
  spool = await Spool.open(config.spool, { create: true });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** stdin as a pipe delivers it: 64 KiB chunks */
function* chunked(bytes: Buffer): Generator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += 65536) yield bytes.subarray(i, i + 65536);
}
async function* chunkedAsync(bytes: Buffer): AsyncGenerator<Uint8Array> {
  yield* chunked(bytes);
}

const envelope = { sender: '', recipients: ['postmaster@example.org'], stripFromLine: true };
const ways = [
  ['async', (message: Buffer) => enqueueMessage(spool, config, 'hub', envelope, chunkedAsync(message))],
  ['sync', (message: Buffer) => enqueueMessageSync(spool, config, 'hub', envelope, chunked(message))],
] as const;

function leftInSpool(): string[] {
  const out = join(config.spool, 'out', 'hub');
  return [...(existsSync(out) ? readdirSync(out) : []), ...readdirSync(join(config.spool, 'tmp'))];
}

describe('a null-sender message becomes a BSMTP job the far side can read, or is refused', () => {
  for (const [how, enqueue] of ways) {
    it(`${how}: a text line over ${LIMITS.maxBsmtpTextLine} bytes: 65 5.6.0 at the front door, nothing in the spool`, async () => {
      const long = Buffer.alloc(LIMITS.maxBsmtpTextLine + 1, 'x');
      const message = Buffer.concat([Buffer.from('Subject: bounce\r\n\r\n'), long, Buffer.from('\r\nend\r\n')]);
      let err: unknown;
      let farSide: string | undefined;
      try {
        const done = await enqueue(message);
        // accepted: the far side's reader must take the job, or the mail is lost after a 0
        const job = await readJobFile(done.ref.path);
        farSide = await indexBsmtp(done.ref.path, job.payloadOffset).then(() => 'reads it', (e: Error) => `refuses it: ${e.message}`);
      } catch (e) {
        err = e;
      }
      expect(farSide, 'enqueue said 0 to the MTA, and the far side').toBeUndefined();
      expect(err).toBeInstanceOf(MailbagError);
      expect((err as MailbagError).exitCode).toBe(65);
      expect((err as MailbagError).status).toBe('5.6.0');
      expect((err as MailbagError).message).toMatch(/line .*longer than/);
      expect(leftInSpool()).toEqual([]);
    });

    it(`${how}: lines of exactly the limit (a stuffed dot counted, CRLF and a missing final newline) pass and read back`, async () => {
      const max = LIMITS.maxBsmtpTextLine;
      // the far side counts the stuffing dot: a line of `.` + (max - 2) bytes is max - 1 + 1 stuffed
      const dotted = Buffer.concat([Buffer.from('.'), Buffer.alloc(max - 2, 'y')]);
      const message = Buffer.concat([Buffer.from('Subject: b\r\n\r\n'), Buffer.alloc(max, 'x'), Buffer.from('\r\n'), dotted, Buffer.from('\r\n'), Buffer.alloc(max, 'z')]);
      const done = await enqueue(message);
      const job = await readJobFile(done.ref.path);
      await expect(indexBsmtp(done.ref.path, job.payloadOffset)).resolves.toMatchObject({ problem: undefined });
      const chunks: Buffer[] = [];
      for await (const c of job.payload()) chunks.push(c as Buffer);
      const read = readBsmtp(Buffer.concat(chunks));
      if (!read.ok) throw new Error(read.issue.message);
      expect(read.value.transactions[0]!.body.equals(normaliseBody(message))).toBe(true);
    });
  }

  for (const [how, enqueue] of ways) {
    it(`${how}: a recipient that would not read back from a BSMTP path (an unpaired quote, a source route): 64 5.1.3, nothing in the spool`, async () => {
      for (const rcpt of ['a"b@example.org', '"a\\"@example.org', '@relay.example:u@example.org']) {
        envelope.recipients = [rcpt];
        try {
          await expect(enqueue(Buffer.from('Subject: bounce\n\nx\n'))).rejects.toMatchObject({ code: 'bad-recipient' });
        } finally {
          envelope.recipients = ['postmaster@example.org'];
        }
        expect(leftInSpool()).toEqual([]);
      }
    });
  }
});
