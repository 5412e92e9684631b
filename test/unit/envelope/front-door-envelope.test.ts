// The far side reads an rmail job's envelope the way sendmail's rmail does: every leading
// `From ` and `>From ` line is envelope (lib/envelope/from-line.ts). So whatever stdin
// holds, an rmail job the front door accepts must begin with exactly one envelope line,
// ours, naming the sender given with -f: a leading From_ envelope on stdin (pipe flag F,
// an mbox) is taken off, and one the far side would refuse is refused here (65, 5.6.0),
// never queued as message text that the far side then reads as a broken envelope.

import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseConfig, type Config } from '../../../lib/config/index.js';
import { Spool, readJobFile } from '../../../lib/spool/spool.js';
import { enqueueMessage, enqueueMessageSync } from '../../../lib/cli/front-door.js';
import { parseUucpEnvelope } from '../../../lib/envelope/from-line.js';
import { InputError } from '../../../lib/errors.js';

let dir: string;
let spool: Spool;
let config: Config;
beforeAll(async () => {
  // what is written matters here, not its durability: a memory file system where there is one
  dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'mailbag-fd-envelope-'));
  config = parseConfig(`site = "home"\nspool = "spool"\n[peers.hub]\nhost = "hub.example.org"\n`, join(dir, 'mailbag.toml'));
  spool = await Spool.open(config.spool, { create: true });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SENDER = 'sender@example.org';
const envelope = { sender: SENDER, recipients: ['r@example.net'], stripFromLine: true };

/** stdin in chunks of `size` bytes */
function* chunks(bytes: Buffer, size: number): Generator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

/** enqueue `stdin`: the job's payload, or the refusal */
async function enqueue(stdin: Buffer, size: number, sync: boolean): Promise<Buffer | InputError> {
  try {
    const done = sync
      ? await enqueueMessageSync(spool, config, 'hub', envelope, chunks(stdin, size))
      : await enqueueMessage(spool, config, 'hub', envelope, (async function* () {
        yield* chunks(stdin, size);
      })());
    const job = await readJobFile(done.ref.path);
    const payload = readFileSync(done.ref.path).subarray(job.payloadOffset);
    unlinkSync(done.ref.path);
    return payload;
  } catch (err) {
    if (err instanceof InputError) return err;
    throw err;
  }
}

// lines that are, or nearly are, envelope lines, and some that are message text
const line = fc.oneof(
  fc.constantFrom(
    'From alice  Sun Nov 22 04:10:00 2026', 'From a!b!c  Sun Nov 22 04:10:00 2026 remote from d', 'From user', 'From ',
    'From !bang x', 'From a! ', 'From a!', '>From bob  Sun Nov 22 04:10:00 2026 remote from e', '>From ', '>From !x y',
    '>From a!', '>>From c  x', '>From \u0000x', 'From x\r', '>From y\r', 'Fro', '>Fro', 'From:x', 'Subject: s', '', '\r', '.',
  ),
  fc.string({ maxLength: 10 }),
);

describe('an rmail job begins with exactly our envelope line, whatever stdin holds', () => {
  test('property: accepted ⇒ one envelope line, the -f sender, and the message after it; refused ⇒ 65', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(line, { maxLength: 5 }), fc.boolean(), fc.integer({ min: 1, max: 64 }), fc.boolean(), async (lines, finalLf, size, sync) => {
        const stdin = Buffer.from(lines.join('\n') + (finalLf ? '\n' : ''));
        const out = await enqueue(stdin, size, sync);
        if (out instanceof InputError) {
          expect(out.exitCode).toBe(65);
          return;
        }
        const env = parseUucpEnvelope(out);
        if (!env.ok) expect.fail(`stdin ${JSON.stringify(stdin.toString())} was queued, and the far side refuses its envelope: ${env.issue.message}`);
        expect(env.value.sender).toBe(SENDER);
        expect(env.value.lines, `stdin ${JSON.stringify(stdin.toString())}`).toBe(1);
        expect(out.subarray(env.value.length).length).toBeGreaterThan(0);
      }),
      { numRuns: 400 },
    );
  });

  test('stdin beginning with a `>From ` line the far side would refuse: 65 5.6.0, as a bad `From ` line is', async () => {
    for (const stdin of ['>From ', '>From !x y\nSubject: s\n\nhi\n', '>From \nSubject: s\n\nhi\n', `>From ${'x'.repeat(3000)}\n\nhi\n`]) {
      for (const sync of [false, true]) {
        const out = await enqueue(Buffer.from(stdin), 7, sync);
        expect(out, JSON.stringify(stdin.slice(0, 40))).toBeInstanceOf(InputError);
        expect((out as InputError).status).toBe('5.6.0');
      }
    }
  });
});
