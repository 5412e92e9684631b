// The bins npm installs are the ones package.json "bin" names (the CommonJS bundles,
// dist/bin/*.cjs), not the ES-module wrappers the other tests run: the same jobs, exit
// statuses and stderr lines must come out of them, run through a symlink as npm links them.
// The session commands (sync, serve, dispatch) run from their own bundle: a real session
// between two sites, from a copy of dist/bin without dist/lib (so nothing but the bundles
// can run), with the code caches as built, missing, or damaged; and a bundled sync
// dialing an SSH server with ssh2 from its bundle.

import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../lib/config/index.js';
import { serveLink } from '../../../lib/session/index.js';
import { generateKeyPair, startSshServer } from '../../../lib/transport/server.js';
import { writeLmtpdConfig } from '../lmtp/lmtpd-process.js';
import { codeCaches, jobsIn, makeSite, movedPackage, repoRoot, requireBuild, runBin, tmpLeftovers, type Site } from './front-door-helpers.js';

beforeAll(requireBuild);

let site: Site;
afterEach(() => site?.cleanup());

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };
const MESSAGE = 'Subject: installed\nFrom: a@example.org\n\nHello.\n.\n';

/** the bin as npm would link it: a symlink in a .bin directory */
function linked(name: string): string {
  return linkedFrom(repoRoot, name);
}

/** `linked` for the package at `root` (a moved copy) */
function linkedFrom(root: string, name: string): string {
  const target = join(root, pkg.bin[name]!);
  const link = join(site.dir, `${name}-${root === repoRoot ? 'repo' : 'moved'}`);
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

  // a cache V8 cannot use is compiled around; one whose bytes are damaged would make V8
  // abort (exit 133, a status no MTA expects), so the front doors keep two copies
  it.each([['the first copy', 0.25], ['the second copy', 0.75]])('front doors with code caches damaged in %s still queue the message', async (_where, at) => {
    site = makeSite();
    const pkg = movedPackage(site.dir);
    const caches = codeCaches(join(pkg, 'dist', 'bin')).filter((f) => /\/mailbag-(enqueue|uux)\./.test(f));
    expect(caches).toHaveLength(2);
    for (const c of caches) {
      const b = readFileSync(c);
      const from = Math.floor(b.length * at);
      for (let i = from; i < from + 64; i++) b[i] = b[i]! ^ 0x5a;
      writeFileSync(c, b);
    }
    const e = await runBin(linkedFrom(pkg, 'mailbag'), ['enqueue', '--config', site.config, 'hub', '-f', 'a@example.org', '--', 'b@example.net'], MESSAGE);
    expect(e).toMatchObject({ code: 0, stderr: '' });
    const u = await runBin(linkedFrom(pkg, 'mailbag-uux'), ['--config', site.config, '-r', '-aa@example.org', '-', 'hub!rmail', '(b@example.net)'], MESSAGE);
    expect(u).toMatchObject({ code: 0, stderr: '' });
    expect(jobsIn(site.spool, 'out', 'hub')).toHaveLength(2);
  });

  it.each([
    ['mailbag.cjs (the installed bin) gives it 64', undefined, 64],
    ['an empty value counts as none (libuv would make it 1 thread)', '', 64],
    ['the environment\'s value wins', '8', 8],
  ])('lmtpd\'s thread pool: %s', async (_what, value, threads) => {
    site = makeSite();
    const { config } = writeLmtpdConfig({ dir: site.dir, peers: { hub: ['hub.test'] } });
    const env = { ...process.env };
    delete env.UV_THREADPOOL_SIZE;
    if (value !== undefined) env.UV_THREADPOOL_SIZE = value;
    const child = spawn(linked('mailbag'), ['lmtpd', '--config', config], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (b: Buffer) => (log += b.toString()));
    child.stderr.on('data', (b: Buffer) => (log += b.toString()));
    const exited = new Promise((r) => child.once('exit', r));
    try {
      const deadline = Date.now() + 20_000;
      while (!/ready\n/.test(log) && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(log).toMatch(/ready\n/);
      // the pool's threads start at its first use (lmtpd's start already used it):
      // beside the main thread, V8's and the inspector's, at least `threads` of them
      const tasks = readdirSync(`/proc/${child.pid}/task`).length;
      expect(tasks).toBeGreaterThan(threads);
      if (threads === 8) expect(tasks).toBeLessThan(64);
      expect(log).not.toMatch(/UV_THREADPOOL_SIZE is not set/);
    } finally {
      process.kill(child.pid!, 'SIGKILL');
      await exited;
    }
  });

  it('mailbag --version through the installed bin', async () => {
    site = makeSite();
    const r = await runBin(linked('mailbag'), ['--version'], '');
    expect(r).toMatchObject({ code: 0, stdout: `mailbag ${pkg.version}\n` });
  });
});

