// review8b: 636c112 refuses an address holding U+FFFD (what node makes of argv bytes that
// are not UTF-8) by putting the check into lib/envelope's common address checks. Those
// are shared by the BSMTP reader a peer runs on queued jobs (lib/deliver/bsmtp-index.ts)
// and by rsmtp: a job with one such recipient now fails whole there, its good recipients
// too. The LMTP listener queues such jobs (smtp-server decodes a Latin-1 RCPT to U+FFFD;
// checked with the built lmtpd: 250 for both recipients, then the peer's indexBsmtp:
// 'recipient "caf\uFFFD@hub.test" is not UTF-8'), and so did every mailbag before 636c112.
// The refusal belongs where the bytes are lost: the front doors' command line.

import { mkdtempSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readBsmtp } from '../../lib/bsmtp/index.js';
import { enqueueMessage, enqueueMessageSync } from '../../lib/cli/front-door.js';
import { parseConfig, type Config } from '../../lib/config/index.js';
import { Spool } from '../../lib/spool/spool.js';

const MANGLED = 'caf\uFFFD@hub.test';

it('a queued BSMTP job with a U+FFFD recipient is read whole (the other recipients are delivered)', () => {
  const job = Buffer.from(`MAIL FROM:<s@src.test>\nRCPT TO:<${MANGLED}>\nRCPT TO:<ok@hub.test>\nDATA\nSubject: t\n\nbody\n.\n`);
  const r = readBsmtp(job);
  expect(r.ok ? r.value.transactions.map((t) => t.envelope.recipients.map((x) => x.address)) : r.issue.message).toEqual([[MANGLED, 'ok@hub.test']]);
});

describe('the front doors still refuse it (node lost the bytes of the MTA\'s argument)', () => {
  let dir: string;
  let spool: Spool;
  let config: Config;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'review8b-fffd-'));
    config = parseConfig(`site = "home"\nspool = "spool"\n[peers.hub]\nhost = "hub.example.org"\n`, join(dir, 'mailbag.toml'));
    spool = await Spool.open(config.spool, { create: true });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const MESSAGE = Buffer.from('Subject: hi\n\nhello\n');
  for (const [how, sender, recipients, exitCode, status] of [
    ['recipient', 'me@example.net', [MANGLED], 64, '5.1.3'],
    ['recipient with the null sender', '', [MANGLED], 64, '5.1.3'],
    ['sender', 'j\uFFFDrg@example.net', ['you@example.org'], 65, '5.1.7'],
  ] as const) {
    it(`${how}: ${exitCode} ${status}, async and sync, nothing queued`, async () => {
      const env = { sender, recipients: [...recipients], stripFromLine: true };
      await expect(enqueueMessage(spool, config, 'hub', env, (async function* () {
        yield MESSAGE;
      })())).rejects.toMatchObject({ exitCode, status, message: expect.stringMatching(/not UTF-8/) });
      await expect(enqueueMessageSync(spool, config, 'hub', env, [MESSAGE])).rejects.toMatchObject({ exitCode, status, message: expect.stringMatching(/not UTF-8/) });
      const out = join(config.spool, 'out', 'hub');
      expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
    });
  }
});
