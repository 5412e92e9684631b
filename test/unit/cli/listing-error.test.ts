// `mailbag failed` and `mailbag status --jobs` when the spool fails them in mid-listing
// (a peer's queue directory that cannot be listed): nothing on stdout, the one 4.x.x line,
// 75, never the first peer's jobs and a JSON array left open (or, for --jobs, gathered
// first: they are now written as they are read, so the names are listed before any is).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, expect, it } from 'vitest';
import { main as failedMain } from '../../../lib/cli/failed.js';
import { main as statusMain } from '../../../lib/cli/status.js';
import { failureLine } from '../../../lib/cli/run.js';
import { asMailbagError } from '../../../lib/errors.js';
import { newJobId } from '../../../lib/job/index.js';
import { makeSite, RMAIL_PAYLOAD, type Site } from '../runner/helpers.js';
import type { CliIo } from '../../../lib/cli/io.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

/** run as runAsProcess does: a throw becomes its line and exit code */
async function command(main: (argv: string[], io: CliIo) => Promise<number>, s: Site, argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const o: Buffer[] = [];
  out.on('data', (c: Buffer) => o.push(c));
  let err = '';
  let code: number;
  try {
    code = await main(['--config', join(s.dir, 'mailbag.toml'), ...argv], { stdin: Readable.from([]), stdout: out, stderr: new PassThrough(), env: s.env, cwd: s.dir, isTTY: false });
  } catch (e) {
    err = failureLine(e, 'mailbag');
    code = asMailbagError(e).exitCode;
  }
  return { code, out: Buffer.concat(o).toString(), err };
}

const header = (id: string) => ({ id, from: 'hub', to: 'home', created: new Date().toISOString(), command: 'rmail', args: ['r@y.example'], sender: 's@x.example', recipients: ['r@y.example'] });

it.each([[['--json']], [[]]])('mailbag failed %j: a second peer\'s failed/ that cannot be listed', async (argv) => {
  site = await makeSite();
  await site.spool.writeJob('failed', 'hub', header(newJobId()), Buffer.from(RMAIL_PAYLOAD));
  writeFileSync(join(site.spool.root, 'failed', 'zed'), 'not a directory');
  const r = await command(failedMain, site, argv);
  expect(r.err).toMatch(/^4\.3\.0 mailbag: .*failed\/zed/);
  expect(r.code).toBe(75);
  expect(r.out).toBe('');
});

it.each([[['--jobs', '--json']], [['--jobs']]])('mailbag status %j: a second peer\'s in/ that cannot be listed', async (argv) => {
  site = await makeSite();
  await site.spool.writeJob('in', 'hub', header(newJobId()), Buffer.from(RMAIL_PAYLOAD));
  writeFileSync(join(site.spool.root, 'in', 'zed'), 'not a directory');
  const r = await command(statusMain, site, argv);
  expect(r.err).toMatch(/^4\.3\.0 mailbag: .*in\/zed/);
  expect(r.code).toBe(75);
  expect(r.out).toBe('');
});
