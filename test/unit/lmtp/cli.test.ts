// `mailbag lmtpd` argument handling: usage errors are MailbagErrors (one 4.3.5 line from
// run.ts, exit 75), help goes to stdout.

import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../../../lib/cli/lmtpd.js';
import type { CliIo } from '../../../lib/cli/io.js';

function io(): CliIo & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (b: Buffer) => (o += b.toString()));
  stderr.on('data', (b: Buffer) => (e += b.toString()));
  return { stdin: new PassThrough(), stdout, stderr, env: {}, cwd: '/', isTTY: false, out: () => o, err: () => e };
}

describe('mailbag lmtpd arguments', () => {
  it('prints help on stdout and exits 0', async () => {
    const x = io();
    expect(await main(['--help'], x)).toBe(0);
    expect(x.out()).toMatch(/--listen <host:port>/);
  });
  it('refuses an unknown option and a bad --listen as usage errors, printing nothing itself', async () => {
    const x = io();
    await expect(main(['--bogus'], x)).rejects.toMatchObject({ code: 'usage', exitCode: 75 });
    await expect(main(['--listen', 'nohost'], x)).rejects.toThrow(/--listen nohost: write HOST:PORT/);
    expect(x.err()).toBe('');
  });
  it('refuses a --workers that is not a number from 1 to 256', async () => {
    const x = io();
    for (const bad of ['0', '257', 'two', '-1']) {
      await expect(main(['--workers', bad], x)).rejects.toThrow(new RegExp(`--workers ${bad}: write a number from 1 to 256`));
    }
    expect(x.err()).toBe('');
  });
  it('refuses a --socket path longer than a unix socket holds (108 bytes: Node would listen on a truncated one)', async () => {
    const x = io();
    const long = `/run/${'s'.repeat(99)}.sock`;
    expect(Buffer.byteLength(long)).toBe(109);
    await expect(main(['--socket', long], x)).rejects.toMatchObject({ code: 'usage', exitCode: 75, message: expect.stringMatching(/--socket \/run\/s+\.sock is 109 bytes, and a unix socket's path holds at most 108: give a shorter path/) });
    expect(x.err()).toBe('');
  });
  it('--no-socket needs a TCP listener', async () => {
    const x = io();
    await expect(main(['--no-socket'], x)).rejects.toThrow(/--no-socket needs --listen/);
  });
});
