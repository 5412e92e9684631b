// Two front doors on a spool not made yet (a fresh install, the MTA delivering two
// messages in parallel): one read no marker, the other made the spool, then the first
// looked inside to check the directory was unused, found the other's marker and refused
// with 75 ("is not empty (it holds mailbag-spool)"). Seen in CI (stop 16) in
// corpus-roundtrip's four parallel `mailbag enqueue`s. The window lies between two system
// calls, so the other process's making is put into it here: the first read of the marker
// answers ENOENT and the marker (and the directories made after it) appear right then.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const race = vi.hoisted(() => ({ root: undefined as string | undefined, made: ['mailbag-spool'] as string[], marker: 'mailbag-spool 1\n' }));
vi.mock('node:fs', async (orig) => {
  const real = await orig<typeof import('node:fs')>();
  const readFileSync = ((path: unknown, ...rest: unknown[]) => {
    const root = race.root;
    if (root !== undefined && path === real.realpathSync(root) + '/mailbag-spool') {
      race.root = undefined;
      // the other process, between our read and our look inside
      for (const name of race.made) {
        if (name === 'mailbag-spool') real.writeFileSync(path, race.marker, { mode: 0o600 });
        else real.mkdirSync(`${root}/${name}`, { recursive: true, mode: 0o700 });
      }
      throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT', errno: -2, syscall: 'open', path });
    }
    return (real.readFileSync as (...a: unknown[]) => unknown)(path, ...rest);
  }) as typeof real.readFileSync;
  return { ...real, readFileSync };
});

const { Spool } = await import('../../../lib/spool/index.js');
const { SpoolError } = await import('../../../lib/errors.js');
const { newJobId } = await import('../../../lib/job/index.js');

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-fresh-race-'));
  race.made = ['mailbag-spool'];
  race.marker = 'mailbag-spool 1\n';
});
afterEach(() => {
  race.root = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe('a spool made by another process while this one makes it', () => {
  it.each([
    ['Spool.open', (root: string) => Spool.open(root, { create: true })],
    ['Spool.openForQueue (the front doors)', (root: string) => Spool.openForQueue(root, 'out', 'hub', { create: true })],
  ])('%s: the marker alone, and the marker with the directories made after it', async (_name, open) => {
    for (const made of [['mailbag-spool'], ['mailbag-spool', 'tmp', 'out', 'out/hub', 'in']]) {
      const root = join(dir, `spool-${made.length}`);
      mkdirSync(root, { mode: 0o700 });
      race.made = made;
      race.root = root;
      const spool = await open(root);
      expect(race.root, 'the race was not staged: the marker was never read').toBeUndefined();
      expect(spool.root).toBe(root);
      expect(readFileSync(join(root, 'mailbag-spool'), 'utf8')).toBe('mailbag-spool 1\n');
      await spool.writeJob('out', 'hub', { id: newJobId(), from: 'home', to: 'hub', created: new Date().toISOString(), command: 'rmail', args: ['a@x.test'], sender: 's@y.test', recipients: ['a@x.test'] }, Buffer.from('Subject: race\n\nbody\n'));
      expect(readdirSync(join(root, 'out', 'hub'))).toHaveLength(1);
    }
  });

  it('a directory that holds other files is still refused, and so is a foreign marker that appeared', async () => {
    const root = join(dir, 'var');
    mkdirSync(join(root, 'log'), { recursive: true });
    writeFileSync(join(root, 'notes'), 'mine');
    // nobody made a spool: the look inside refuses as before
    race.made = [];
    race.root = root;
    let err = await Spool.open(root, { create: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpoolError);
    expect((err as Error).message).toMatch(/is not a mailbag spool \(no mailbag-spool file\) and is not empty \(it holds log, notes\)/);
    // something wrote a marker of another format meanwhile: its version is refused by name
    race.made = ['mailbag-spool'];
    race.marker = 'mailbag-spool 7\n';
    race.root = root;
    err = await Spool.open(root, { create: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpoolError);
    expect((err as Error).message).toMatch(/spool format version 7 is not supported/);
    expect(readFileSync(join(root, 'notes'), 'utf8')).toBe('mine');
  });
});
