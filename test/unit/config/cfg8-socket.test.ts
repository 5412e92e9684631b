// A unix socket's path holds at most 108 bytes (sun_path on Linux). Node truncates a
// longer one without a word: lmtpd said it listened on lmtp.socket while its socket was
// made under a shorter name, so the MTA's LMTP client (given the whole path) found
// nothing, and a delivery.lmtp that long connected to a name nobody listens on. The
// default lmtp.socket is under the spool, so a deep spool was enough. Refused at load.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../lib/errors.js';
import { parseConfig } from '../../../lib/config/index.js';
import { errorOf as refusal } from './error-of.js';


const deep = `/srv/${'d'.repeat(100)}`; // deep/lmtp.sock is 115 bytes

describe('unix socket paths', () => {
  it('the default lmtp.socket under a deep spool is refused where it is used (lmtpd), naming the key and the length', () => {
    // every other command loads as before: enqueue must not fail for a socket it never opens
    const c = parseConfig(`spool = "${deep}"\n[peers.hub]\n`, '/etc/x/m.toml');
    expect(c.spool).toBe(deep);
    expect(Object.keys(c.peers)).toEqual(['hub']);
    let caught: unknown;
    try {
      void c.lmtp.socket;
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const e = caught as ConfigError;
    expect(e.key).toBe('lmtp.socket');
    expect(e.message).toBe(`/etc/x/m.toml: lmtp.socket: ${deep}/lmtp.sock is 115 bytes, and a unix socket's path holds at most 108: set lmtp.socket to a shorter absolute path`);
    expect(e.exitCode).toBe(75);
  });

  it('an lmtp.socket or delivery.lmtp over 108 bytes is refused', () => {
    // lmtp.socket where it is read (lmtpd): a file that loaded before keeps enqueue and serve going
    const c = parseConfig(`[lmtp]\nsocket = "/run/${'s'.repeat(104)}"\n`, '/etc/x/m.toml');
    let e: unknown;
    try {
      void c.lmtp.socket;
    } catch (err) {
      e = err;
    }
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).key).toBe('lmtp.socket');
    expect(refusal(`[delivery]\nmethod = "lmtp"\nlmtp = "/run/${'s'.repeat(104)}"\n`).key).toBe('delivery.lmtp');
    expect(refusal(`[delivery]\nlmtp = "/run/${'é'.repeat(52)}"\n`).message).toMatch(/is 109 bytes/);
  });

  it('108 bytes are taken; a deep spool with a short absolute socket is fine', () => {
    const at108 = `/run/${'s'.repeat(103)}`;
    expect(parseConfig(`[lmtp]\nsocket = "${at108}"\n[delivery]\nlmtp = "${at108}"\n`, '/m.toml').lmtp.socket).toBe(at108);
    expect(parseConfig(`spool = "${deep}"\n[lmtp]\nsocket = "/run/mailbag/lmtp.sock"\n`, '/m.toml').lmtp.socket).toBe('/run/mailbag/lmtp.sock');
  });
});
