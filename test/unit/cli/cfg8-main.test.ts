// `mailbag` itself (lib/cli/main.ts): --help, --version, no command, an unknown one.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../../../lib/cli/main.js';
import type { CliIo } from '../../../lib/cli/io.js';
import { packageRoot } from '../../../lib/config/index.js';
import { MailbagError } from '../../../lib/errors.js';

function io(): CliIo & { out: () => string } {
  const stdout = new PassThrough();
  let out = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  return { stdin: new PassThrough(), stdout, stderr: new PassThrough(), env: {}, cwd: '/', isTTY: false, out: () => out };
}

describe('mailbag', () => {
  it('--version and -V print the package\'s version, from the sources as from dist/', async () => {
    const { version } = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const o = io();
      expect(await main([flag], o)).toBe(0);
      expect(o.out()).toBe(`mailbag ${version}\n`);
    }
  });

  it('--help, -h and help list every command and exit 0; no command exits 64', async () => {
    for (const argv of [['--help'], ['-h'], ['help'], []]) {
      const o = io();
      expect(await main(argv, o)).toBe(argv.length ? 0 : 64);
      expect(o.out()).toMatch(/^Usage: mailbag \[--config FILE\] COMMAND/);
      for (const c of ['enqueue', 'status', 'lmtpd', 'serve', 'sync', 'dispatch', 'demo', 'run', 'failed', 'retry']) expect(o.out()).toContain(`  ${c} `);
    }
  });

  it('an unknown command is a usage error (exit 75) that says where the commands are', async () => {
    await expect(main(['bogus'], io())).rejects.toThrow(new MailbagError('usage', "unknown command 'bogus' (see mailbag --help)"));
    await expect(main(['--config', '/x.toml', 'bogus'], io())).rejects.toMatchObject({ code: 'usage', exitCode: 75 });
  });

  it('an option before the command is called an option, not a command', async () => {
    await expect(main(['--quiet', 'sync', 'hub'], io())).rejects.toThrow(new MailbagError('usage', "unknown option '--quiet' before the command: options go after it (mailbag COMMAND [options]; see mailbag --help)"));
    await expect(main(['-q'], io())).rejects.toMatchObject({ code: 'usage', message: expect.stringMatching(/^unknown option '-q' before the command/) as unknown });
  });
});
