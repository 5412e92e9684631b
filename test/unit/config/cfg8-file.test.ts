// The configuration file an admin names that cannot be read: one line that says why in
// words, and never the current directory read in its place.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../lib/errors.js';
import { loadConfig } from '../../../lib/config/index.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-cfg8-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the file named', () => {
  it('--config "" is refused, not read as the current directory', () => {
    let caught: unknown;
    try {
      loadConfig({ path: '', cwd: dir, env: {}, systemFile: join(dir, 'none.toml') });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).exitCode).toBe(75);
    expect((caught as ConfigError).message).toBe('--config names no file: give the path of the configuration file');
  });

  it('a directory in the file\'s place says so in words', () => {
    const d = join(dir, 'conf.d');
    mkdirSync(d);
    expect(() => loadConfig({ path: d, env: {} })).toThrow(`${d}: cannot read the configuration file: it is a directory`);
    expect(() => loadConfig({ env: { MAILBAG_CONFIG: d } })).toThrow(`${d}: cannot read the configuration file: it is a directory`);
  });

  it('a path through a file says so in words', () => {
    const f = join(dir, 'plain');
    writeFileSync(f, 'x');
    expect(() => loadConfig({ path: join(f, 'mailbag.toml'), env: {} })).toThrow(`${join(f, 'mailbag.toml')}: cannot read the configuration file: a part of the path is not a directory`);
  });
});

describe('the system file as a dangling symbolic link', () => {
  // /etc/mailbag/mailbag.toml -> /srv/conf/mailbag.toml with /srv not mounted (or the
  // target misspelt) was read as "no file": the built-in defaults, no peers, and for an
  // installed package "spool: not set … set spool in /etc/mailbag/mailbag.toml"
  it('is an error that names the link and its target, not the built-in defaults', () => {
    const link = join(dir, 'system-link.toml');
    const target = join(dir, 'not-mounted', 'mailbag.toml');
    symlinkSync(target, link);
    let caught: unknown;
    try {
      loadConfig({ env: {}, systemFile: link });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).message).toBe(`${link}: cannot read the configuration file: it is a symbolic link to ${target}, which does not exist`);
    expect((caught as ConfigError).exitCode).toBe(75);
  });

  it('a system file that is not there at all still means the built-in defaults', () => {
    expect(loadConfig({ env: {}, systemFile: join(dir, 'no-such-dir', 'mailbag.toml') }).file).toBeUndefined();
  });
});