/**
 * Two sites in `site.dir`: home, whose peer hub is `transport = "command"` running
 * `BIN serve --peer home --no-run` at site hub, one job queued each way.
 */
async function twoSites(bin: string): Promise<{ home: string; hub: string; homeSpool: string; hubSpool: string }> {
  const homeSpool = join(site.dir, 'home');
  const hubSpool = join(site.dir, 'hub');
  const home = join(site.dir, 'home.toml');
  const hub = join(site.dir, 'hub.toml');
  const serve = [process.execPath, bin, 'serve', '--peer', 'home', '--no-run', '--config', hub];
  writeFileSync(home, `site = "home"\nspool = ${JSON.stringify(homeSpool)}\n\n[peers.hub]\ntransport = "command"\ncommand = ${JSON.stringify(serve)}\n`);
  writeFileSync(hub, `site = "hub"\nspool = ${JSON.stringify(hubSpool)}\n\n[peers.home]\nhost = "home.invalid"\n`);
  for (const [config, peer, sender] of [[home, 'hub', 'a@home.test'], [hub, 'home', 'c@hub.test']] as const) {
    const r = await runBin(bin, ['enqueue', '--config', config, peer, '-f', sender, '--', 'b@example.net'], MESSAGE);
    expect(r, r.stderr).toMatchObject({ code: 0, stderr: '' });
  }
  return { home, hub, homeSpool, hubSpool };
}

/** `mailbag --config HOME sync hub --no-run` through `bin`: both jobs crossed, nothing left queued */
async function expectSession(bin: string): Promise<void> {
  const s = await twoSites(bin);
  const r = await runBin(bin, ['--config', s.home, 'sync', 'hub', '--no-run'], '');
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/^hub: sent 1 jobs in 1 bags .*received 1 jobs in 1 bags/);
  expect(r.stderr).toBe('');
  expect(jobsIn(s.hubSpool, 'in', 'home').map((j) => j.header.sender)).toEqual(['a@home.test']);
  expect(jobsIn(s.homeSpool, 'in', 'hub').map((j) => j.header.sender)).toEqual(['c@hub.test']);
  expect(jobsIn(s.homeSpool, 'out', 'hub')).toEqual([]);
  expect(jobsIn(s.hubSpool, 'out', 'home')).toEqual([]);
  expect(jobsIn(s.hubSpool, 'in', 'home')[0]!.payload.toString().endsWith(MESSAGE)).toBe(true);
}

