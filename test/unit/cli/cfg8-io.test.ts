// processIo() in a process whose current directory has been removed (a shell left in a
// deleted directory, a cron job's or an MTA's home gone): process.cwd() throws ENOENT
// there, and processIo() called it before anything could catch it, so every command —
// enqueue, mailbag-uux and rmail included — died with node's stack trace and exit 1,
// which Postfix and Exim bounce. The directory is now taken from $PWD (or / without it):
// an absolute --config works, a relative one names a file that is not there.
import { mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { processIo } from '../../../lib/cli/io.js';

function inRemovedDirectory<T>(f: (gone: string) => T): T {
  const back = process.cwd();
  const pwd = process.env.PWD;
  const gone = mkdtempSync(join(tmpdir(), 'mailbag-cfg8-gone-'));
  process.chdir(gone);
  rmdirSync(gone);
  try {
    expect(() => process.cwd()).toThrow(/ENOENT/);
    return f(gone);
  } finally {
    process.chdir(back);
    if (pwd === undefined) delete process.env.PWD;
    else process.env.PWD = pwd;
  }
}

describe('processIo with the current directory removed', () => {
  it('does not throw; cwd is $PWD, the directory that was there', () => {
    inRemovedDirectory((gone) => {
      process.env.PWD = gone;
      expect(processIo().cwd).toBe(gone);
    });
  });

  it('without an absolute $PWD, cwd is /', () => {
    inRemovedDirectory(() => {
      delete process.env.PWD;
      expect(processIo().cwd).toBe('/');
      process.env.PWD = 'relative/dir';
      expect(processIo().cwd).toBe('/');
    });
  });

  it('with the directory there, cwd is process.cwd() whatever $PWD says', () => {
    const pwd = process.env.PWD;
    try {
      process.env.PWD = '/somewhere/else';
      expect(processIo().cwd).toBe(process.cwd());
    } finally {
      if (pwd === undefined) delete process.env.PWD;
      else process.env.PWD = pwd;
    }
  });
});
