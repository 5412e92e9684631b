// The front doors as an MTA runs them (the built bins, child processes), with the input a
// hostile or odd sender, or a careless admin, gives them: what reaches the spool must be
// what the MTA handed over, or the MTA must hear a refusal it acts on (DESIGN.md promise 5).

import { spawn } from 'node:child_process';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MAILBAG_BIN, UUX_BIN, jobsIn, makeSite, requireBuild, type RunResult, type Site } from '../unit/cli/front-door-helpers.js';

beforeAll(() => requireBuild());

let site: Site;
beforeEach(() => {
  site = makeSite();
});
afterEach(() => site.cleanup());

/**
 * Run `bin ARGS…`, where the argument RAW is `raw` given as bytes (printf's octal escapes):
 * node turns bytes that are not UTF-8 in its argv into U+FFFD, and this is how an MTA's
 * 8-bit local part reaches it.
 */
function runRaw(bin: string, args: string[], raw: string, input: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // each argument in turn to the end of the list, RAW replaced by printf's bytes
    const script = 'r=$(printf "$MB_RAW"); for a; do shift; if [ "$a" = RAW ]; then set -- "$@" "$r"; else set -- "$@" "$a"; fi; done; exec "$0" "$@"';
    const child = spawn('/bin/sh', ['-c', script, process.execPath, bin, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, MB_RAW: raw },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

const MESSAGE = 'Subject: hi\n\nhello\n';

describe('an address that is not UTF-8 on the command line (node would pass on U+FFFD instead)', () => {
  it('mailbag enqueue: a recipient with a Latin-1 byte is refused, 64 5.1.3, no job (it used to be queued as caf\uFFFD@…)', async () => {
    const r = await runRaw(MAILBAG_BIN, ['enqueue', '--config', site.config, 'hub', '-f', 'me@example.net', '--', 'RAW'], 'caf\\351@example.org', MESSAGE);
    expect(r.code, r.stderr).toBe(64);
    expect(r.stderr).toMatch(/^5\.1\.3 .*not UTF-8/);
    expect(jobsIn(site.spool, 'out', 'hub')).toEqual([]);
  });

  it('mailbag enqueue: a sender with a Latin-1 byte is refused, 65 5.1.7, no job', async () => {
    const r = await runRaw(MAILBAG_BIN, ['enqueue', '--config', site.config, 'hub', '-f', 'RAW', '--', 'you@example.org'], 'j\\366rg@example.net', MESSAGE);
    expect(r.code, r.stderr).toBe(65);
    expect(r.stderr).toMatch(/^5\.1\.7 .*not UTF-8/);
    expect(jobsIn(site.spool, 'out', 'hub')).toEqual([]);
  });

  it('mailbag-uux: a recipient in parentheses with a Latin-1 byte, with the null sender (a BSMTP job): 64, no job', async () => {
    const r = await runRaw(UUX_BIN, ['--config', site.config, '-r', '-n', '-z', '-a', '-', 'hub!rmail', 'RAW'], '(caf\\351@example.org)', MESSAGE);
    expect(r.code, r.stderr).toBe(64);
    expect(jobsIn(site.spool, 'out', 'hub')).toEqual([]);
  });

  it('UTF-8 itself passes, byte for byte (SMTPUTF8 addresses)', async () => {
    const r = await runRaw(MAILBAG_BIN, ['enqueue', '--config', site.config, 'hub', '-f', 'jörg@bücher.example', '--', 'RAW'], 'caf\\303\\251@example.org', MESSAGE);
    expect(r.code, r.stderr).toBe(0);
    const [job] = jobsIn(site.spool, 'out', 'hub');
    expect(job?.header.recipients).toEqual(['café@example.org']);
    expect(job?.header.sender).toBe('jörg@bücher.example');
  });
});
