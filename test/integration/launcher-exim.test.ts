// docs/exim.md's recommended router and transport, as written (`command =
// /usr/local/bin/mailbag enqueue $host --bsmtp`, npm's global link), in a real Exim whose
// queue run happens on a machine where the pipe's PATH (/bin:/usr/bin) has no node and no
// fallback place has one either (a private mount namespace: launcher-helpers.ts). The
// front door exits 75 with its line: Exim defers the address (temp_errors = 75) and keeps
// the message, never bouncing it; a queue run once node is at /usr/local/bin/node
// delivers it. The same for Postfix: launcher-postfix.test.ts.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { eximBinary, haveExim, startExim, type EximInstance } from '../helpers/exim.js';
import { removeTempDir, repoRoot, run } from '../helpers/mta-common.js';
import { jobIds, makeMailbagSite, newJobs } from '../helpers/mta-site.js';
import { docSnippet } from './docs-snippet.js';
import { haveNamespaces, installedNodes, inWorld, type World } from './launcher-helpers.js';

const bins = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin;

describe.skipIf(!(haveExim() && haveNamespaces()))('a real Exim whose pipe finds no node: the address is deferred with the reason, not bounced', () => {
  let ex: EximInstance;
  let dir: string;
  let spool: string;
  let world: World;

  /** one forced queue run (-qff) as root, in the namespace */
  async function queueRun(w: World): Promise<void> {
    const argv = inWorld(dir, w, [eximBinary(), '-C', ex.configFile, '-qff']);
    const r = await run(argv[0]!, argv.slice(1), { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
  }

  beforeAll(async () => {
    const site = await makeMailbagSite('launcher-exim');
    ({ dir, spool } = site);
    // the page's text with only the configuration file and the user changed
    const text = docSnippet('exim.md', 'exim-bsmtp')
      .replaceAll('/etc/mailbag/mailbag.toml', site.config)
      .replace(/^(\s*(?:user|group)\s*=\s*)mailbag$/gm, `$1${site.user.name}`);
    expect(text).toMatch(/^\s*command = \/usr\/local\/bin\/mailbag enqueue \$host --bsmtp$/m);
    const at = text.indexOf('begin transports');
    ex = await startExim({ routers: text.slice('begin routers\n'.length, at), transports: text.slice(at + 'begin transports\n'.length), user: site.user });
    world = { localBin: { mailbag: join(repoRoot, bins.mailbag!) }, hide: installedNodes() };
  });

  afterAll(() => {
    ex?.stop();
    if (dir) removeTempDir(dir);
  });

  test('deferred with `4.3.5 mailbag: cannot start: no node …` and kept; node at /usr/local/bin/node then delivers it', async () => {
    const before = await jobIds(spool, 'hub');
    // queued only (the harness's queue_only), then delivered by a queue run in the namespace
    const r = await ex.exim(['-odq', '-oi', '-f', 'alice@elsewhere.test', '--', 'bob@example.org'], 'Subject: no node\n\nhello\n');
    expect(r.code, r.stderr).toBe(0);
    const [id] = await ex.queue();
    expect(id).toBeDefined();
    await queueRun(world);
    // `==` deferred, `**` failed (and bounced): what exit 127 from `#!/usr/bin/env node` got
    const outcome = await ex.waitLog(/(==|\*\*) bob@example\.org .*T=mailbag_bsmtp/);
    expect(outcome).toMatch(/^\S+ \S+ \S+ == bob@example\.org .*T=mailbag_bsmtp defer .*returned 75/);
    await ex.waitLog(/transport output: 4\.3\.5 mailbag: cannot start: no node in PATH \(\/bin:\/usr\/bin\) nor at \/usr\/local\/bin\/node, /);
    expect(ex.mainlog()).not.toMatch(/\*\* bob@example\.org/);
    expect(await ex.queue()).toEqual([id]);
    expect(await newJobs(spool, 'hub', before)).toEqual([]);

    await queueRun({ ...world, nodeAt: ['/usr/local/bin/node'] });
    await ex.waitLog(/=> bob@example\.org .*T=mailbag_bsmtp/);
    expect(await ex.queue()).toEqual([]);
    const jobs = await newJobs(spool, 'hub', before);
    expect(jobs.map((j) => [j.header.command, j.header.sender, [...j.header.recipients]])).toEqual([['rsmtp', 'alice@elsewhere.test', ['bob@example.org']]]);
  });
});