describe('the session commands from their bundle (mailbag-session.HASH.code.cjs)', () => {
  it('the built bundles have a code cache for serve, one for sync and one for ssh2', () => {
    const caches = readdirSync(join(repoRoot, 'dist', 'bin')).filter((f) => /^mailbag-(session|ssh2)\./.test(f) && f.endsWith('.v8cache'));
    expect(caches.map((f) => f.replace(/\.[0-9a-f]{16}\./, '.')).sort()).toEqual(['mailbag-session.serve.v8cache', 'mailbag-session.sync.v8cache', 'mailbag-ssh2.v8cache']);
  });

  it('every file the session bundle names beside itself (its worker threads\' bundles) is there', () => {
    const bin = join(repoRoot, 'dist', 'bin');
    const code = readdirSync(bin).filter((f) => /^mailbag-session\.[0-9a-f]{16}\.code\.cjs$/.test(f));
    expect(code).toHaveLength(1);
    const named = [...readFileSync(join(bin, code[0]!), 'utf8').matchAll(/\.\/(mailbag-[\w.-]+\.cjs)/g)].map((m) => m[1]!);
    expect(named.filter((f) => !readdirSync(bin).includes(f))).toEqual([]);
    // and no module URL was left pointing at a file that only exists in dist/lib
    expect(readFileSync(join(bin, code[0]!), 'utf8')).not.toMatch(/@@worker:/);
  });

  // the copy has no dist/lib: mailbag.js's own path (main.ts) would fail there, so these
  // sessions ran from the bundles alone, with caches that moved with them
  it.each([['mailbag.cjs (the installed bin, linked)'], ['mailbag.js (the ES module entry)']])('sync and serve through %s, moved away from the build', async (which) => {
    site = makeSite();
    const pkg = movedPackage(site.dir);
    const bin = which.startsWith('mailbag.cjs') ? linkedFrom(pkg, 'mailbag') : join(pkg, 'dist', 'bin', 'mailbag.js');
    await expectSession(bin);
    const d = await runBin(bin, ['dispatch', '--config', join(site.dir, 'home.toml'), '--no-run'], '');
    expect(d, d.stderr).toMatchObject({ code: 0, stdout: 'no peer has work queued or is due\n' });
  });

  it.each([
    ['missing', (f: string) => unlinkSync(f)],
    ['empty', (f: string) => truncateSync(f, 0)],
    ['cut short', (f: string) => truncateSync(f, Math.floor(readFileSync(f).length / 2))],
    ['not a cache at all', (f: string) => writeFileSync(f, 'not a V8 code cache\n'.repeat(100))],
    // V8 does not check these bytes: only the checksum keeps them from its deserializer
    ['damaged in the middle', (f: string) => {
      const b = readFileSync(f);
      for (let i = b.length >> 1; i < (b.length >> 1) + 64; i++) b[i] = b[i]! ^ 0x5a;
      writeFileSync(f, b);
    }],
  ])('code caches %s cost only time: the session still runs', async (_what, spoil) => {
    site = makeSite();
    const pkg = movedPackage(site.dir);
    const caches = codeCaches(join(pkg, 'dist', 'bin')).filter((f) => f.includes('mailbag-session.'));
    expect(caches).toHaveLength(2);
    for (const c of caches) spoil(c);
    await expectSession(linkedFrom(pkg, 'mailbag'));
  });

  // ssh2's JavaScript runs from its own bundle (mailbag-ssh2.HASH.code.cjs, its native
  // binding from node_modules): a bundled sync dials an SSH server (lib/transport/server.ts,
  // here in the test process, running the far end for site hub)
  it.each([['as built'], ['damaged']])('sync dials over SSH (transport = "ssh") with ssh2 from its bundle, code caches %s', async (how) => {
    site = makeSite();
    const pkg = movedPackage(site.dir);
    if (how === 'damaged') {
      for (const c of codeCaches(join(pkg, 'dist', 'bin'))) {
        const b = readFileSync(c);
        for (let i = b.length >> 1; i < (b.length >> 1) + 64; i++) b[i] = b[i]! ^ 0x5a;
        writeFileSync(c, b);
      }
    }
    const bin = linkedFrom(pkg, 'mailbag');
    const s = await twoSites(bin);
    const key = generateKeyPair('installed-bins');
    const identity = join(site.dir, 'id_home');
    writeFileSync(identity, key.privateKey, { mode: 0o600 });
    const hubConfig = loadConfig({ path: s.hub, env: {}, cwd: site.dir });
    const server = await startSshServer({
      authorizedKeys: [{ key: key.publicKey, peer: 'home' }],
      onExec: async ({ peer, link }) => (await serveLink({ config: hubConfig, peer, link }), 0),
    });
    try {
      const knownHosts = join(site.dir, 'known_hosts');
      writeFileSync(knownHosts, `${server.knownHostsLine}\n`);
      writeFileSync(s.home, `site = "home"\nspool = ${JSON.stringify(s.homeSpool)}\n\n[peers.hub]\ntransport = "ssh"\nhost = "127.0.0.1"\nport = ${server.port}\n` +
        `identity = ${JSON.stringify(identity)}\nknown_hosts = ${JSON.stringify(knownHosts)}\n`);
      const r = await runBin(bin, ['sync', 'hub', '--config', s.home, '--no-run'], '');
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^hub: sent 1 jobs in 1 bags .*received 1 jobs in 1 bags/);
      expect(jobsIn(s.hubSpool, 'in', 'home').map((j) => j.header.sender)).toEqual(['a@home.test']);
      expect(jobsIn(s.homeSpool, 'in', 'hub').map((j) => j.header.sender)).toEqual(['c@hub.test']);
    } finally {
      await server.close();
    }
  });

  it('serve from the bundle refuses a peer it does not know, with its one line', async () => {
    site = makeSite();
    const r = await runBin(linked('mailbag'), ['serve', '--peer', 'stranger', '--config', site.config, '--no-run'], '');
    expect(r.code).toBe(75);
    expect(r.stderr).toMatch(/^4\.3\.5 mailbag: unknown peer "stranger": add a \[peers\.stranger\] section/);
    // the refusal goes to the peer as a frame on stdout
    expect(r.stdout.length).toBeGreaterThan(0);
  });
});
