// The bins npm installs are the ones package.json "bin" names (the CommonJS bundles,
// dist/bin/*.cjs), not the ES-module wrappers the other tests run: the same jobs, exit
// statuses and stderr lines must come out of them, run through a symlink as npm links them.

import { readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { jobsIn, makeSite, repoRoot, requireBuild, runBin, tmpLeftovers, type Site } from './front-door-helpers.js';

beforeAll(requireBuild);

let site: Site;
afterEach(() => site?.cleanup());

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };
const MESSAGE = 'Subject: installed\nFrom: a@example.org\n\nHello.\n.\n';

/** the bin as npm would link it: a symlink in a .bin directory */
function linked(name: string): string {
  const target = join(repoRoot, pkg.bin[name]!);
  const link = join(site.dir, name);
  symlinkSync(target, link);
  return link;
}

describe('the bins package.json installs', () => {
  it('mailbag enqueue through the installed bin writes the rmail job', async () => {
    site = makeSite();
    const r = await runBin(linked('mailbag'), ['enqueue', '--config', site.config, 'hub', '-f', 'a@example.org', '--', 'b@example.net'], MESSAGE);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const jobs = jobsIn(site.spool, 'out', 'hub');
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.header).toMatchObject({ command: 'rmail', sender: 'a@example.org', recipients: ['b@example.net'] });
    expect(jobs[0]!.payload.toString().endsWith(MESSAGE)).toBe(true);
  });

  it('mailbag-uux through the installed bin takes Postfix\'s line; a null sender becomes BSMTP', async () => {
    site = makeSite();
    const r = await runBin(linked('mailbag-uux'), ['--config', site.config, '-r', '-n', '-z', '-a', '-', 'hub!rmail', '(b@example.net)'], MESSAGE);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const jobs = jobsIn(site.spool, 'out', 'hub');
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.header).toMatchObject({ command: 'rsmtp', sender: '', recipients: ['b@example.net'] });
    expect(jobs[0]!.payload.toString()).toMatch(/^MAIL FROM:<>\nRCPT TO:<b@example\.net>\nDATA\n/);
  });

  it('a refusal through the installed bin: 64 and one 5.1.3 line, nothing left', async () => {
    site = makeSite();
    const r = await runBin(linked('mailbag'), ['enqueue', '--config', site.config, 'hub', '-f', 'a@example.org', '--', '-oi'], MESSAGE);
    expect(r.code, r.stderr).toBe(64);
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(r.stderr).toMatch(/^5\.1\.3 /);
    expect(jobsIn(site.spool, 'out', 'hub')).toEqual([]);
    expect(tmpLeftovers(site.spool)).toEqual([]);
  });

  it('mailbag --version through the installed bin', async () => {
    site = makeSite();
    const r = await runBin(linked('mailbag'), ['--version'], '');
    expect(r).toMatchObject({ code: 0, stdout: `mailbag ${pkg.version}\n` });
  });
});
