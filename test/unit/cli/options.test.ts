// The command line sync, dispatch, failed, retry and rsmtp share (lib/cli/options.ts):
// the same words for the same mistakes, whichever command makes them; a usage error
// is thrown before any configuration is read.
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseCommonArgs } from '../../../lib/cli/options.js';
import type { CliIo } from '../../../lib/cli/io.js';
import { MailbagError } from '../../../lib/errors.js';
import { main as syncMain } from '../../../lib/cli/sync.js';
import { main as dispatchMain } from '../../../lib/cli/dispatch.js';
import { main as failedMain } from '../../../lib/cli/failed.js';
import { main as retryMain } from '../../../lib/cli/retry.js';
import { main as rsmtpMain } from '../../../lib/cli/rsmtp.js';

const spec = { command: 'mailbag x', usage: 'usage: mailbag x [--config FILE] [--quiet] [WORD]', flags: { '--quiet': 'quiet', '-q': 'quiet' }, words: 1 };

describe('parseCommonArgs', () => {
  it('takes --config FILE and --config=FILE, flags by their canonical name, and words in order', () => {
    expect(parseCommonArgs(['--config', '/etc/m.toml', '-q', 'hub'], spec)).toEqual({ config: '/etc/m.toml', help: false, flags: new Set(['quiet']), words: ['hub'] });
    expect(parseCommonArgs(['hub', '--config=/x.toml', '--quiet'], spec)).toEqual({ config: '/x.toml', help: false, flags: new Set(['quiet']), words: ['hub'] });
    expect(parseCommonArgs(['-h'], spec).help).toBe(true);
    expect(parseCommonArgs(['-bS', '-oi'], { command: 'rsmtp', usage: 'u', ignore: ['-bS', '-i', '-oi'] }).words).toEqual([]);
  });

  it.each([
    [['--config'], 'mailbag x: --config needs a FILE'],
    [['--config='], 'mailbag x: --config needs a FILE'],
    [['--bogus'], 'mailbag x: unknown option "--bogus"'],
    [['hub', 'other'], 'mailbag x: unexpected argument "other"'],
  ])('refuses %j as a usage error naming the command and its usage', (argv, text) => {
    let caught: unknown;
    try {
      parseCommonArgs(argv, spec);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(MailbagError);
    expect((caught as MailbagError).code).toBe('usage');
    expect((caught as MailbagError).message).toBe(`${text} (${spec.usage})`);
  });
});

function io(): CliIo & { out: () => string } {
  const stdout = new PassThrough();
  const chunks: Buffer[] = [];
  stdout.on('data', (c: Buffer) => chunks.push(c));
  // MAILBAG_CONFIG names a file that does not exist: a command that got as far as reading its configuration fails differently
  return { stdin: Readable.from([]), stdout, stderr: new PassThrough(), env: { MAILBAG_CONFIG: '/nonexistent/mailbag.toml' }, cwd: '/', isTTY: false, out: () => Buffer.concat(chunks).toString() };
}

describe('the commands that share it', () => {
  const commands = [
    ['mailbag sync', syncMain, ['hub', 'other'], /^mailbag sync: unexpected argument "other" \(usage: mailbag sync PEER/],
    ['mailbag dispatch', dispatchMain, ['hub'], /^mailbag dispatch: unexpected argument "hub" \(usage: mailbag dispatch/],
    ['mailbag failed', failedMain, ['--bogus'], /^mailbag failed: unknown option "--bogus" \(see mailbag failed --help\)/],
    ['mailbag retry', retryMain, ['a', 'b'], /^mailbag retry: unexpected argument "b" \(see mailbag retry --help\)/],
    ['rsmtp', rsmtpMain, ['-bS', '--bogus'], /^rsmtp: unknown option "--bogus"/],
  ] as const;

  it.each(commands)('%s: a usage error before the configuration is read', async (_name, main, argv, text) => {
    await expect(main([...argv], io())).rejects.toThrow(text);
  });

  it.each(commands)('%s: --config without a FILE is a usage error', async (name, main) => {
    await expect(main(['--config'], io())).rejects.toThrow(`${name}: --config needs a FILE`);
  });

  it.each(commands)('%s --help prints its usage and exits 0', async (name, main) => {
    const x = io();
    expect(await main(['--help'], x)).toBe(0);
    expect(x.out()).toContain(name);
  });

  it('sync without a peer asks which one', async () => {
    await expect(syncMain([], io())).rejects.toThrow(/^mailbag sync: which peer\?/);
  });
});
