// The configuration file an admin names that cannot be read: one line that says why in
// words, and never the current directory read in its place.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
