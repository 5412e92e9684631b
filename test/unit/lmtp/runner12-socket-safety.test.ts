// lmtpd's unix socket where other users may write (docs/mailbag-lmtpd.md, "Sockets"):
// 1. the mode was set by chmod(path) after the bind, and chmod follows a symbolic link:
//    whoever could put a link in the socket's place between the two (a directory they
//    may write) had lmtpd give socket_mode (0660, 0666) to any file of lmtpd's user, or
//    of root's when it runs as root. Now the socket is made with its mode (the bind's
//    umask) and nothing is chmod'ed by path; a socket not ours right after the bind is
//    refused (not served; the link itself goes with the closed listener, not its target).
// 2. a socket in a directory others may write (/tmp, 1777) was taken: another user can
//    take its name while lmtpd is down (the sticky bit does not stop that) and be handed
//    the MTA's mail. Now lmtpd refuses such a directory, before anything listens.
// The swap in 1 is put into the bind's own 'listening' event (the moment the bind is
// done), the way another user with write access to the directory would do it: no timing.
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { ConfigError } from '../../../lib/errors.js';
import { buildRouter } from '../../../lib/lmtp/route.js';
import { checkSocketDir, LmtpServer } from '../../../lib/lmtp/server.js';
import { need } from '../../helpers/need.js';
import { mailbagBin, writeLmtpdConfig } from './lmtpd-process.js';
import { MemoryLedger, MemoryStore } from './memory-store.js';

const router = buildRouter({ peers: { hub: { name: 'hub', domains: ['example.org'], addresses: [] } } });
const root = process.geteuid?.() === 0;

let dir: string;
let server: LmtpServer | undefined;
const realListen = Server.prototype.listen;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-runner12-sock-'));
});
afterEach(async () => {
  Server.prototype.listen = realListen;
  await server?.close(0);
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

function newServer(): LmtpServer {
  server = new LmtpServer({ router, store: new MemoryStore(), ledger: new MemoryLedger(), hostname: 'lmtp.test', maxMessageSize: 10_000, maxRecipients: 5, maxConnections: 3 });
  return server;
}

it('the socket is made with socket_mode, and a link put in its place after the bind gets no mode', async () => {
  const sock = join(dir, 'lmtp.sock');
  // a file of lmtpd's user that no one else may read
  const victim = join(dir, 'secret');
  writeFileSync(victim, 'key\n', { mode: 0o600 });
  chmodSync(victim, 0o600);
  // another user's swap, as soon as the bind is done: the socket renamed away, a link to the file in its place
  Server.prototype.listen = function (this: Server, ...args: unknown[]) {
    if (args[0] === sock) {
      this.once('listening', () => {
        renameSync(sock, join(dir, 'moved.sock'));
        symlinkSync(victim, sock);
      });
    }
    return (realListen as (...a: unknown[]) => Server).apply(this, args);
  } as typeof Server.prototype.listen;
  const s = newServer();
  await expect(s.listenUnix(sock, 0o666)).rejects.toThrow(/is a symbolic link right after lmtpd made its socket there/);
  // before: chmod(path) followed the link, the file became 0666
  expect(statSync(victim).mode & 0o777).toBe(0o600);
  expect(readFileSync(victim, 'utf8')).toBe('key\n');
  // the socket itself was born with the mode asked for, no chmod needed
  expect(lstatSync(join(dir, 'moved.sock')).mode & 0o777).toBe(0o666);
});

it('without a swap the socket has socket_mode exactly, whatever the process umask', async () => {
  const sock = join(dir, 'lmtp.sock');
  const old = process.umask(0o022);
  try {
    await newServer().listenUnix(sock, 0o660);
    expect(lstatSync(sock).mode & 0o777).toBe(0o660);
    expect(process.umask()).toBe(0o022);
  } finally {
    process.umask(old);
  }
});

for (const [what, mode] of [['every user may write, sticky (like /tmp)', 0o1777], ['every user may write', 0o777], ['its group may write', 0o770], ['its group may write, sticky', 0o1770]] as const) {
  it(`a socket directory ${what} (0${mode.toString(8)}) is refused before anything listens`, async () => {
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, mode);
    const sock = join(open, 'lmtp.sock');
    expect(() => checkSocketDir(sock)).toThrow(ConfigError);
    await expect(newServer().listenUnix(sock, 0o660)).rejects.toThrow(/may write the socket's directory .*another user could take the socket's name while lmtpd is down/);
    expect(existsSync(sock)).toBe(false);
  });
}

it('a directory above the socket\'s that others may write is refused without the sticky bit, taken with it', () => {
  const up = join(dir, 'up');
  const own = join(up, 'run');
  mkdirSync(own, { recursive: true });
  chmodSync(own, 0o750);
  chmodSync(up, 0o777);
  expect(() => checkSocketDir(join(own, 'lmtp.sock'))).toThrow(/may write .*up, above the socket's directory \(mode 0777\)/);
  chmodSync(up, 0o1777);
  expect(() => checkSocketDir(join(own, 'lmtp.sock'))).not.toThrow();
  // through a link: the directory it really is counts too
  const link = join(dir, 'link');
  const open = join(dir, 'open');
  mkdirSync(open);
  chmodSync(open, 0o1777);
  symlinkSync(open, link);
  expect(() => checkSocketDir(join(link, 'lmtp.sock'))).toThrow(/socket's directory .*(link|open) \(mode 01777\)/);
});

it.skipIf(!root)('a socket directory owned by another user is refused', () => {
  const theirs = join(dir, 'theirs');
  mkdirSync(theirs);
  chmodSync(theirs, 0o755);
  chownSync(theirs, 4321, 4321);
  expect(() => checkSocketDir(join(theirs, 'lmtp.sock'))).toThrow(/socket's directory .*theirs is owned by uid 4321/);
  // the user lmtpd runs as may own it
  expect(() => checkSocketDir(join(theirs, 'lmtp.sock'), 4321)).not.toThrow();
});

const built = need('the built mailbag (dist/bin/mailbag.js)', [mailbagBin], 'run npm run build first');
for (const workers of [1, 2]) {
  it.skipIf(!built)(`mailbag lmtpd${workers > 1 ? ' --workers 2' : ''} with its socket in a 1777 directory: 75, the reason on stderr, no socket`, () => {
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o1777);
    const sock = join(open, 'lmtp.sock');
    const { config } = writeLmtpdConfig({ dir, peers: { hub: ['example.org'] }, socket: sock, workers });
    const r = spawnSync(process.execPath, [mailbagBin, 'lmtpd', '--config', config], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(75);
    expect(r.stderr).toMatch(/^4\.3\.5 .*every user may write the socket's directory .*open \(mode 01777\)/m);
    expect(existsSync(sock)).toBe(false);
  });
}
