// review9a L3: EACCES/EPERM of a file call were worded "not writable" also for a read (a
// root-owned 0600 job: "not writable: EACCES: permission denied, open …"); "not
// accessible" is true of both. EROFS stays "not writable". The class is unchanged: a
// SpoolError (temporary, 75).
import { expect, it } from 'vitest';
import { asMailbagError, SpoolError } from '../../lib/errors.js';

function fsError(code: string, syscall: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code, syscall });
}

it('a read refused (EACCES, EPERM) is "not accessible", a read-only file system "not writable"', () => {
  const read = asMailbagError(fsError('EACCES', 'open', "EACCES: permission denied, open '/s/in/hub/ID'"));
  expect(read).toBeInstanceOf(SpoolError);
  expect(read.message).toBe("not accessible: EACCES: permission denied, open '/s/in/hub/ID'");
  expect(asMailbagError(fsError('EPERM', 'unlink', 'EPERM: operation not permitted')).message).toBe('not accessible: EPERM: operation not permitted');
  expect(asMailbagError(fsError('EROFS', 'unlink', 'EROFS: read-only file system')).message).toBe('not writable: EROFS: read-only file system');
});
