// A spool is made only in a new or empty directory. `spool = "/var"` (or "/", or a home
// directory: a typo, a missing last component) used to be made into a spool in place:
// its mode set to 0700 (every other user locked out of it) and its tmp/ emptied of every
// file not written to for a day, by the cleanup of dead writers' leftovers. Seen failing
// before the fix: the front door exited 0, thesis.tex was gone and the mode was 0700.

import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { SpoolError } from '../../../lib/errors.js';
import { Spool } from '../../../lib/spool/index.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-disk9-unused-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** a directory that looks like /var: a tmp/ with a file two days old, and more */
function lived(): string {
  const root = join(dir, 'var');
  mkdirSync(join(root, 'tmp'), { recursive: true });
  mkdirSync(join(root, 'log'));
  const file = join(root, 'tmp', 'thesis.tex');
  writeFileSync(file, 'precious');
  const old = new Date(Date.now() - 2 * 86_400_000);
  utimesSync(file, old, old);
  chmodSync(root, 0o755);
  return root;
}

it('refuses to make a spool in a directory that holds other files, and touches nothing there', async () => {
  const root = lived();
  for (const open of [() => Spool.open(root, { create: true }), () => Spool.openForQueue(root, 'out', 'hub', { create: true })]) {
    const err = await open().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpoolError);
    expect((err as SpoolError).exitCode).toBe(75);
    expect((err as Error).message).toMatch(/is not a mailbag spool \(no mailbag-spool file\) and is not empty \(it holds log, tmp\): a spool is made only in a new or empty directory/);
  }
  expect(readFileSync(join(root, 'tmp', 'thesis.tex'), 'utf8')).toBe('precious');
  expect(statSync(root).mode & 0o777).toBe(0o755);
  expect(existsSync(join(root, 'mailbag-spool'))).toBe(false);
  expect(existsSync(join(root, 'out'))).toBe(false);
});

it('makes a spool in an empty directory, at the root of a file system (lost+found), and after a making cut short', async () => {
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  await Spool.open(empty, { create: true });
  expect(readFileSync(join(empty, 'mailbag-spool'), 'utf8')).toBe('mailbag-spool 1\n');

  const fsRoot = join(dir, 'fsroot');
  mkdirSync(join(fsRoot, 'lost+found'), { recursive: true });
  await Spool.openForQueue(fsRoot, 'out', 'hub', { create: true });
  expect(existsSync(join(fsRoot, 'out', 'hub'))).toBe(true);

  // a making killed while it wrote the marker leaves tmp/ and the marker's tmp file
  const cut = join(dir, 'cut');
  mkdirSync(join(cut, 'tmp'), { recursive: true });
  writeFileSync(join(cut, 'tmp', '999999999.1.0a1b2c3d.marker'), 'mailbag-sp');
  await Spool.open(cut, { create: true });
  expect(readFileSync(join(cut, 'mailbag-spool'), 'utf8')).toBe('mailbag-spool 1\n');
  expect(existsSync(join(cut, 'tmp', '999999999.1.0a1b2c3d.marker'))).toBe(false);
});

it("makes the checkout's own spool/, which ships with a README.md", async () => {
  const root = join(dir, 'spool');
  mkdirSync(root);
  writeFileSync(join(root, 'README.md'), 'The default spool of a checkout.\n');
  await Spool.open(root, { create: true });
  expect(readFileSync(join(root, 'README.md'), 'utf8')).toBe('The default spool of a checkout.\n');
  expect(existsSync(join(root, 'mailbag-spool'))).toBe(true);
});

it('refuses a spool directory every user may write (the root, or one below it), naming it and the mode', async () => {
  const root = join(dir, 'open');
  await Spool.open(root, { create: true });
  chmodSync(root, 0o1777);
  const err = await Spool.open(root).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(SpoolError);
  expect((err as SpoolError).exitCode).toBe(75);
  expect((err as Error).message).toBe(`spool: every user may write ${root} (mode 01777), and so replace the spool's files: chmod 0700 ${root} (docs/spool.md, Permissions)`);
  chmodSync(root, 0o700);
  chmodSync(join(root, 'tmp'), 0o777);
  await expect(Spool.open(root)).rejects.toThrow(`spool: every user may write ${join(root, 'tmp')} (mode 0777)`);
  chmodSync(join(root, 'tmp'), 0o700);
  const spool = await Spool.open(root, { create: true });
  await spool.ensureDir('out', 'hub');
  chmodSync(spool.path('out', 'hub'), 0o757);
  await expect(Spool.open(root)).rejects.toThrow(`every user may write ${spool.path('out', 'hub')} (mode 0757)`);
  // a group may read and search (a site's choice, e.g. for a socket inside) but not write (sec11's R2);
  // a fresh spool in a 0777 directory is made 0700
  chmodSync(spool.path('out', 'hub'), 0o770);
  await expect(Spool.open(root)).rejects.toThrow(`may write ${spool.path('out', 'hub')} (mode 0770)`);
  chmodSync(spool.path('out', 'hub'), 0o750);
  await Spool.open(root);
  const fresh = join(dir, 'fresh');
  mkdirSync(fresh, { mode: 0o777 });
  chmodSync(fresh, 0o777);
  await Spool.open(fresh, { create: true });
  expect(statSync(fresh).mode & 0o777).toBe(0o700);
});
