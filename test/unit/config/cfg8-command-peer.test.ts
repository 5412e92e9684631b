// What a mail admin setting mailbag up on a new server gets wrong, and what the loader
// must say about it: one ConfigError naming the file and the key, never a value that
// is accepted and then does something else than the admin wrote.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../lib/errors.js';
import { parseConfig } from '../../../lib/config/index.js';

function errorOf(text: string, file = '/etc/x/m.toml'): ConfigError {
  try {
    parseConfig(text, file);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`no error for: ${text}`);
}

describe('keys of the built-in SSH client with transport = "command"', () => {
  // the command's argv is all that runs: an identity, port or known_hosts left from an
  // ssh peer was silently ignored, and ssh dialled port 22 with ~/.ssh's keys instead
  it.each([
    ['host = "hub.example.org"', 'host'],
    ['port = 2222', 'port'],
    ['user = "mb"', 'user'],
    ['identity = "/etc/mailbag/id_ed25519"', 'identity'],
    ['agent = true', 'agent'],
    ['known_hosts = "/etc/mailbag/known_hosts"', 'known_hosts'],
    ['remote_command = "mailbag serve --peer home"', 'remote_command'],
    ['connect_timeout = "10s"', 'connect_timeout'],
  ])('%s is refused, with what to do instead', (line, key) => {
    const e = errorOf(`[peers.hub]\ntransport = "command"\ncommand = ["ssh", "hub", "mailbag", "serve"]\n${line}\n`);
    expect(e.key).toBe(`peers.hub.${key}`);
    expect(e.message).toBe(`/etc/x/m.toml: peers.hub.${key}: is used only with transport = "ssh" (this peer has transport = "command": put it in the command's argv, or in ssh_config)`);
    expect(e.exitCode).toBe(75);
    // without transport, a command alone makes the transport "command" too
    expect(errorOf(`[peers.hub]\ncommand = ["ssh", "hub"]\n${line}\n`).key).toBe(`peers.hub.${key}`);
  });

  it('the keys every transport uses stay allowed', () => {
    const p = parseConfig('[peers.hub]\ncommand = ["ssh", "hub"]\nkeepalive = "5s"\npoll = "1h"\ncodec = "br"\naccept = ["rmail"]\ndomains = ["a.example"]\n', '/m.toml').peers.hub!;
    expect(p).toMatchObject({ transport: 'command', keepaliveMs: 5000, pollMs: 3_600_000, codec: 'br', accept: ['rmail'], domains: ['a.example'] });
  });
});
