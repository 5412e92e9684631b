// req-audit #2: the default spool of an installed package (a `node_modules` component in
// its path) lies inside the package, which `npm install -g` replaces on upgrade with every
// job in it. There `spool` must be set: asking for the spool is a ConfigError (exit 75,
// 4.3.5: an MTA defers), while what never opens a spool (rmail) still works. A checkout
// keeps its spool/ (README's npm start demo, a fresh clone's tests).

import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { ConfigError } from '../../../lib/errors.js';
import { defaultConfig, defaultSpool, loadConfig, packageRoot, parseConfig } from '../../../lib/config/index.js';

const INSTALLED = '/usr/local/lib/node_modules/mailbag';
const NO_SYSTEM_FILE = '/nonexistent/mailbag.toml';

function configError(f: () => unknown): ConfigError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('no error');
}

describe('the default spool', () => {
  it('is spool/ of a checkout, none for an installed package', () => {
    expect(defaultSpool('/work/main')).toBe('/work/main/spool');
    expect(defaultSpool(packageRoot())).toBe(join(packageRoot(), 'spool'));
    expect(defaultSpool(INSTALLED)).toBeUndefined();
    expect(defaultSpool('/home/u/project/node_modules/mailbag')).toBeUndefined();
    // a name that merely contains the word is not an installed package
    expect(defaultSpool('/srv/node_modules-old/mailbag')).toBe('/srv/node_modules-old/mailbag/spool');
  });

  it('of an installed package without `spool`: asking for it is a ConfigError that defers (75, 4.3.5) and says what to set', () => {
    for (const c of [
      defaultConfig(INSTALLED),
      loadConfig({ env: {}, systemFile: NO_SYSTEM_FILE, packageRoot: INSTALLED }),
      parseConfig('site = "home"\n[peers.hub]\nhost = "hub.example.org"\n', '/etc/mailbag/mailbag.toml', INSTALLED),
    ]) {
      const e = configError(() => c.spool);
      expect(e.exitCode).toBe(75);
      expect(e.status).toBe('4.3.5');
      expect(e.message).toContain(`${INSTALLED}/spool`);
      expect(e.message).toContain('npm install -g');
      expect(e.message).toMatch(/set spool = "\/var\/spool\/mailbag"/);
      expect(e.message).toContain('spool');
      // lmtp.socket is relative to the spool by default: the same error
      expect(configError(() => c.lmtp.socket).message).toBe(e.message);
      // the rest of the configuration is there (rmail needs only delivery)
      expect(c.delivery.sendmail).toBe('/usr/sbin/sendmail');
    }
    const withPeer = parseConfig('site = "home"\n[peers.hub]\nhost = "hub.example.org"\n', '/etc/mailbag/mailbag.toml', INSTALLED);
    expect(withPeer.peers.hub?.host).toBe('hub.example.org');
    expect(configError(() => withPeer.spool).message).toContain('/etc/mailbag/mailbag.toml');
  });

  it('of an installed package: a `spool` set is used, and an absolute lmtp.socket needs no spool', () => {
    const c = parseConfig('spool = "/var/spool/mailbag"\n', '/etc/mailbag/mailbag.toml', INSTALLED);
    expect(c.spool).toBe('/var/spool/mailbag');
    expect(c.lmtp.socket).toBe('/var/spool/mailbag/lmtp.sock');
    const s = parseConfig('[lmtp]\nsocket = "/run/mailbag/lmtp.sock"\n', '/etc/mailbag/mailbag.toml', INSTALLED);
    expect(s.lmtp.socket).toBe('/run/mailbag/lmtp.sock');
    expect(() => s.spool).toThrow(ConfigError);
    const r = parseConfig('[lmtp]\nsocket = "lmtp.sock"\n', '/etc/mailbag/mailbag.toml', INSTALLED);
    expect(() => r.lmtp.socket).toThrow(ConfigError);
  });

  it('of a checkout is unchanged', () => {
    const c = loadConfig({ env: {}, systemFile: NO_SYSTEM_FILE });
    expect(c.spool).toBe(join(packageRoot(), 'spool'));
    expect(c.lmtp.socket).toBe(join(packageRoot(), 'spool', 'lmtp.sock'));
  });
});
