// known_hosts' default when HOME is unset: ssh(1) looks in the passwd entry's home (it
// ignores HOME altogether), mailbag takes HOME first (the spool-owner switch sets it) and,
// unset, that same passwd home. It used to fall back to /root: another user's file (an
// EACCES "cannot read known_hosts" for the mailbag user) or, for a process that can read
// /root, root's trust decisions for the mailbag user's dial (proto9, checked against
// OpenSSH 9.2: `runuser -u nobody -- env -u HOME ssh -G h` → /nonexistent/.ssh/known_hosts).
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { underCI } from '../../helpers/need.js';
import { parseConfig } from '../../../lib/config/index.js';

const repo = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const built = join(repo, 'dist', 'lib', 'config', 'index.js');
const asRoot = process.getuid?.() === 0 && existsSync('/usr/sbin/runuser') && existsSync(built);
if (!asRoot) {
  const line = 'known_hosts as another user needs root, runuser and a build (npm run build)';
  if (underCI) throw new Error(`under CI this must run: ${line}`);
  process.stderr.write(`SKIP ${line}\n`);
}

const dir = mkdtempSync(join(tmpdir(), 'mailbag-kh-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('HOME set: its .ssh/known_hosts', () => {
  const old = process.env.HOME;
  process.env.HOME = '/home/someone';
  try {
    expect(parseConfig('spool = "/s"\n[peers.hub]\nhost = "h"\n', '/etc/m.toml').peers.hub!.knownHosts).toBe('/home/someone/.ssh/known_hosts');
  } finally {
    if (old === undefined) delete process.env.HOME;
    else process.env.HOME = old;
  }
});

it('HOME unset: this user\'s passwd home, as ssh(1), not /root', () => {
  const old = process.env.HOME;
  delete process.env.HOME;
  try {
    expect(parseConfig('spool = "/s"\n[peers.hub]\nhost = "h"\n', '/etc/m.toml').peers.hub!.knownHosts).toBe(join(userInfo().homedir, '.ssh', 'known_hosts'));
  } finally {
    if (old !== undefined) process.env.HOME = old;
  }
});

it.skipIf(!asRoot)('user nobody with HOME unset: /nonexistent/.ssh/known_hosts (its passwd home), never /root', () => {
  chmodSync(dir, 0o755);
  const file = join(dir, 'mailbag.toml');
  writeFileSync(file, `spool = "${join(dir, 'spool')}"\n[peers.hub]\nhost = "h"\n`, { mode: 0o644 });
  const script = `import(${JSON.stringify(pathToFileURL(built).href)}).then((m) => process.stdout.write(m.parseConfig(require('fs').readFileSync(${JSON.stringify(file)}, 'utf8'), ${JSON.stringify(file)}).peers.hub.knownHosts))`;
  const r = spawnSync('/usr/sbin/runuser', ['-u', 'nobody', '--', 'env', '-u', 'HOME', process.execPath, '-e', script], { encoding: 'utf8', timeout: 30_000 });
  expect(r.stderr).toBe('');
  const home = spawnSync('getent', ['passwd', 'nobody'], { encoding: 'utf8' }).stdout.split(':')[5];
  expect(home).toBeTruthy();
  expect(r.stdout).toBe(join(home!, '.ssh', 'known_hosts'));
  expect(r.stdout).not.toMatch(/^\/root/);
});
