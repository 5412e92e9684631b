// lib/spool/owner.ts's decision, and that only an armed process switches: a library
// caller (this test process, as root on another user's spool) never changes identity.
// The switch itself runs in real processes: test/integration/admin-spool-owner.test.ts.

import { afterEach, expect, it } from 'vitest';
import { chownSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../lib/config/index.js';
import { becomeSpoolOwner, ownerToBecome, spoolOwnerSwitchArmed } from '../../../lib/spool/owner.js';

const isRoot = process.getuid?.() === 0;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'mailbag-owner-'));
  dirs.push(d);
  return d;
}

it('root becomes the owner of a spool another uid owns; never for a root-owned one or one to be made in root\'s directory, never when not root', () => {
  const d = tmp();
  const spool = join(d, 'spool');
  writeFileSync(join(d, 'x'), '');
  expect(ownerToBecome(spool, 0)).toBeUndefined(); // not made yet, in root's directory: root makes it
  expect(ownerToBecome(d, 1234)).toBeUndefined(); // not root: cannot switch
  if (!isRoot) return;
  expect(ownerToBecome(d, 0)).toBeUndefined(); // root's own
  chownSync(d, 4321, 4322);
  expect(ownerToBecome(d, 0)).toEqual({ uid: 4321, gid: 4322 });
  expect(ownerToBecome(d, 4321)).toBeUndefined();
  // a symbolic link to the spool: its target's owner
  const link = join(tmp(), 'link');
  symlinkSync(d, link);
  expect(ownerToBecome(link, 0)).toEqual({ uid: 4321, gid: 4322 });
});

it.skipIf(!isRoot)('a spool not made yet: the owner of the nearest directory above it that exists, who would make it', () => {
  const d = tmp();
  // under root's directory: root makes it (docs/setup.md makes it first, as the account)
  expect(ownerToBecome(join(d, 'a', 'spool'), 0)).toBeUndefined();
  // under the account's directory (a spool in its home): made as the account, never as root
  chownSync(d, 4321, 4322);
  expect(ownerToBecome(join(d, 'spool'), 0)).toEqual({ uid: 4321, gid: 4322 });
  expect(ownerToBecome(join(d, 'a', 'b', 'spool'), 0)).toEqual({ uid: 4321, gid: 4322 });
  expect(ownerToBecome(join(d, 'a', 'spool'), 4321)).toBeUndefined();
});

it.skipIf(!isRoot)('a library caller as root on another user\'s spool stays root (only processIo() arms the switch)', () => {
  const d = tmp();
  chownSync(d, 4321, 4321);
  const toml = join(tmp(), 'm.toml'); // root's directory: R6 refuses a file in uid 4321's
  writeFileSync(toml, `site = "x"\nspool = ${JSON.stringify(d)}\n`);
  expect(spoolOwnerSwitchArmed()).toBe(false);
  expect(loadConfig({ path: toml, env: {} }).spool).toBe(d);
  expect(becomeSpoolOwner(d)).toBeUndefined();
  expect(process.geteuid!()).toBe(0);
  expect(process.getuid!()).toBe(0);
});
