// `mailbag demo --dir DIR` removes DIR and makes it again: only an empty directory or
// one a demo made may go. An admin trying the demo next to a real spool
// (`--dir /var/spool/mailbag`), or an empty DIR (`--dir ""`, the current directory),
// must not lose a file to it.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../../lib/cli/demo.js';
import type { CliIo } from '../../../lib/cli/io.js';
import { MailbagError } from '../../../lib/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-cfg8-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function io(cwd: string): CliIo & { out: () => string } {
  const stdout = new PassThrough();
  let out = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  const stderr = new PassThrough();
  stderr.resume();
  return { stdin: new PassThrough(), stdout, stderr, env: { ...process.env, MAILBAG_CORPUS: join(dir, 'no-corpus') }, cwd, isTTY: false, out: () => out };
}

async function refusal(argv: string[], cwd: string): Promise<MailbagError> {
  let caught: unknown;
  try {
    await main(argv, io(cwd));
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(MailbagError);
  return caught as MailbagError;
}

describe('mailbag demo --dir', () => {
  it('refuses a directory that holds anything a demo did not make, and leaves it alone', async () => {
    const spool = join(dir, 'spool');
    mkdirSync(join(spool, 'out', 'hub'), { recursive: true });
    writeFileSync(join(spool, 'out', 'hub', 'job'), 'queued mail');
    const e = await refusal(['--dir', spool, '--down', '0', '--up', '0'], dir);
    expect(e.code).toBe('usage');
    expect(e.exitCode).toBe(75);
    expect(e.message).toBe(`${spool} holds out, which the demo did not make (it removes its directory and makes it again): name an empty or new directory with --dir (usage: mailbag demo [--down N] [--up N] [--dir DIR])`);
    expect(readFileSync(join(spool, 'out', 'hub', 'job'), 'utf8')).toBe('queued mail');
  });

  it('refuses a file, and leaves it alone', async () => {
    const f = join(dir, 'notes.txt');
    writeFileSync(f, 'mine');
    const e = await refusal(['--dir', f, '--down', '0', '--up', '0'], dir);
    expect(e.message).toMatch(/^\S+notes\.txt is not a directory: /);
    expect(readFileSync(f, 'utf8')).toBe('mine');
  });

  it.each([
    [['--dir', '', '--down', '0', '--up', '0']],
    [['--down', '0', '--up', '0', '--dir']],
  ])('%j names no directory: refused, the current one left alone', async (argv) => {
    const cwd = join(dir, 'cwd');
    mkdirSync(cwd, { recursive: true });
    writeFileSync(join(cwd, 'mine'), 'x');
    const e = await refusal(argv, cwd);
    expect(e.code).toBe('usage');
    expect(e.message).toMatch(/^--dir needs a DIR/);
    expect(existsSync(join(cwd, 'mine'))).toBe(true);
  });

  it('takes a new directory, and the same one again after a demo ran in it', async () => {
    const d = join(dir, 'demo');
    for (let run = 0; run < 2; run++) {
      const o = io(dir);
      expect(await main(['--dir', d, '--down', '3', '--up', '2'], o), o.out()).toBe(0);
      expect(o.out()).toMatch(/every message crossed exactly once/);
    }
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const o = io(dir);
    expect(await main(['--dir', empty, '--down', '1', '--up', '1'], o), o.out()).toBe(0);
  }, 60_000);
});
