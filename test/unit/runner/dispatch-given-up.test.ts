// `mailbag dispatch --quiet` (cron) and a failure notice given up in its run step: said,
// as `mailbag run --quiet` says it in its summary (docs/runner.md, "Notices"). Before, the
// run step's summary was dropped and --quiet silenced the line: a sender never told of a
// lost message, and nobody told that the sender was not.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { main as dispatchMain } from '../../../lib/cli/dispatch.js';
import { newJobId } from '../../../lib/job/index.js';
import { writeState } from '../../../lib/runner/state.js';
import { cliCommand, makeSite, RMAIL_PAYLOAD, type Site } from './helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

const DAY = 86_400_000;

it('dispatch --quiet says how many notices its run step gave up', async () => {
  site = await makeSite({ exits: '75' });
  // hub dials us (no host): dispatch dials nobody; an expired outgoing job gets hub a run step
  const toml = join(site.dir, 'hub.toml');
  writeFileSync(toml, `site = "home"\nspool = ${JSON.stringify(site.spool.root)}\n[delivery]\nsendmail = ${JSON.stringify(site.config.delivery.sendmail)}\nmta = "postfix"\n[peers.hub]\naccept = ["rmail"]\n`);
  const made = Date.now() - 6 * DAY;
  const expiring = newJobId(made);
  await site.spool.writeJob('out', 'hub', { id: expiring, from: 'home', to: 'hub', created: new Date(made).toISOString(), command: 'rmail', args: ['r@y.example'], sender: 'a@x.example', recipients: ['r@y.example'] }, Buffer.from(RMAIL_PAYLOAD));
  // a job that failed 6 days ago; its notice deferred since then, due now, deferred again
  const failed = newJobId(made);
  await site.spool.writeJob('failed', 'hub', { id: failed, from: 'hub', to: 'home', created: new Date(made).toISOString(), command: 'rmail', args: ['q@y.example'], sender: 's@x.example', recipients: ['q@y.example'] }, Buffer.from(RMAIL_PAYLOAD));
  const since = new Date(made).toISOString();
  await writeState(site.spool, 'hub', failed, {
    attempts: 1,
    tx: {},
    noticeRetry: { since, attempts: 9, nextAttempt: new Date(Date.now() - 60_000).toISOString() },
    failed: { reason: '<q@y.example>: x-unix; sendmail exited 67', at: since, status: '5.1.1', noticeSent: false },
  });
  const r = await cliCommand(dispatchMain, site, ['--quiet'], toml);
  expect(r.code).toBe(0);
  expect(r.out).toBe('hub: 1 notice given up (mailbag failed hub)\n');
});
