// mailbag failed and retry on a spool that has not been made yet (nothing queued, the
// checkout's spool/ with only its README, a spool directory not created yet): empty, as
// mailbag status shows it, exit 0 — not 75 "does not exist". A spool path that names a
// file, or one that cannot be read, is still an error, for status too.

import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { asMailbagError } from '../../../lib/errors.js';
import type { CliIo } from '../../../lib/cli/io.js';
import { main as failedMain } from '../../../lib/cli/failed.js';
import { main as retryMain } from '../../../lib/cli/retry.js';
import { main as statusMain } from '../../../lib/cli/status.js';
import { newJobId } from '../../../lib/job/index.js';

// every site a test makes (one test makes two: a single `dir` left the first behind)
const dirs: string[] = [];
/** the last site's directory: the commands' working directory */
let dir: string | undefined;
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  dir = undefined;
});

/** a configuration whose spool is `spool` (under a fresh temp dir); returns its path */
function site(spool: (d: string) => string): { toml: string; spool: string } {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-unmade-'));
  dirs.push(dir);
  const path = spool(dir);
  const toml = join(dir, 'mailbag.toml');
  writeFileSync(toml, `site = "home"\nspool = ${JSON.stringify(path)}\n[peers.hub]\ntransport = "command"\ncommand = ["true"]\n`);
  return { toml, spool: path };
}

async function cmd(main: (argv: string[], io: CliIo) => Promise<number>, toml: string, argv: string[]): Promise<{ code: number; out: string }> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const code = await main(['--config', toml, ...argv], { stdin: Readable.from([]), stdout: out, stderr: new PassThrough(), env: {}, cwd: dir!, isTTY: false });
  return { code, out: Buffer.concat(chunks).toString() };
}

async function failure(p: Promise<unknown>): Promise<{ exitCode: number; line: string }> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err, 'an error').toBeDefined();
  const e = asMailbagError(err);
  return { exitCode: e.exitCode, line: `${e.status} ${e.message}` };
}

describe('a spool not made yet', () => {
  for (const [what, make] of [
    ['a spool directory that does not exist', (d: string) => join(d, 'spool')],
    ['a directory nothing was queued in (no marker: the checkout\'s spool/ with its README)', (d: string) => {
      mkdirSync(join(d, 'spool'));
      writeFileSync(join(d, 'spool', 'README'), 'the spool of a checkout\n');
      return join(d, 'spool');
    }],
  ] as const) {
    it(`${what}: failed lists nothing and exits 0; retry says there is no such failed job`, async () => {
      const s = site(make);
      expect(await cmd(failedMain, s.toml, [])).toEqual({ code: 0, out: 'no failed jobs\n' });
      expect(await cmd(failedMain, s.toml, ['hub'])).toEqual({ code: 0, out: 'no failed jobs for hub\n' });
      expect(await cmd(failedMain, s.toml, ['--json'])).toEqual({ code: 0, out: '[]\n' });
      // as status shows it
      expect((await cmd(statusMain, s.toml, [])).code).toBe(0);
      // retry: the same answer as on an empty spool (not "spool … does not exist")
      const id = newJobId();
      const r = await failure(cmd(retryMain, s.toml, [`hub/${id}`]));
      expect(r.line).toBe(`4.3.5 no failed job hub/${id} (see mailbag failed)`);
      const bad = await failure(cmd(retryMain, s.toml, ['nope']));
      expect(bad.line).toMatch(/"nope" is not a job id/);
      // an unknown peer is still a typo
      expect((await failure(cmd(failedMain, s.toml, ['hbu']))).line).toMatch(/^4\.3\.5 .*hbu/);
    });
  }

  it('a spool path that is a file (or goes through one): a configuration error naming the file and key, for failed, retry and status', async () => {
    for (const spool of ['spool', join('spool', 'below')]) {
      const s = site((d) => {
        writeFileSync(join(d, 'spool'), 'not a directory\n');
        return join(d, spool);
      });
      for (const [main, argv] of [[failedMain, []], [retryMain, [newJobId()]], [statusMain, []]] as const) {
        const f = await failure(cmd(main, s.toml, [...argv]));
        expect(f.exitCode).toBe(75);
        expect(f.line).toBe(`4.3.5 ${s.toml}: spool: ${JSON.stringify(s.spool)} is not a directory (nor a place for one)`);
      }
    }
  });

  it('a spool whose marker is gone but that holds queues (mail may wait there): an error, not an empty list', async () => {
    const s = site((d) => {
      const root = join(d, 'spool');
      // what a made spool holds, its mailbag-spool marker removed (by hand, a partial restore)
      mkdirSync(join(root, 'failed', 'hub'), { recursive: true });
      writeFileSync(join(root, 'failed', 'hub', newJobId()), 'a failed job\n');
      return root;
    });
    for (const [main, argv] of [[failedMain, []], [retryMain, [newJobId()]], [statusMain, []]] as const) {
      const f = await failure(cmd(main, s.toml, [...argv]));
      expect(f.exitCode).toBe(75);
      expect(f.line).toMatch(/^4\.3\.0 .* is not a mailbag spool \(no mailbag-spool file\)/);
    }
  });

  it('a spool path that cannot be read (a symbolic link loop): an error, not an empty list', async () => {
    const s = site((d) => {
      symlinkSync(join(d, 'spool'), join(d, 'spool'));
      return join(d, 'spool');
    });
    for (const [main, argv] of [[failedMain, []], [retryMain, [newJobId()]], [statusMain, []]] as const) {
      const f = await failure(cmd(main, s.toml, [...argv]));
      expect(f.exitCode).toBe(75);
      expect(f.line).toMatch(new RegExp(`^4\\.3\\.0 cannot read the spool ${s.spool}: ELOOP`));
    }
  });
});
