// asMailbagError: a raw error of a call on a file (a read-only file system, one we may
// not write, a failing disk, no descriptors left) is a SpoolError (exit 75, 4.3.0) in
// words, not an "unexpected error" a caller counts as an ordinary retry; a socket's or a
// child's error with the same errno is not (test/fault/disk9-readonly-run for the run).

import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { expect, it } from 'vitest';
import { asMailbagError, SpoolError } from '../../../lib/errors.js';

function errno(code: string, syscall: string, message = `${code}: x, ${syscall} '/p'`): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code, syscall, errno: -1 });
}

it('file-system errnos of file calls become SpoolErrors in words; the same errno of a socket or a spawn does not', () => {
  const ro = asMailbagError(errno('EROFS', 'unlink', "EROFS: read-only file system, unlink '/s/in/hub/ID'"));
  expect(ro).toBeInstanceOf(SpoolError);
  expect([ro.code, ro.status, ro.exitCode]).toEqual(['spool', '4.3.0', 75]);
  expect(ro.message).toBe("not writable: EROFS: read-only file system, unlink '/s/in/hub/ID'");
  expect(asMailbagError(errno('EIO', 'fsync')).message).toMatch(/^disk error: /);
  expect(asMailbagError(errno('EMFILE', 'open')).message).toMatch(/^out of file descriptors: /);
  expect(asMailbagError(errno('EACCES', 'mkdir')).code).toBe('spool');
  expect(asMailbagError(errno('ENOSPC', 'write')).code).toBe('spool-full');
  // not a file: left as they were
  expect(asMailbagError(errno('EACCES', 'connect')).code).toBe('internal');
  expect(asMailbagError(errno('EACCES', 'spawn /usr/sbin/sendmail')).code).toBe('internal');
  expect(asMailbagError(new Error('boom')).message).toBe('unexpected error: boom');
});

it('real errors that are none of them stay internal: ENOENT of mkdir, EACCES of spawning a directory', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailbag-disk9-errors-'));
  try {
    const real = await mkdir(join(dir, 'no', 'such', 'parent')).catch((e: unknown) => e);
    expect(asMailbagError(real).code).toBe('internal'); // ENOENT: not one of them
    const spawned = await new Promise<unknown>((res) => spawn(dir).on('error', res));
    expect(asMailbagError(spawned).code).toBe('internal');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
