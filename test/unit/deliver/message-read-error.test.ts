// A message that cannot be read (its job file gone, EIO) fails the read that wanted it,
// whatever the body: plain or dot-stuffed BSMTP DATA, unstuffed for sendmail and notices,
// converted for SMTP. The stuffed body's file stream was piped into its transform, and a
// pipe does not pass errors on: the transform never ended and the file's error had no
// listener — an uncaught exception that killed mailbag run (or the session command whose
// run step it was) instead of a temporary failure of one job.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openPlain, openSmtpData, readPlainPrefix, type BodySource } from '../../../lib/deliver/message.js';
import { deliverWithSendmail } from '../../../lib/deliver/sendmail.js';
import { FAKE_SENDMAIL } from '../runner/helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-msg-error-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const missing = (stuffed: boolean): BodySource => ({ path: join(dir, 'gone'), start: 0, end: undefined, stuffed });

async function drain(s: NodeJS.ReadableStream): Promise<void> {
  for await (const _ of s as AsyncIterable<Buffer>) void _;
}

describe('a message file that cannot be read', () => {
  for (const stuffed of [false, true]) {
    it(`${stuffed ? 'dot-stuffed' : 'plain'}: the reader fails with the file's error`, { timeout: 5_000 }, async () => {
      await expect(readPlainPrefix(missing(stuffed), 1000)).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(drain(openPlain(missing(stuffed)))).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(drain(openSmtpData(missing(stuffed)))).rejects.toMatchObject({ code: 'ENOENT' });
    });
  }

  it('sendmail: a temporary failure of that transaction, the MTA never takes a truncated message', { timeout: 10_000 }, async () => {
    const tx = { index: 0, sender: 's@x', mailParams: [], line: 1, recipients: [{ address: 'a@y', params: [] }], body: missing(true) };
    const res = await deliverWithSendmail(tx, new Set(), { program: FAKE_SENDMAIL, mta: 'postfix', env: { ...process.env, FAKE_SENDMAIL_DIR: dir, FAKE_SENDMAIL_EXITS: '0' } });
    // runChild kills the command when its input fails: it never saw the end of the message
    expect(res.map((r) => r.kind)).toEqual(['temporary']);
    expect(res[0]!.diagnostic).toMatch(/killed by SIGKILL/);
  });
});
