// review8a: da6cb4a made a runner record that does not read (cut short, corrupt) a spool
// failure of the run for a job in in/ (exit 75, the file named), and ec8e082 shows it in
// `mailbag failed`. The same record of a job in failed/ that still owes its notice is read
// by Runner.pendingNotices with `.catch(() => undefined)`: the notice is skipped at every
// run, without a word and with exit 0 (nothing at all with --quiet), so a sender is never
// told, and nobody hears of it unless they look at `mailbag failed` (DESIGN.md promise 4).
// Requested in /work/brief/req-review8a.md (owner: fixes8).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { main as runMain } from '../../lib/cli/run-jobs.js';
import { newJobId } from '../../lib/job/index.js';
import { cliCommand, makeSite, RMAIL_PAYLOAD, type Site } from '../unit/runner/helpers.js';


let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

it('a failed job whose record is cut short is a failure of the run naming the file (75), and the other jobs are still run', async () => {
  site = await makeSite();
  const id = newJobId();
  await site.spool.writeJob('failed', 'hub', { id, from: 'hub', to: 'home', created: new Date().toISOString(), command: 'rmail', args: ['r@y.example'], sender: 's@x.example', recipients: ['r@y.example'] }, Buffer.from(RMAIL_PAYLOAD));
  await site.spool.ensureDir('run');
  await site.spool.ensureDir('run', 'hub');
  const file = join(site.spool.root, 'run', 'hub', id);
  // cut short before "noticeSent": whether the sender was told is unknown
  writeFileSync(file, 'mailbag-run 1\n{"attempts":1,"failed":{"reason":"<r@y.exa');
  const ok = await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
  const r = await cliCommand(runMain, site, ['--quiet']);
  // the good job is delivered either way
  expect((await site.spool.listJobs('in', 'hub')).map((j) => j.id)).not.toContain(ok);
  // before: exit 0 and no output at all, at every run
  expect(r.code).toBe(75);
  expect(r.err).toContain(file);
  expect(r.err).toContain('runner record does not read');
});
