// `mailbag sync --quiet` (cron) and a failure notice given up in its run step: said, as
// `mailbag run --quiet` and `mailbag dispatch --quiet` say it (docs/runner.md, "Notices").
// Before, --quiet dropped the run step's summary: a sender never told of a lost message,
// and nobody told that the sender was not.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, expect, it } from 'vitest';
import { main as syncMain } from '../../lib/cli/sync.js';
import { MailbagError } from '../../lib/errors.js';
import { newJobId } from '../../lib/job/index.js';
import { writeState } from '../../lib/runner/state.js';
import { makeSite, RMAIL_PAYLOAD, type Site } from '../unit/runner/helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

const DAY = 86_400_000;

it('sync --quiet says how many notices its run step gave up, also when the peer cannot be reached', async () => {
  site = await makeSite({ exits: '75' });
  // hub is reached through a command that exits at once: the session breaks (75) after the
  // expiry, whose run step sends the notices owed
  const toml = join(site.dir, 'home.toml');
  writeFileSync(
    toml,
    `site = "home"\nspool = ${JSON.stringify(site.spool.root)}\n[delivery]\nsendmail = ${JSON.stringify(site.config.delivery.sendmail)}\nmta = "postfix"\n[peers.hub]\ntransport = "command"\ncommand = ["/bin/false"]\naccept = ["rmail"]\n`,
  );
  const made = Date.now() - 6 * DAY;
  // an outgoing job past its queue lifetime: expired by this sync, so its run step runs
  const expiring = newJobId(made);
  await site.spool.writeJob('out', 'hub', { id: expiring, from: 'home', to: 'hub', created: new Date(made).toISOString(), command: 'rmail', args: ['r@y.example'], sender: 'a@x.example', recipients: ['r@y.example'] }, Buffer.from(RMAIL_PAYLOAD));
  // a job that failed 6 days ago; its notice deferred since then, due now, deferred again: given up
  const failed = newJobId(made);
  await site.spool.writeJob('failed', 'hub', { id: failed, from: 'hub', to: 'home', created: new Date(made).toISOString(), command: 'rmail', args: ['q@y.example'], sender: 's@x.example', recipients: ['q@y.example'] }, Buffer.from(RMAIL_PAYLOAD));
  const since = new Date(made).toISOString();
  await writeState(site.spool, 'hub', failed, {
    attempts: 1,
    tx: {},
    noticeRetry: { since, attempts: 9, nextAttempt: new Date(Date.now() - 60_000).toISOString() },
    failed: { reason: '<q@y.example>: x-unix; sendmail exited 67', at: since, status: '5.1.1', noticeSent: false },
  });
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  let error: unknown;
  try {
    await syncMain(['--config', toml, 'hub', '--quiet'], { stdin: Readable.from([]), stdout: out, stderr: new PassThrough(), env: site.env, cwd: site.dir, isTTY: false });
  } catch (err) {
    error = err;
  }
  // the session itself failed (the peer could not be reached): temporary, 75
  expect(error).toBeInstanceOf(MailbagError);
  expect((error as MailbagError).exitCode).toBe(75);
  expect(Buffer.concat(chunks).toString()).toBe('hub: 1 notice given up (mailbag failed hub)\n');
});
