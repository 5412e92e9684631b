// A real OpenSSH sshd for integration tests: /usr/sbin/sshd on 127.0.0.1 and a free
// port, in the foreground (-D -e) with a config, host keys, authorized_keys (forced
// commands) and PidFile all in a temp dir; stopped by its PID (its process group, so
// per-connection children go too). Every wait is bounded.
//
//   if (!haveSshd()) return;                       // skips locally, throws under CI
//   const sshd = await startSshd({ authorizedKeys: [{ publicKey: key.publicKey, command: 'cat' }] });
//   …connect to 127.0.0.1:sshd.port as sshd.user, known_hosts = sshd.knownHostsFile…
//   await sshd.stop();

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { need } from './need.js';
import { authorizedKeyLine, knownHostsLine, makeKey } from './ssh-keys.js';

export const SSHD_BIN = '/usr/sbin/sshd';

/** true when sshd and ssh-keygen are here; false with a SKIP line locally; throws under CI */
export function haveSshd(): boolean {
  return need('OpenSSH sshd', [SSHD_BIN, '/usr/bin/ssh-keygen'], 'apt-get install openssh-server openssh-client (see .ci/run)');
}

export interface AuthorizedKeyEntry {
  /** public key line (`ssh-ed25519 AAAA… comment`) */
  publicKey: string;
  /** forced command (`command="…"`); undefined = the client's own command runs */
  command?: string;
  /** other options; default `restrict` */
  options?: string;
}

export interface SshdOptions {
  authorizedKeys: AuthorizedKeyEntry[];
  /** temp dir to use (default: a new one, removed by stop()) */
  dir?: string;
  /** extra sshd_config lines */
  config?: string[];
  /** how long to wait for sshd to listen (default 15 s) */
  readyTimeoutMs?: number;
}

export interface Sshd {
  host: '127.0.0.1';
  port: number;
  /** the user to log in as: the one running the tests */
  user: string;
  pid: number;
  dir: string;
  /** host public key lines, ed25519 first */
  hostPublicKeys: string[];
  /** a known_hosts file with this server's host keys in `[127.0.0.1]:PORT` form */
  knownHostsFile: string;
  knownHostsLines: string[];
  authorizedKeysFile: string;
  /** replace authorized_keys (sshd reads it at each login) */
  setAuthorizedKeys(entries: AuthorizedKeyEntry[]): void;
  /** what sshd wrote to stderr so far */
  log(): string;
  stop(): Promise<void>;
}

/** one argument quoted for the POSIX shell sshd runs a forced command with */
export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * The forced command for `mailbag serve` from this checkout's build (dist/, made by
 * `npm test`'s pretest), run by this very node binary: sshd's PATH may not have node.
 * `env` is put in front (`NAME=value … node …`): sshd passes the client none.
 */
export function serveCommand(peer: string, configFile: string, env: Record<string, string> = {}, extraArgs: string[] = []): string {
  const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
  const vars = Object.entries(env).map(([k, v]) => `${k}=${shellQuote(v)}`);
  return [...vars, process.execPath, join(repo, 'dist/bin/mailbag.js'), 'serve', '--peer', peer, '--config', configFile, ...extraArgs].map((a, i) => (i < vars.length ? a : shellQuote(a))).join(' ');
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** resolves true once something on 127.0.0.1:port sends an SSH banner, false at the deadline */
async function waitBanner(port: number, deadline: number, child: ChildProcess): Promise<boolean> {
  while (Date.now() < deadline && child.exitCode === null) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      const t = setTimeout(() => {
        s.destroy();
        resolve(false);
      }, 1000);
      s.once('data', (d) => {
        clearTimeout(t);
        s.destroy();
        resolve(d.toString('latin1').startsWith('SSH-2.0-'));
      });
      s.once('error', () => {
        clearTimeout(t);
        resolve(false);
      });
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

export async function startSshd(options: SshdOptions): Promise<Sshd> {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'mailbag-sshd-'));
  const isRoot = process.getuid?.() === 0;
  const user = userInfo().username;
  // privilege separation needs this directory when sshd runs as root
  if (isRoot) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKeys = [makeKey(dir, 'ssh_host_ed25519_key', 'ed25519'), makeKey(dir, 'ssh_host_ecdsa_key', 'ecdsa')];
  const authorizedKeysFile = join(dir, 'authorized_keys');
  const writeKeys = (entries: AuthorizedKeyEntry[]): void => {
    writeFileSync(authorizedKeysFile, entries.map((e) => `${authorizedKeyLine(e.publicKey, e.command, e.options ?? 'restrict')}\n`).join(''), { mode: 0o600 });
  };
  writeKeys(options.authorizedKeys);
  const pidFile = join(dir, 'sshd.pid');
  const readyTimeout = options.readyTimeoutMs ?? 15_000;

  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const config = [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      ...hostKeys.map((k) => `HostKey ${k.privatePath}`),
      `PidFile ${pidFile}`,
      `AuthorizedKeysFile ${authorizedKeysFile}`,
      // the temp dir is not root-owned all the way up: StrictModes would refuse the keys
      'StrictModes no',
      'UsePAM no',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      isRoot ? 'PermitRootLogin prohibit-password' : '',
      `AllowUsers ${user}`,
      'PermitUserEnvironment no',
      'PrintMotd no',
      'LogLevel VERBOSE',
      // cut tests reconnect many times in a row
      'MaxStartups 100',
      ...(options.config ?? []),
    ].filter(Boolean);
    const configFile = join(dir, 'sshd_config');
    writeFileSync(configFile, `${config.join('\n')}\n`, { mode: 0o600 });
    let log = '';
    // its own process group, so stop() also ends the per-connection children
    const child = spawn(SSHD_BIN, ['-D', '-e', '-f', configFile], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    child.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.length > 1_000_000) log = log.slice(-500_000);
    });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const ready = await waitBanner(port, Date.now() + readyTimeout, child);
    if (!ready) {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      if (attempt < 3 && /address already in use/i.test(log)) continue;
      if (ownDir) rmSync(dir, { recursive: true, force: true });
      throw new Error(`sshd did not start on 127.0.0.1:${port}: ${log.trim() || `exit ${child.exitCode}`}`);
    }
    const hostPublicKeys = hostKeys.map((k) => k.publicKey);
    const knownHostsLines = hostPublicKeys.map((k) => knownHostsLine('127.0.0.1', port, k));
    const knownHostsFile = join(dir, 'known_hosts');
    writeFileSync(knownHostsFile, `${knownHostsLines.join('\n')}\n`, { mode: 0o600 });
    return {
      host: '127.0.0.1',
      port,
      user,
      pid: child.pid!,
      dir,
      hostPublicKeys,
      knownHostsFile,
      knownHostsLines,
      authorizedKeysFile,
      setAuthorizedKeys: writeKeys,
      log: () => log,
      async stop() {
        if (child.exitCode === null && child.signalCode === null) {
          const pid = Number(readFileSync(pidFile, 'utf8').trim()) || child.pid!;
          try {
            process.kill(-child.pid!, 'SIGTERM');
          } catch {
            process.kill(pid, 'SIGTERM');
          }
          const killer = setTimeout(() => {
            try {
              process.kill(-child.pid!, 'SIGKILL');
            } catch {
              // gone
            }
          }, 5000);
          await exited;
          clearTimeout(killer);
        }
        if (ownDir) rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}
