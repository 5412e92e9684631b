import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkHostKey, fingerprintOf, generateKeyPair, knownHostsName, patternsMatch } from '../../../lib/transport/index.js';

const keyA = generateKeyPair('a').publicKey.split(' ').slice(0, 2).join(' ');
const keyB = generateKeyPair('b').publicKey.split(' ').slice(0, 2).join(' ');
const blob = (line: string): Buffer => Buffer.from(line.split(' ')[1]!, 'base64');

describe('known_hosts', () => {
  it('names hosts as ssh does', () => {
    expect(knownHostsName('Hub.Example.org', 22)).toBe('hub.example.org');
    expect(knownHostsName('hub', 2222)).toBe('[hub]:2222');
  });

  it('matches patterns, wildcards and negations', () => {
    expect(patternsMatch('hub,hub.example.org', 'hub.example.org')).toBe(true);
    expect(patternsMatch('*.example.org', 'hub.example.org')).toBe(true);
    expect(patternsMatch('*.example.org,!evil.example.org', 'evil.example.org')).toBe(false);
    expect(patternsMatch('h?b', 'hub')).toBe(true);
    expect(patternsMatch('hub', 'hubx')).toBe(false);
    expect(patternsMatch('[hub]:2222', '[hub]:2222')).toBe(true);
    expect(patternsMatch('hub', '[hub]:2222')).toBe(false);
  });

  it('matches hashed entries by HMAC-SHA1 of the name', () => {
    const salt = Buffer.from('0123456789abcdefghij');
    const h = createHmac('sha1', salt).update('[hub]:2222').digest('base64');
    expect(patternsMatch(`|1|${salt.toString('base64')}|${h}`, '[hub]:2222')).toBe(true);
    expect(patternsMatch(`|1|${salt.toString('base64')}|${h}`, 'hub')).toBe(false);
  });

  it('gives ok, unknown, changed and revoked', () => {
    const text = `hub ${keyA}\n@cert-authority * ${keyB}\n`;
    expect(checkHostKey(text, 'hub', 22, blob(keyA))).toEqual({ verdict: 'ok', line: 1 });
    expect(checkHostKey(text, 'other', 22, blob(keyA))).toEqual({ verdict: 'unknown' });
    expect(checkHostKey(text, 'hub', 22, blob(keyB))).toEqual({ verdict: 'changed', known: [{ type: 'ssh-ed25519', fingerprint: fingerprintOf(blob(keyA)), line: 1 }] });
    expect(checkHostKey(`${text}@revoked hub ${keyA}\n`, 'hub', 22, blob(keyA))).toEqual({ verdict: 'revoked', line: 3 });
  });

  it('ignores garbage lines', () => {
    expect(checkHostKey('garbage\n\n# c\nhub ssh-ed25519\n', 'hub', 22, blob(keyA))).toEqual({ verdict: 'unknown' });
  });

  it('fingerprints like ssh-keygen -l', () => {
    expect(fingerprintOf(blob(keyA))).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});

describe('generateKeyPair', () => {
  it('always gives a pair that ssh2 parses and that belongs together', async () => {
    const { utils } = await import('ssh2');
    for (let i = 0; i < 1500; i++) {
      const k = generateKeyPair(`k${i}`);
      const priv = utils.parseKey(k.privateKey);
      const pub = utils.parseKey(k.publicKey);
      if (priv instanceof Error || pub instanceof Error) throw new Error(`pair ${i} does not parse`);
      expect((priv as { getPublicSSH(): Buffer }).getPublicSSH().equals((pub as { getPublicSSH(): Buffer }).getPublicSSH())).toBe(true);
    }
  });
});
