// peers.NAME.host is a host name or an address, never host:port: a host name holds no
// colon, so one with a colon must be an IPv6 address. "hub.example.org:2222" was taken
// and every session failed with 'getaddrinfo ENOTFOUND hub.example.org:2222' (exit 75,
// retried until the queue lifetime bounced the mail).
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../lib/errors.js';
import { parseConfig } from '../../../lib/config/index.js';

function hostError(host: string): ConfigError {
  try {
    parseConfig(`[peers.hub]\nhost = ${JSON.stringify(host)}\n`, '/etc/x/m.toml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`no error for host = "${host}"`);
}

describe('peers.NAME.host', () => {
  it.each([
    ['hub.example.org:2222', 'write the port as port = 2222'],
    ['192.0.2.7:22', 'write the port as port = 22'],
    ['[::1]:2222', 'write the port as port = 2222'],
    ['[::1]', 'write an IPv6 address without brackets'],
    ['hub:', 'a host name holds no colon'],
  ])('"%s" is refused: %s', (host, advice) => {
    const e = hostError(host);
    expect(e.key).toBe('peers.hub.host');
    expect(e.message).toContain(`/etc/x/m.toml: peers.hub.host: "${host}" is not a host name or address: ${advice}`);
    expect(e.exitCode).toBe(75);
  });

  it.each(['hub.example.org', 'localhost', '192.0.2.7', '::1', '2001:db8::7', 'fe80::1%eth0'])('"%s" is taken', (host) => {
    expect(parseConfig(`[peers.hub]\nhost = ${JSON.stringify(host)}\n`, '/m.toml').peers.hub!.host).toBe(host);
  });
});
