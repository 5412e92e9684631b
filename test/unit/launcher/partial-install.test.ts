// A front door whose own files cannot be loaded — a package half replaced by an upgrade,
// a rebuild in place under way (tsc rewrites dist/lib file by file; the bundle step
// removes the code files of the previous build), a file lost — is a temporary condition
// of this host: the entry says so in one `4.3.0` line and exits 75, so the MTA keeps the
// mail and uuxqt the job, instead of node's exit 1 (Postfix and Exim bounce it; uuxqt
// sends "Execution failed" and drops the job). Each case runs a private copy of dist/.

import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const repo = resolve(import.meta.dirname, '../../..');
const built = existsSync(join(repo, 'dist/bin/mailbag.cjs')) && existsSync(join(repo, 'dist/lib/cli/rmail.js'));

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-partial-'));
  cpSync(join(repo, 'dist'), join(dir, 'dist'), { recursive: true });
  cpSync(join(repo, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(join(dir, 'mailbag.toml'), `site = "home"\nspool = "spool"\n[peers.hub]\nhost = "hub.example.org"\n`);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** the one file in dist/bin named NAME.<hash>.code.cjs */
function codeFile(name: string): string {
  const f = readdirSync(join(dir, 'dist/bin')).find((n) => n.startsWith(`${name}.`) && n.endsWith('.code.cjs'));
  if (!f) throw new Error(`no ${name} code file`);
  return join(dir, 'dist/bin', f);
}

/** half of a file, as a rewrite in progress leaves it */
function truncate(path: string): void {
  const text = readFileSync(path);
  writeFileSync(path, text.subarray(0, text.length >> 1));
}

function run(entry: string, args: string[], input: string): { status: number | null; stderr: string } {
  const r = spawnSync(join(dir, 'dist/bin', entry), args, {
    input,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, MAILBAG_CONFIG: join(dir, 'mailbag.toml') },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, stderr: r.stderr };
}

const MESSAGE = 'Subject: hi\n\nhello\n';
const RMAIL_INPUT = `From a@example.org  Sun Nov 22 04:10:00 2026\n${MESSAGE}`;
const BSMTP_INPUT = `MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n${MESSAGE}.\n`;

const cases: Array<[string, () => void, string, string[], string, string]> = [
  ['rmail.js, its program missing', () => rmSync(join(dir, 'dist/lib/cli/rmail.js')), 'rmail.js', ['b@example.net'], RMAIL_INPUT, 'rmail'],
  ['rsmtp.js, its program half written', () => truncate(join(dir, 'dist/lib/cli/rsmtp.js')), 'rsmtp.js', [], BSMTP_INPUT, 'rsmtp'],
  ['mailbag.cjs enqueue, the bundle\'s code file removed', () => rmSync(codeFile('mailbag-enqueue')), 'mailbag.cjs', ['enqueue', 'hub', '-f', 'a@example.org', '--', 'b@example.net'], MESSAGE, 'mailbag'],
  ['mailbag.cjs enqueue, the bundle\'s code file half written', () => truncate(codeFile('mailbag-enqueue')), 'mailbag.cjs', ['enqueue', 'hub', '-f', 'a@example.org', '--', 'b@example.net'], MESSAGE, 'mailbag'],
  ['mailbag-uux.cjs, the bundle\'s code file removed', () => rmSync(codeFile('mailbag-uux')), 'mailbag-uux.cjs', ['-r', '-aa@example.org', '-', 'hub!rmail', '(b@example.net)'], MESSAGE, 'mailbag-uux'],
  ['mailbag.cjs status, main.js missing', () => rmSync(join(dir, 'dist/lib/cli/main.js')), 'mailbag.cjs', ['status'], '', 'mailbag'],
  ['mailbag.js enqueue, its loader missing', () => rmSync(join(dir, 'dist/bin/mailbag-enqueue.cjs')), 'mailbag.js', ['enqueue', 'hub', '-f', 'a@example.org', '--', 'b@example.net'], MESSAGE, 'mailbag'],
  ['mailbag-uux.js, its loader missing', () => rmSync(join(dir, 'dist/bin/mailbag-uux.cjs')), 'mailbag-uux.js', ['-r', '-aa@example.org', '-', 'hub!rmail', '(b@example.net)'], MESSAGE, 'mailbag-uux'],
];

describe.runIf(built)('a front door that cannot load its own files: 75 and one 4.3.0 line, nothing queued', () => {
  it.each(cases)('%s', (_what, damage, entry, args, input, program) => {
    damage();
    const r = run(entry, args, input);
    expect(r.status, r.stderr).toBe(75);
    expect(r.stderr).toMatch(new RegExp(`^4\\.3\\.0 ${program}: cannot start: .+\\n$`));
    expect(existsSync(join(dir, 'spool/out/hub')) ? readdirSync(join(dir, 'spool/out/hub')) : []).toEqual([]);
  });

  it('undamaged, the same runs succeed (the copy works)', () => {
    const r = run('mailbag.cjs', ['enqueue', 'hub', '-f', 'a@example.org', '--', 'b@example.net'], MESSAGE);
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(join(dir, 'spool/out/hub'))).toHaveLength(1);
    const u = run('mailbag-uux.js', ['-r', '-aa@example.org', '-', 'hub!rmail', '(b@example.net)'], MESSAGE);
    expect(u.status, u.stderr).toBe(0);
  });
});
