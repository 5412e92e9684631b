// Host key checking against an OpenSSH known_hosts file, as ssh(1) does it: plain and
// hashed (`|1|salt|hash`) host patterns, `[host]:port` for ports other than 22,
// wildcards and `!` negation, and the @revoked marker. Pure: the caller reads the file.
// @cert-authority lines are skipped: mailbag does not accept host certificates.

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export type HostKeyVerdict =
  | { verdict: 'ok'; line: number }
  | { verdict: 'unknown' }
  /** the host is known, with other keys: `known` lists them (type, fingerprint, line) */
  | { verdict: 'changed'; known: KnownKey[] }
  | { verdict: 'revoked'; line: number };

export interface KnownKey {
  type: string;
  fingerprint: string;
  line: number;
}

interface Entry {
  marker: string | undefined;
  patterns: string;
  type: string;
  key: Buffer;
  line: number;
}

/** The name a host is looked up by in known_hosts: `host`, or `[host]:port` off port 22. */
export function knownHostsName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

/** OpenSSH's SHA256 fingerprint of a public key blob: `SHA256:` + unpadded base64. */
export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside an SSH public key blob (`ssh-ed25519`, `ssh-rsa`, …). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const n = blob.readUInt32BE(0);
  if (n > 64 || 4 + n > blob.length) return 'unknown';
  return blob.subarray(4, 4 + n).toString('latin1');
}

function parse(text: string): Entry[] {
  const entries: Entry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const fields = raw.split(/[ \t]+/);
    let marker: string | undefined;
    if (fields[0]!.startsWith('@')) marker = fields.shift();
    const [patterns, type, b64] = fields;
    if (!patterns || !type || !b64) continue;
    const key = Buffer.from(b64, 'base64');
    if (key.length === 0) continue;
    entries.push({ marker, patterns, type, key, line: i + 1 });
  }
  return entries;
}

function wildcardMatch(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return re.test(name);
}

function hashedMatch(pattern: string, name: string): boolean {
  // |1|base64(salt)|base64(HMAC-SHA1(salt, name))
  const parts = pattern.split('|');
  if (parts.length !== 4 || parts[1] !== '1') return false;
  const salt = Buffer.from(parts[2]!, 'base64');
  const want = Buffer.from(parts[3]!, 'base64');
  const got = createHmac('sha1', salt).update(name).digest();
  return want.length === got.length && timingSafeEqual(want, got);
}

/** true when the comma-separated host patterns of a line match `name` (negations win) */
export function patternsMatch(patterns: string, name: string): boolean {
  if (patterns.startsWith('|')) return hashedMatch(patterns, name);
  let matched = false;
  for (const p of patterns.split(',')) {
    if (p.startsWith('!')) {
      if (wildcardMatch(p.slice(1), name)) return false;
    } else if (wildcardMatch(p, name)) matched = true;
  }
  return matched;
}

/** Check the key a server offered against known_hosts text. */
export function checkHostKey(knownHostsText: string, host: string, port: number, offered: Buffer): HostKeyVerdict {
  const name = knownHostsName(host, port);
  const entries = parse(knownHostsText);
  for (const e of entries) {
    // a revoked key is refused for every host, as ssh(1) does
    if (e.marker === '@revoked' && e.key.equals(offered)) return { verdict: 'revoked', line: e.line };
  }
  const known: KnownKey[] = [];
  for (const e of entries) {
    if (e.marker !== undefined) continue;
    if (!patternsMatch(e.patterns, name)) continue;
    if (e.key.equals(offered)) return { verdict: 'ok', line: e.line };
    known.push({ type: keyTypeOf(e.key), fingerprint: fingerprintOf(e.key), line: e.line });
  }
  return known.length > 0 ? { verdict: 'changed', known } : { verdict: 'unknown' };
}

/** SSH host key algorithms for the key types known_hosts has for the host, to ask the server for those first. */
export function knownHostKeyAlgorithms(knownHostsText: string, host: string, port: number): string[] {
  const name = knownHostsName(host, port);
  const algos: string[] = [];
  for (const e of parse(knownHostsText)) {
    if (e.marker !== undefined || !patternsMatch(e.patterns, name)) continue;
    const type = keyTypeOf(e.key);
    const add = type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type];
    for (const a of add) if (!algos.includes(a)) algos.push(a);
  }
  return algos;
}
