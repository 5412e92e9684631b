// An envelope an rmail job cannot carry (formats.md §1.1 and checklist 6: a sender with a
// space, as a quoted local part has one, or one beginning or ending with `!`; a recipient
// with a space) but BSMTP can is queued as a BSMTP job, as the null sender is, rather
// than refused: refusing made the MTA bounce mail for a legal address ("john smith"@…).

import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../../lib/config/index.js';
import { Spool, readJobFile } from '../../../lib/spool/spool.js';
import { enqueueMessage, enqueueMessageSync } from '../../../lib/cli/front-door.js';
import { indexBsmtp } from '../../../lib/deliver/bsmtp-index.js';

let dir: string;
let spool: Spool;
let config: Config;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-cannot-carry-'));
  config = parseConfig(`site = "home"\nspool = "spool"\n[peers.hub]\nhost = "hub.example.org"\n`, join(dir, 'mailbag.toml'));
  spool = await Spool.open(config.spool, { create: true });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const MESSAGE = Buffer.from('Subject: hi\r\n\r\n.dot\r\nbody\r\n');
const ways = [
  ['async', (sender: string, recipients: string[]) => enqueueMessage(spool, config, 'hub', { sender, recipients, stripFromLine: true }, (async function* () {
    yield MESSAGE;
  })())],
  ['sync', (sender: string, recipients: string[]) => enqueueMessageSync(spool, config, 'hub', { sender, recipients, stripFromLine: true }, [MESSAGE])],
] as const;

describe('an envelope rmail cannot carry becomes a BSMTP job', () => {
  for (const [how, enqueue] of ways) {
    for (const [sender, recipients] of [
      ['"john smith"@example.org', ['you@example.net']],
      ['!odd', ['you@example.net']],
      ['odd!', ['you@example.net']],
      ['me@example.org', ['you@example.net', '"jane doe"@example.net']],
    ] as const) {
      it(`${how}: sender ${sender}, recipients ${recipients.join(' ')}: a BSMTP job with exactly that envelope`, async () => {
        const done = await enqueue(sender, [...recipients]);
        expect(done.header).toMatchObject({ command: 'rsmtp', args: [], sender, recipients });
        const job = await readJobFile(done.ref.path);
        const idx = await indexBsmtp(done.ref.path, job.payloadOffset);
        expect(idx.problem).toBeUndefined();
        expect(idx.transactions.map((t) => ({ sender: t.sender, recipients: t.recipients.map((r) => r.address) }))).toEqual([{ sender, recipients }]);
      });
    }

    it(`${how}: what BSMTP cannot carry either is still refused, nothing in the spool`, async () => {
      await expect(enqueue('a!<>', ['you@example.net'])).rejects.toMatchObject({ code: 'bad-sender', exitCode: 65 });
      await expect(enqueue('me@example.org', ['"a b" <c@example.net>'])).rejects.toMatchObject({ code: 'bad-recipient', exitCode: 64 });
      await expect(enqueue('me@example.org', ['-oQ@example.net'])).rejects.toMatchObject({ code: 'bad-recipient', exitCode: 64 });
      const out = join(config.spool, 'out', 'hub');
      expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
    });
  }
});
