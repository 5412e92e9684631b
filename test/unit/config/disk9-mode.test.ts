// A configuration file every user may write is refused: it names the programs mailbag
// runs (delivery.sendmail, a peer's actions and command), as the spool's owner or as
// root, so one left 0666 (or 0646, or behind a link) let any local user run a program of
// theirs as them. The refusal is a ConfigError (4.3.5, exit 75: an MTA keeps the mail).
// Seen failing before the fix: the 0666 file loaded.

import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { loadConfig } from '../../../lib/config/index.js';
import { ConfigError } from '../../../lib/errors.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-disk9-mode-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function file(mode: number): string {
  const f = join(dir, `m${mode.toString(8)}.toml`);
  writeFileSync(f, `site = "home"\nspool = "${join(dir, 'spool')}"\n[delivery]\nsendmail = "/usr/sbin/sendmail"\n`);
  chmodSync(f, mode);
  return f;
}

function refusal(load: () => unknown): ConfigError {
  try {
    load();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('loaded');
}

it('refuses a file every user may write, by --config, $MAILBAG_CONFIG, the system file and through a link', () => {
  const open = file(0o666);
  const expected = `${open}: every user may write this file (mode 0666), and it names the programs mailbag runs (delivery.sendmail, actions, command): chmod o-w ${open}`;
  const e = refusal(() => loadConfig({ path: open, env: {} }));
  expect(e.message).toBe(expected);
  expect([e.exitCode, e.status]).toEqual([75, '4.3.5']);
  expect(refusal(() => loadConfig({ env: { MAILBAG_CONFIG: open } })).message).toBe(expected);
  expect(refusal(() => loadConfig({ env: {}, systemFile: open })).message).toBe(expected);
  const link = join(dir, 'link.toml');
  symlinkSync(open, link);
  expect(refusal(() => loadConfig({ path: link, env: {} })).message).toMatch(/every user may write this file \(mode 0666\)/);
  expect(refusal(() => loadConfig({ path: file(0o602), env: {} })).message).toMatch(/\(mode 0602\)/);
});

it('loads the modes a site uses: 0644, 0640, 0600, 0664 (a group of admins), and /dev/null (0666, no settings)', () => {
  const root = process.geteuid?.() === 0;
  for (const mode of root ? [0o644, 0o640, 0o600] : [0o644, 0o640, 0o600, 0o664]) {
    expect(loadConfig({ path: file(mode), env: {} }).site).toBe('home');
  }
  // as root a group-writable file is refused too (req-sec11 R6; sec11-root-config)
  if (root) expect(refusal(() => loadConfig({ path: file(0o664), env: {} })).message).toMatch(/its group or every user may write the configuration file \(mode 0664\)/);
  expect(loadConfig({ path: '/dev/null', env: {}, packageRoot: dir }).file).toBe('/dev/null');
});
