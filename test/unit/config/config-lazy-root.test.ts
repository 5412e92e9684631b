// The package root (where the default spool lives) is found only when the spool is not
// set. Finding it makes the module's URL and turns it into a path (in the front-door
// bundles, pathToFileURL and fileURLToPath: about 2M instructions of each message's
// process), and a configuration that names its spool, as every MTA's does, never needs it.
// 7a6bfc1 found it on every load; bench/README.md "enqueue" (the session-7 rise).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as url from 'node:url';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';

vi.mock('node:url', async (importOriginal) => {
  const real = await importOriginal<typeof url>();
  return { ...real, fileURLToPath: vi.fn(real.fileURLToPath) };
});

const { defaultConfig, loadConfig, packageRoot, parseConfig } = await import('../../../lib/config/index.js');
const fileURLToPath = vi.mocked(url.fileURLToPath);

const dir = mkdtempSync(join(tmpdir(), 'mailbag-lazy-root-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const WITH_SPOOL = 'site = "home"\nspool = "/var/spool/mailbag"\n\n[peers.hub]\nhost = "hub.example.org"\n';
const WITHOUT_SPOOL = 'site = "home"\n\n[peers.hub]\nhost = "hub.example.org"\n';

describe('the package root', () => {
  beforeEach(() => {
    fileURLToPath.mockClear();
  });

  it('is not looked for when the configuration file names the spool', () => {
    const file = join(dir, 'mailbag.toml');
    writeFileSync(file, WITH_SPOOL);
    expect(loadConfig({ env: { MAILBAG_CONFIG: file } }).spool).toBe('/var/spool/mailbag');
    expect(loadConfig({ path: file, env: {} }).spool).toBe('/var/spool/mailbag');
    expect(parseConfig(WITH_SPOOL, file).spool).toBe('/var/spool/mailbag');
    expect(fileURLToPath).not.toHaveBeenCalled();
  });

  it('is looked for when the spool is not set: the default spool is the checkout\'s', () => {
    const file = join(dir, 'no-spool.toml');
    writeFileSync(file, WITHOUT_SPOOL);
    const root = packageRoot();
    fileURLToPath.mockClear();
    expect(loadConfig({ path: file, env: {} }).spool).toBe(join(root, 'spool'));
    expect(fileURLToPath).toHaveBeenCalledTimes(1);
    expect(parseConfig(WITHOUT_SPOOL, file).spool).toBe(join(root, 'spool'));
    expect(defaultConfig().spool).toBe(join(root, 'spool'));
    expect(fileURLToPath).toHaveBeenCalledTimes(3);
  });

  it('given by the caller is used, and not looked for', () => {
    const file = join(dir, 'no-spool.toml');
    writeFileSync(file, WITHOUT_SPOOL);
    expect(loadConfig({ path: file, env: {}, packageRoot: '/opt/mailbag' }).spool).toBe('/opt/mailbag/spool');
    expect(parseConfig(WITHOUT_SPOOL, file, '/opt/mailbag').spool).toBe('/opt/mailbag/spool');
    expect(() => parseConfig(WITHOUT_SPOOL, file, '/usr/lib/node_modules/mailbag').spool).toThrow(
      /default \(\/usr\/lib\/node_modules\/mailbag\/spool\) lies inside the installed package/,
    );
    expect(fileURLToPath).not.toHaveBeenCalled();
  });
});
