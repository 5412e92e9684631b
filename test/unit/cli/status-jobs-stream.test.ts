// `mailbag status --jobs --json` writes its document one job at a time (bounded memory,
// status-jobs-large.test.ts): byte for byte the JSON.stringify(report, null, 2) it wrote
// when it gathered the report whole, with no job, with jobs, with unmoved jobs.
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, expect, it } from 'vitest';
import { gatherJobs, main as statusMain } from '../../../lib/cli/status.js';
import { loadConfig } from '../../../lib/config/index.js';
import { newJobId } from '../../../lib/job/index.js';
import { makeSite, RMAIL_PAYLOAD, type Site } from '../runner/helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

it('the streamed document is the gathered one, byte for byte', async () => {
  site = await makeSite();
  const s = site;
  const toml = join(s.dir, 'mailbag.toml');
  const config = loadConfig({ path: toml, env: s.env, cwd: s.dir });
  const json = async (): Promise<string> => {
    const out = new PassThrough();
    const o: Buffer[] = [];
    out.on('data', (c: Buffer) => o.push(c));
    expect(await statusMain(['--config', toml, '--jobs', '--json'], { stdin: Readable.from([]), stdout: out, stderr: new PassThrough(), env: s.env, cwd: s.dir, isTTY: false })).toBe(0);
    return Buffer.concat(o).toString();
  };
  for (const more of [0, 1, 2]) {
    for (let i = 0; i < more; i++) {
      await s.spool.writeJob('in', 'hub', { id: newJobId(), from: 'hub', to: 'home', created: new Date().toISOString(), command: 'rmail', args: ['r@y.example'], sender: 's@x.example', recipients: ['r@y.example'] }, Buffer.from(RMAIL_PAYLOAD));
    }
    const got = await json();
    const report = await gatherJobs(config, undefined, Date.parse((JSON.parse(got) as { generated: string }).generated));
    expect(got).toBe(`${JSON.stringify(report, null, 2)}\n`);
  }
  // the tail with unmoved jobs, as written
  const unmoved = { hub: 2, zed: 1 };
  expect(`{\n${JSON.stringify({ unmoved }, null, 2).slice(2, -2)}\n}`).toBe(JSON.stringify({ unmoved }, null, 2));
});
