// `mailbag sync` dials its peer before it opens the spool and takes the session lock
// (lib/transport/early.ts). As a process from dist/, through ssh2 into a real OpenSSH
// sshd on 127.0.0.1 whose authorized_keys forces `mailbag serve`: each way the dial can
// fail still gives its exit code and one line, and a link the session never took (the
// lock held by another session) leaves no far `serve` running and sends nothing.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { need } from '../helpers/need.js';
import { makeKey, type KeyFiles } from '../helpers/ssh-keys.js';
import { haveSshd, shellQuote, startSshd, type Sshd } from '../helpers/sshd.js';
import { enqueue, ids, makeSite, messages, tempDir, type Site } from '../unit/session/sites.js';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const bin = join(repo, 'dist', 'bin', 'mailbag.js');
const ready = haveSshd() && need('the built mailbag', [bin], 'run npm run build first (npm test does)');

interface Run {
  status: number | null;
  out: string;
  err: string;
}

/** `mailbag ARGS` as a process, bounded */
function mailbag(args: string[]): Promise<Run> {
  const env = { ...process.env };
  delete env.MAILBAG_CONFIG;
  delete env.SSH_AUTH_SOCK;
  return new Promise((res) => {
    const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      res({ status, out, err });
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 250 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
  return !alive(pid);
}

const t = tempDir('early-sshd');
let sshd: Sshd;
let hub: Site;
let home: Site;
let key: KeyFiles;
let stranger: KeyFiles;
const farPid = join(t.dir, 'far.pid');

function homeToml(name: string, over: Record<string, string> = {}): string {
  const peer: Record<string, string> = {
    host: JSON.stringify('127.0.0.1'),
    port: String(sshd.port),
    user: JSON.stringify(sshd.user),
    identity: JSON.stringify(key.privatePath),
    known_hosts: JSON.stringify(sshd.knownHostsFile),
    connect_timeout: JSON.stringify('10s'),
    ...over,
  };
  const file = join(t.dir, `${name}.toml`);
  writeFileSync(file, `site = "home"\nspool = ${JSON.stringify(home.root)}\n[peers.hub]\n${Object.entries(peer).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`);
  return file;
}

describe.skipIf(!ready)('mailbag sync: the early dial against a real sshd', () => {
  beforeAll(async () => {
    hub = await makeSite(t.dir, 'hub');
    home = await makeSite(t.dir, 'home');
    key = makeKey(t.dir, 'id_home');
    stranger = makeKey(t.dir, 'id_stranger');
    const hubToml = join(t.dir, 'hub.toml');
    writeFileSync(hubToml, `site = "hub"\nspool = ${JSON.stringify(hub.root)}\n[peers.home]\n`);
    // the forced serve notes its pid (exec keeps it) before it starts
    const serve = `echo $$ > ${shellQuote(farPid)}; exec ${shellQuote(process.execPath)} ${shellQuote(bin)} serve --peer home --no-run --config ${shellQuote(hubToml)}`;
    sshd = await startSshd({ authorizedKeys: [{ publicKey: key.publicKey, command: serve }] });
  });

  afterAll(async () => {
    await sshd?.stop();
    t.remove();
  });

  it('with the session lock held by another session: locked (75), the far serve it started is gone, nothing crossed', async () => {
    const up = await enqueue(home, 'hub', messages([900], 71));
    const held = await home.spool.lock('session-hub');
    let r: Run;
    try {
      r = await mailbag(['sync', 'hub', '--config', homeToml('locked'), '--no-run']);
    } finally {
      await held.release();
    }
    expect(r.status, r.err).toBe(75);
    expect(r.err).toMatch(/^4\.3\.0 mailbag: another session with hub is running/);
    if (existsSync(farPid)) expect(await gone(Number(readFileSync(farPid, 'utf8')))).toBe(true);
    expect(ids(hub, 'in', 'home')).toEqual([]);
    // and the next sync, the lock free, carries the job
    const again = await mailbag(['sync', 'hub', '--config', homeToml('locked'), '--no-run']);
    expect(again.status, again.err).toBe(0);
    expect(ids(hub, 'in', 'home')).toEqual([...up.keys()].sort());
  });

  it('with the lock held while the dial still waits for a silent server: locked at once, not after connect_timeout', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => void sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const held = await home.spool.lock('session-hub');
    try {
      const started = Date.now();
      const r = await mailbag(['sync', 'hub', '--config', homeToml('locked-silent', { port: String(port), connect_timeout: JSON.stringify('40s') }), '--no-run']);
      expect(r.status, r.err).toBe(75);
      expect(r.err).toMatch(/another session with hub is running/);
      // bounded by the release, not by the 40 s connect timeout (a generous bound: no timing claim)
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      await held.release();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('a changed host key: 78 and its line', async () => {
    const other = makeKey(t.dir, 'other_host').publicKey.split(' ').slice(0, 2).join(' ');
    const known = join(t.dir, 'known_changed');
    writeFileSync(known, `[127.0.0.1]:${sshd.port} ${other}\n`);
    const r = await mailbag(['sync', 'hub', '--config', homeToml('changed', { known_hosts: JSON.stringify(known) }), '--no-run']);
    expect(r.status, r.err).toBe(78);
    expect(r.err).toMatch(/^4\.7\.0 mailbag: .*host key/im);
  });

  it('an unknown host: 78', async () => {
    const known = join(t.dir, 'known_empty');
    writeFileSync(known, '');
    const r = await mailbag(['sync', 'hub', '--config', homeToml('unknown', { known_hosts: JSON.stringify(known) }), '--no-run']);
    expect(r.status, r.err).toBe(78);
    expect(r.err).toMatch(/^4\.7\.0 mailbag: /m);
  });

  it('a key sshd does not know: auth (77)', async () => {
    const r = await mailbag(['sync', 'hub', '--config', homeToml('stranger', { identity: JSON.stringify(stranger.privatePath) }), '--no-run']);
    expect(r.status, r.err).toBe(77);
    expect(r.err).toMatch(/^4\.7\.0 mailbag: /m);
  });

  it('a missing identity file: the configuration error, not a crash', async () => {
    const r = await mailbag(['sync', 'hub', '--config', homeToml('nokey', { identity: JSON.stringify(join(t.dir, 'no-such-key')) }), '--no-run']);
    expect([75, 77]).toContain(r.status);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/^4\.\d\.\d mailbag: .*no-such-key/);
  });

  it('a server that accepts and never speaks: timeout (75) after connect_timeout, with the lock free again', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => void sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    try {
      const r = await mailbag(['sync', 'hub', '--config', homeToml('silent', { port: String(port), connect_timeout: JSON.stringify('2s') }), '--no-run']);
      expect(r.status, r.err).toBe(75);
      expect(r.err).toMatch(/^4\.4\.[12] mailbag: /m);
      const lock = await home.spool.lock('session-hub');
      await lock.release();
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });
});
