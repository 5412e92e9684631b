// What a mail admin setting mailbag up on a new server gets wrong, and what the loader
// must say about it: one ConfigError naming the file and the key, never a value that
// is accepted and then does something else than the admin wrote.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../lib/config/index.js';

describe('keys of the built-in SSH client with transport = "command"', () => {
  // the command's argv is all that runs: an identity, port or known_hosts left from an
  // ssh peer is not used (ssh dials port 22 with ~/.ssh's keys). Refusing it at load
  // stopped every front door on upgrade (review8a); the file loads and sync/dispatch say it
  it.each([
    ['host = "hub.example.org"', 'host'],
    ['port = 2222', 'port'],
    ['user = "mb"', 'user'],
    ['identity = "/etc/mailbag/id_ed25519"', 'identity'],
    ['agent = true', 'agent'],
    ['known_hosts = "/etc/mailbag/known_hosts"', 'known_hosts'],
    ['remote_command = "mailbag serve --peer home"', 'remote_command'],
    ['connect_timeout = "10s"', 'connect_timeout'],
  ])('%s is taken and recorded as not used', (line, key) => {
    const p = parseConfig(`[peers.hub]\ntransport = "command"\ncommand = ["ssh", "hub", "mailbag", "serve"]\n${line}\n`, '/etc/x/m.toml').peers.hub!;
    expect(p.unusedKeys).toEqual([key]);
    // without transport, a command alone makes the transport "command" too
    expect(parseConfig(`[peers.hub]\ncommand = ["ssh", "hub"]\n${line}\n`, '/etc/x/m.toml').peers.hub!.unusedKeys).toEqual([key]);
    // with the ssh transport they are used
    expect(parseConfig(`[peers.hub]\n${key === 'host' ? '' : 'host = "h"\n'}${line}\n`, '/etc/x/m.toml').peers.hub!.unusedKeys).toBeUndefined();
  });

  it('the keys every transport uses stay allowed and are not listed', () => {
    const p = parseConfig('[peers.hub]\ncommand = ["ssh", "hub"]\nkeepalive = "5s"\npoll = "1h"\ncodec = "br"\naccept = ["rmail"]\ndomains = ["a.example"]\n', '/m.toml').peers.hub!;
    expect(p).toMatchObject({ transport: 'command', keepaliveMs: 5000, pollMs: 3_600_000, codec: 'br', accept: ['rmail'], domains: ['a.example'] });
    expect(p.unusedKeys).toBeUndefined();
  });
});
