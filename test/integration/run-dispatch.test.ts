// mailbag dispatch's exit status as a cron caller reads it: a session in which not
// everything crossed (a job too large for the peer, failed here; a bag refused) is a
// failure for dispatch as it is for `mailbag sync` (75, its reason on stderr), not a
// stderr line with exit 0. Real processes from dist/: `mailbag dispatch` on home, its
// command transport running `mailbag serve` for the hub.

import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { PassThrough, Readable } from 'node:stream';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { main as dispatchMain } from '../../lib/cli/dispatch.js';
import { newJobId } from '../../lib/job/id.js';
import { mailbagBin } from '../helpers/mta-common.js';
import { need } from '../helpers/need.js';
import { enqueue, ids, makeSite, messages, tempDir } from '../unit/session/sites.js';

const built = need('the built mailbag', [mailbagBin], 'run npm run build first (npm test does)');

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe.skipIf(!built)('mailbag dispatch and a session that did not drain', () => {
  it('a job larger than the peer accepts (its max_message_size and 1 MiB more) fails in the session: dispatch exits 75 with the reason on stderr, as sync does', async () => {
    const t = tempDir('run-dispatch');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const hubToml = join(t.dir, 'hub.toml');
    writeFileSync(hubToml, `site = "hub"\nspool = ${JSON.stringify(hub.root)}\n[limits]\nmax_message_size = "4K"\n[peers.home]\n`);
    const homeToml = join(t.dir, 'home.toml');
    const serve = [process.execPath, mailbagBin, 'serve', '--peer', 'home', '--no-run', '--config', hubToml];
    writeFileSync(homeToml, `site = "home"\nspool = ${JSON.stringify(home.root)}\n[peers.hub]\ntransport = "command"\ncommand = ${JSON.stringify(serve)}\n`);
    const small = await enqueue(home, 'hub', messages([500], 41));
    const big = await enqueue(home, 'hub', messages([1_200_000], 42));
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.MAILBAG_FAULT;
    const r = spawnSync(process.execPath, [mailbagBin, 'dispatch', '--no-run', '--config', homeToml], { env, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stdout + r.stderr).toBe(75);
    expect(r.stderr).toMatch(/^4\.4\.0 hub: 1 job\(s\) larger than hub accepts failed \(see mailbag failed\)$/m);
    // what could cross did; the large one is in failed/
    expect(ids(hub, 'in', 'home')).toEqual([...small.keys()]);
    expect(ids(home, 'failed', 'hub')).toEqual([...big.keys()]);
    // the next dispatch has nothing left that cannot cross: 0
    const again = spawnSync(process.execPath, [mailbagBin, 'dispatch', '--no-run', '--quiet', '--config', homeToml], { env, encoding: 'utf8', timeout: 60_000 });
    expect(again.status, again.stdout + again.stderr).toBe(0);
  }, 90_000);

  it('one peer whose old outgoing jobs cannot be expired (its ledger does not read) stops no session with the others: said on stderr, 75', async () => {
    const t = tempDir('run-dispatch');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const hubToml = join(t.dir, 'hub.toml');
    writeFileSync(hubToml, `site = "hub"\nspool = ${JSON.stringify(hub.root)}\n[peers.home]\n`);
    const homeToml = join(t.dir, 'home.toml');
    const serve = [process.execPath, mailbagBin, 'serve', '--peer', 'home', '--no-run', '--config', hubToml];
    writeFileSync(homeToml, `site = "home"\nspool = ${JSON.stringify(home.root)}\n[peers.hub]\ntransport = "command"\ncommand = ${JSON.stringify(serve)}\n[peers.backup]\n`);
    const up = await enqueue(home, 'hub', messages([500, 700], 43));
    // backup: a job older than the queue lifetime, and a ledger of another version
    const old = newJobId(Date.now() - 6 * 86_400_000);
    await home.spool.writeJob('out', 'backup', { id: old, from: 'home', to: 'backup', created: new Date(Date.now() - 6 * 86_400_000).toISOString(), command: 'rmail', args: ['r@y.example'], sender: 's@x.example', recipients: ['r@y.example'] }, Buffer.from('Subject: old\n\nold\n'));
    mkdirSync(join(home.root, 'ledger'), { recursive: true });
    writeFileSync(join(home.root, 'ledger', 'backup'), 'mailbag-ledger 9\n');
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.MAILBAG_FAULT;
    const out = new PassThrough();
    const err = new PassThrough();
    let stdout = '';
    let stderr = '';
    out.on('data', (c: Buffer) => (stdout += c.toString()));
    err.on('data', (c: Buffer) => (stderr += c.toString()));
    // before: the expiry's error ended dispatch before any session (75, nothing crossed)
    const code = await dispatchMain(['--no-run', '--config', homeToml], { stdin: Readable.from([]), stdout: out, stderr: err, env, cwd: t.dir, isTTY: false });
    expect(code, stdout + stderr).toBe(75);
    expect(stderr).toMatch(/^4\.3\.0 mailbag: backup: cannot expire the old outgoing jobs: ledger .*: unknown version 9$/m);
    expect(stdout).toMatch(/^hub: sent 2 jobs/m);
    expect(ids(hub, 'in', 'home')).toEqual([...up.keys()].sort());
  }, 90_000);
});
