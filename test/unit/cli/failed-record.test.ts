// `mailbag failed` and a failed job whose runner record does not read (cut short, another
// version): the listing says so, naming the file, instead of "no reason recorded" and a
// notice "?" that hid it (the record holds the reason and whether the sender was told).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { main as failedMain } from '../../../lib/cli/failed.js';
import { newJobId } from '../../../lib/job/index.js';
import { cliCommand, makeSite, RMAIL_PAYLOAD, type Site } from '../runner/helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

it('a failed job whose record is cut short: its line names the record and what is wrong with it', async () => {
  site = await makeSite();
  const id = newJobId();
  await site.spool.writeJob('failed', 'hub', { id, from: 'hub', to: 'home', created: new Date().toISOString(), command: 'rmail', args: ['r@y.example'], sender: 's@x.example', recipients: ['r@y.example'] }, Buffer.from(RMAIL_PAYLOAD));
  await site.spool.ensureDir('run');
  await site.spool.ensureDir('run', 'hub');
  const file = join(site.spool.root, 'run', 'hub', id);
  writeFileSync(file, 'mailbag-run 1\n{"attempts":1,"failed":{"reason":"<r@y.exa');
  const r = await cliCommand(failedMain, site, []);
  expect(r.code).toBe(0);
  expect(r.out.split('\n')[2]).toMatch(new RegExp(`^ {4}${file.replace(/[.]/g, '\\.')}: runner record does not read \\(cut short or corrupt: `));
  expect(r.out).not.toContain('no reason recorded');
  const json = JSON.parse((await cliCommand(failedMain, site, ['--json'])).out) as Array<{ reason: string }>;
  expect(json[0]!.reason).toContain('runner record does not read');
});
