// A path that starts with "~" is not expanded (no shell reads the file), and as a
// relative path it was taken relative to the file's directory: spool = "~/spool" in
// /etc/mailbag/mailbag.toml queued mail in /etc/mailbag/~/spool, known_hosts =
// "~/.ssh/known_hosts" (the form the docs give its default in) read a file that is not
// there. Refused, naming the key.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../lib/errors.js';
import { parseConfig } from '../../../lib/config/index.js';

describe('a path that starts with ~', () => {
  it.each([
    ['spool = "~/spool"', 'spool', '~/spool'],
    ['spool = "~mailbag/spool"', 'spool', '~mailbag/spool'],
    ['[delivery]\nsendmail = "~/bin/sendmail"', 'delivery.sendmail', '~/bin/sendmail'],
    ['[delivery]\nmethod = "lmtp"\nlmtp = "~/lmtp.sock"', 'delivery.lmtp', '~/lmtp.sock'],
    ['[lmtp]\nsocket = "~/lmtp.sock"', 'lmtp.socket', '~/lmtp.sock'],
    ['[peers.hub]\nidentity = "~/.ssh/id_ed25519"', 'peers.hub.identity', '~/.ssh/id_ed25519'],
    ['[peers.hub]\nknown_hosts = "~/.ssh/known_hosts"', 'peers.hub.known_hosts', '~/.ssh/known_hosts'],
  ])('%s is refused', (text, key, value) => {
    let caught: unknown;
    try {
      parseConfig(text, '/etc/mailbag/mailbag.toml');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const e = caught as ConfigError;
    expect(e.key).toBe(key);
    // and where it was read until now (beside the file; lmtp.socket under the spool), where
    // the jobs and ledger of a spool = "~/…" are
    const advice = `/etc/mailbag/mailbag.toml: ${key}: "${value}": "~" is not expanded here: write the whole path, like "/home/mailbag/${value.replace(/^~[^/]*\//, '')}" (until now it was read as `;
    expect(e.message.startsWith(advice), e.message).toBe(true);
    expect(e.message.slice(advice.length)).toBe(key === 'lmtp.socket' ? `${parseConfig('', '/etc/mailbag/mailbag.toml').spool}/${value})` : `/etc/mailbag/${value})`);
    expect(e.exitCode).toBe(75);
  });

  it('a name with ~ inside is an ordinary path', () => {
    expect(parseConfig('spool = "/srv/mail~old"\n', '/m.toml').spool).toBe('/srv/mail~old');
  });
});
