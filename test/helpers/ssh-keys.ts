// SSH keys for tests, made by OpenSSH's own ssh-keygen in a temp dir (so the tests read
// exactly the files users have), and known_hosts lines for a test server.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export type KeyType = 'ed25519' | 'ecdsa' | 'rsa';

export interface KeyFiles {
  type: KeyType;
  /** private key file (OpenSSH format, mode 0600, no passphrase unless one was given) */
  privatePath: string;
  publicPath: string;
  /** the public key line: `ssh-ed25519 AAAA… comment` */
  publicKey: string;
  privateKey: string;
}

/** `ssh-keygen -t TYPE -N '' -f DIR/NAME`; ecdsa is P-256, rsa 2048 bits (fast enough for tests). */
export function makeKey(dir: string, name: string, type: KeyType = 'ed25519', passphrase = ''): KeyFiles {
  const privatePath = join(dir, name);
  const bits = type === 'rsa' ? ['-b', '2048'] : type === 'ecdsa' ? ['-b', '256'] : [];
  execFileSync('ssh-keygen', ['-q', '-t', type, ...bits, '-N', passphrase, '-C', `mailbag-test-${name}`, '-f', privatePath], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
  return {
    type,
    privatePath,
    publicPath: `${privatePath}.pub`,
    publicKey: readFileSync(`${privatePath}.pub`, 'utf8').trim(),
    privateKey: readFileSync(privatePath, 'utf8'),
  };
}

/** `[host]:port keytype base64` (or `host keytype base64` on port 22) for a public key line */
export function knownHostsLine(host: string, port: number, publicKey: string): string {
  const [type, b64] = publicKey.trim().split(/\s+/);
  return `${port === 22 ? host : `[${host}]:${port}`} ${type} ${b64}`;
}

/** an authorized_keys line with a forced command, as docs/security.md recommends */
export function authorizedKeyLine(publicKey: string, command: string | undefined, extra = 'restrict'): string {
  // sshd unescapes only \" inside command="…"; every other byte is taken as it is
  const opts = [command !== undefined ? `command="${command.replace(/"/g, '\\"')}"` : '', extra].filter(Boolean).join(',');
  return `${opts ? `${opts} ` : ''}${publicKey.trim()}`;
}
