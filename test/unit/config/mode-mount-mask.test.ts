// A configuration file every user may write is refused (disk9). On vfat, exfat or CIFS the
// modes come from the mount options and chmod changes nothing, so the refusal says which
// mount mask to use there instead of "chmod o-w", which the admin would follow in vain.
// No vfat can be made on the test machine: statfs's answer is replaced for the first case.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const fake = vi.hoisted(() => ({ type: undefined as number | undefined }));
vi.mock('node:fs', async (orig) => {
  const real = await orig<typeof import('node:fs')>();
  return {
    ...real,
    statfsSync: ((p: string) => (fake.type === undefined ? real.statfsSync(p) : { ...real.statfsSync(p), type: fake.type })) as typeof real.statfsSync,
  };
});

const { loadConfig } = await import('../../../lib/config/index.js');
const { ConfigError } = await import('../../../lib/errors.js');

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-mode-mask-'));
  file = join(dir, 'mailbag.toml');
  writeFileSync(file, 'site = "home"\n');
  chmodSync(file, 0o666);
});
afterEach(() => {
  fake.type = undefined;
  rmSync(dir, { recursive: true, force: true });
});

function refusal(): InstanceType<typeof ConfigError> {
  try {
    loadConfig({ path: file, env: {} });
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('an o+w configuration file was loaded');
}

describe('an o+w configuration file', () => {
  it('on vfat: the refusal names the mount mask, not chmod', () => {
    fake.type = 0x4d44;
    const e = refusal();
    expect(e.message).toContain('every user may write this file (mode 0666)');
    expect(e.message).toContain('this file system (vfat) has no per-file modes');
    expect(e.message).toContain('fmask=0022');
    expect(e.message).not.toContain('chmod o-w');
  });

  it('on CIFS: file_mode', () => {
    fake.type = 0xff534d42;
    expect(refusal().message).toContain('(cifs) has no per-file modes, so chmod cannot change it: mount it with a mask that takes o+w away (file_mode=0644)');
  });

  it('on a file system with modes (the real statfs): chmod o-w FILE', () => {
    expect(refusal().message).toMatch(new RegExp(`chmod o-w ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  });
});
