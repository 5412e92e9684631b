// audit11 (session 11): issue 3 asks that "under CI a missing sshd fails the suite"
// (test/helpers/need.ts). Shown here for real: the suites that use the real OpenSSH sshd
// are run by vitest in a private mount namespace where /usr/sbin holds everything it
// holds here but sshd (links to the real files, on a tmpfs bound over it), once with CI=true (each file must fail, saying what is missing) and once without
// (each skips with a SKIP line, and the run passes).

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { need } from '../helpers/need.js';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const vitest = join(repo, 'node_modules', 'vitest', 'vitest.mjs');
const isRoot = process.getuid?.() === 0;
const ready = need('unshare(1) and root (a private mount namespace hides /usr/sbin)', ['/usr/bin/unshare', ...(isRoot ? [] : ['uid 0'])], 'run as root; apt-get install util-linux') && existsSync(vitest);

// every test file that starts the real sshd (test/helpers/sshd.ts's startSshd)
const SSHD_SUITES = [
  'test/integration/session-sshd.test.ts',
  'test/integration/session-cli.test.ts',
  'test/integration/ssh-sshd.test.ts',
  'test/integration/ssh-early-sync.test.ts',
  'test/integration/ssh-serve-exit.test.ts',
  'test/integration/docs-setup.test.ts',
  'test/integration/fidelity10-end-to-end.test.ts',
  'test/review10/review10a-identity-owner.test.ts',
  'test/review11/audit11-sshd.test.ts',
];

function withoutSshd(ci: boolean): { status: number | null; out: string } {
  const env = { ...process.env };
  delete env.CI;
  if (ci) env.CI = 'true';
  delete env.FORCE_COLOR;
  env.NO_COLOR = '1';
  const t = mkdtempSync(join(tmpdir(), 'audit11-sbin-'));
  try {
    // in the namespace only: the real /usr/sbin bound at T/orig, a tmpfs at T/new with a
    // link to each of its files but sshd, bound over /usr/sbin; gone with the namespace
    const script = [
      'set -e',
      `T=${t}`,
      'mkdir -p "$T/orig" "$T/new"',
      'mount --bind /usr/sbin "$T/orig"',
      'mount -t tmpfs -o size=4m audit11-sbin "$T/new"',
      'for f in "$T"/orig/*; do n=$(basename "$f"); [ "$n" = sshd ] || ln -s "$T/orig/$n" "$T/new/$n"; done',
      'mount --bind "$T/new" /usr/sbin',
      'test ! -e /usr/sbin/sshd && test -e /usr/sbin/runuser',
      'exec "$@"',
    ].join('\n');
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', process.execPath, vitest, 'run', '--reporter=verbose', ...SSHD_SUITES], { cwd: repo, env, encoding: 'utf8', timeout: 280_000 });
    return { status: r.status, out: r.stdout + r.stderr };
  } finally {
    rmSync(t, { recursive: true, force: true });
  }
}

describe.skipIf(!ready)('audit11: a missing sshd', () => {
  it('fails every real-sshd suite under CI=true, saying what is missing', () => {
    const r = withoutSshd(true);
    expect(r.status, r.out.slice(-3000)).not.toBe(0);
    for (const f of SSHD_SUITES) expect(r.out, `${f} did not fail`).toMatch(new RegExp(`FAIL\\s+${f.replaceAll('.', '\\.')}`));
    expect(r.out).toMatch(/under CI every test dependency must be installed: OpenSSH sshd missing \(\/usr\/sbin\/sshd\)/);
  }, 300_000);

  it('skips them with a SKIP line outside CI', () => {
    const r = withoutSshd(false);
    expect(r.out).toMatch(/SKIP OpenSSH sshd missing \(\/usr\/sbin\/sshd\)/);
    expect(r.out).not.toMatch(/FAIL\s+test\//);
    expect(r.status, r.out.slice(-3000)).toBe(0);
  }, 300_000);
});
