// req-audit #2 through the programs an MTA runs: a copy of the package where
// `npm install -g` puts it (PREFIX/lib/node_modules/mailbag), with no configuration file
// or one without `spool`. The front doors must defer (75, one 4.3.5 line naming the key),
// never bounce and never write a spool inside the package; rmail and rsmtp, which need
// no spool, still deliver; with `spool` set the installed copy queues as usual.

import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_CONFIG } from '../../../lib/config/index.js';
import { repoRoot, requireBuild, runBin } from './front-door-helpers.js';

const fakeSendmail = join(repoRoot, 'test/fixtures/fake-sendmail');
let dir: string;
let pkg: string;
let sent: string;

beforeAll(() => {
  requireBuild();
  dir = mkdtempSync(join(tmpdir(), 'mailbag-installed-'));
  pkg = join(dir, 'lib', 'node_modules', 'mailbag');
  mkdirSync(pkg, { recursive: true });
  cpSync(join(repoRoot, 'dist'), join(pkg, 'dist'), { recursive: true, filter: (src) => !src.startsWith(join(repoRoot, 'dist', 'test')) && !src.startsWith(join(repoRoot, 'dist', 'bench')) });
  cpSync(join(repoRoot, 'package.json'), join(pkg, 'package.json'));
  symlinkSync(join(repoRoot, 'node_modules'), join(pkg, 'node_modules'));
  sent = join(dir, 'sent');
  mkdirSync(sent);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const bin = (name: string): string => join(pkg, 'dist', 'bin', name);
const MESSAGE = 'Subject: installed\n\nHello.\n';

describe.skipIf(existsSync(SYSTEM_CONFIG))('an installed package without `spool`', () => {
  it('enqueue, mailbag-uux and status defer with one 4.3.5 line that says to set spool, and make no spool in the package', async () => {
    const noSpool = join(dir, 'no-spool.toml');
    writeFileSync(noSpool, 'site = "home"\n[peers.hub]\nhost = "hub.example.org"\n');
    const runs = [
      // no configuration at all: the built-in defaults (unknown peer comes first there)
      { name: 'status (no file)', r: await runBin(bin('mailbag.cjs'), ['status'], '') },
      { name: 'enqueue', r: await runBin(bin('mailbag.cjs'), ['enqueue', 'hub', '-f', 'a@example.org', '--', 'b@example.net'], MESSAGE, { MAILBAG_CONFIG: noSpool }) },
      { name: 'enqueue --bsmtp', r: await runBin(bin('mailbag.cjs'), ['enqueue', 'hub', '--bsmtp'], 'MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\nx\n.\n', { MAILBAG_CONFIG: noSpool }) },
      { name: 'mailbag-uux', r: await runBin(bin('mailbag-uux.cjs'), ['-', '-r', '-a', 'a@example.org', 'hub!rmail', '(b@example.net)'], MESSAGE, { MAILBAG_CONFIG: noSpool }) },
      { name: 'status', r: await runBin(bin('mailbag.cjs'), ['status'], '', { MAILBAG_CONFIG: noSpool }) },
      { name: 'run', r: await runBin(bin('mailbag.cjs'), ['run'], '', { MAILBAG_CONFIG: noSpool }) },
    ];
    for (const { name, r } of runs) {
      expect(r.code, `${name}: ${r.stderr}`).toBe(75);
      const lines = r.stderr.trim().split('\n');
      expect(lines, name).toHaveLength(1);
      expect(lines[0], name).toMatch(/^4\.3\.5 (mailbag|mailbag-uux): .*spool/);
      expect(lines[0], name).toContain('npm install -g');
      expect(lines[0], name).toContain(`${pkg}/spool`);
    }
    expect(existsSync(join(pkg, 'spool'))).toBe(false);
  }, 60_000);

  it('rmail and rsmtp, which need no spool, still deliver', async () => {
    const toml = join(dir, 'deliver.toml');
    writeFileSync(toml, `site = "home"\n[delivery]\nsendmail = ${JSON.stringify(fakeSendmail)}\nmta = "sendmail"\n`);
    const env = { MAILBAG_CONFIG: toml, FAKE_SENDMAIL_DIR: sent };
    const rm = await runBin(bin('rmail.js'), ['b@example.net'], `From a@example.org  Sun Nov 22 04:10:00 2026\n${MESSAGE}`, env);
    expect(rm.code, rm.stderr).toBe(0);
    const rs = await runBin(bin('rsmtp.js'), [], 'MAIL FROM:<a@example.org>\nRCPT TO:<c@example.net>\nDATA\nx\n.\n', env);
    expect(rs.code, rs.stderr).toBe(0);
    expect(readdirSync(sent).filter((n) => n.endsWith('.stdin'))).toHaveLength(2);
    expect(existsSync(join(pkg, 'spool'))).toBe(false);
  }, 60_000);

  it('with `spool` set, the installed copy queues as usual', async () => {
    const spool = join(dir, 'spool');
    const toml = join(dir, 'set.toml');
    writeFileSync(toml, `site = "home"\nspool = ${JSON.stringify(spool)}\n[peers.hub]\nhost = "hub.example.org"\n`);
    const r = await runBin(bin('mailbag.cjs'), ['enqueue', 'hub', '-f', 'a@example.org', '--', 'b@example.net'], MESSAGE, { MAILBAG_CONFIG: toml });
    expect(r, r.stderr).toMatchObject({ code: 0, stderr: '' });
    expect(readdirSync(join(spool, 'out', 'hub'))).toHaveLength(1);
  }, 60_000);

  it('mailbag demo works in a new directory under $TMPDIR, not inside the package', async () => {
    const tmp = join(dir, 'tmp');
    mkdirSync(tmp);
    const r = await runBin(bin('mailbag.cjs'), ['demo', '--down', '3', '--up', '2'], '', { TMPDIR: tmp, MAILBAG_CORPUS: join(dir, 'no-corpus') });
    expect(r.code, r.stderr).toBe(0);
    const made = readdirSync(tmp).filter((n) => n.startsWith('mailbag-demo-'));
    expect(made).toHaveLength(1);
    expect(r.stdout).toContain(join(tmp, made[0]!));
    expect(readdirSync(join(tmp, made[0]!)).sort()).toEqual(expect.arrayContaining(['home', 'hub']));
    expect(existsSync(join(pkg, 'spool'))).toBe(false);
  }, 60_000);
});
