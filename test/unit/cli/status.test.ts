// mailbag status and a killed session's leftovers: jobs of a committed bag still in
// bags/in/PEER/HASH.d/ (docs/spool.md S7) count in `in`, named apart, until the idle
// recovery moves them.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { mailbagBin, run } from '../../helpers/mta-common.js';
import { formatStatus, gatherStatus } from '../../../lib/cli/status.js';
import { recoverIdlePeer } from '../../../lib/session/idle-recovery.js';
import { makeSite, RMAIL_PAYLOAD } from '../runner/helpers.js';

it('counts the jobs of a committed, unmoved bag in `in` as not yet moved, and not after the recovery', async () => {
  const s = await makeSite();
  try {
    const HASH = 'ab'.repeat(32);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await s.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD));
    // two of the three jobs still in the staging directory of a bag the ledger holds
    const dir = join(s.spool.root, 'bags', 'in', 'hub', `${HASH}.d`);
    mkdirSync(dir, { recursive: true });
    for (const id of ids.slice(1)) renameSync(join(s.spool.root, 'in', 'hub', id), join(dir, id));
    mkdirSync(join(s.spool.root, 'ledger'), { recursive: true });
    writeFileSync(join(s.spool.root, 'ledger', 'hub'), `mailbag-ledger 1\n${Date.now()} ${HASH} ${ids.join(',')}\n`);

    const before = await gatherStatus(s.config);
    expect(before.peers[0]!.in).toMatchObject({ jobs: 3, unmoved: 2 });
    expect(before.peers[0]!.in.oldestAgeSeconds).not.toBeNull();

    await recoverIdlePeer(s.config, s.spool, 'hub');
    const after = await gatherStatus(s.config);
    expect(after.peers[0]!.in.jobs).toBe(3);
    expect(after.peers[0]!.in.unmoved).toBeUndefined();
  } finally {
    s.cleanup();
  }
});

it.skipIf(!existsSync(mailbagBin))('a spool it cannot read is an error (75, one 4.3.0 line naming it), not a spool with every queue empty', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailbag-status-perm-'));
  try {
    chmodSync(dir, 0o755);
    const spool = join(dir, 'spool');
    const toml = join(dir, 'mailbag.toml');
    writeFileSync(toml, `site = "hub"\nspool = ${JSON.stringify(spool)}\n[peers.home]\naccept = ["rmail"]\n`);
    chmodSync(toml, 0o644);
    const env = { ...process.env, MAILBAG_FAULT: '' };
    const q = await run(process.execPath, [mailbagBin, 'enqueue', 'home', '--config', toml, '-f', 's@x.example', '--', 'r@y.example'], { input: 'Subject: held\n\nbody\n', env });
    expect(q.code, q.stderr).toBe(0);
    // the spool belongs to one user (mode 0700); status is run by another one. As root,
    // that other user is nobody and the spool is left root's; else the spool's mode is
    // taken away from its own user
    const asRoot = process.getuid?.() === 0;
    const other = asRoot ? { uid: 65534, gid: 65534 } : {};
    if (!asRoot) chmodSync(spool, 0o000);
    try {
      expect(statSync(spool).mode & 0o777).toBe(asRoot ? 0o700 : 0o000);
      const r = await run(process.execPath, [mailbagBin, 'status', '--config', toml], { env, ...other });
      const out = r.stdout.toString('utf8');
      expect(out, r.stderr).not.toContain('home  -');
      expect(r.code, out + r.stderr).toBe(75);
      expect(r.stderr).toMatch(/^4\.3\.0 mailbag: .*spool/);
      expect(r.stderr).toContain(spool);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      if (!asRoot) chmodSync(spool, 0o700);
    }
    // the owner sees the job
    const mine = await run(process.execPath, [mailbagBin, 'status', '--config', toml], { env });
    expect(mine.code, mine.stderr).toBe(0);
    expect(mine.stdout.toString('utf8')).toMatch(/home\s+1 job/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('shows ages in whole seconds, also a job less than a second old (0s, not 0ms)', () => {
  const q = (oldestAgeSeconds: number | null, jobs = 1) => ({ jobs, bytes: 279, oldestAgeSeconds });
  const text = formatStatus({
    version: 1, site: 'home', spool: '/s', generated: '', peers: [{ peer: 'hub', configured: true, out: q(0), in: q(3725), failed: q(null, 0) }],
  });
  expect(text).toMatch(/^hub +1 job, 279, oldest 0s +1 job, 279, oldest 1h2m +-$/m);
});

it('names the rsmtp/rmail progress records that do not read (each holds its input at 75 until removed), in text and JSON', async () => {
  const s = await makeSite();
  try {
    const run = join(s.spool.root, 'run', 'rsmtp-stdin');
    mkdirSync(run, { recursive: true });
    // one record cut short by a disk, one fine, one of rmail's edited by hand
    const cut = join(run, 'a'.repeat(64));
    writeFileSync(cut, 'mailbag-run 1\n{"attempts":0,"tx":{"0":{"accep');
    writeFileSync(join(run, 'b'.repeat(64)), 'mailbag-run 1\n{"attempts":0,"tx":{}}\n');
    mkdirSync(join(s.spool.root, 'run', 'rmail-stdin'), { recursive: true });
    const edited = join(s.spool.root, 'run', 'rmail-stdin', 'c'.repeat(64));
    writeFileSync(edited, 'hello\n');
    const report = await gatherStatus(s.config);
    expect(report.unreadableProgress?.count).toBe(2);
    expect(report.unreadableProgress?.records.map((r) => r.path)).toEqual([cut, edited]);
    expect(report.unreadableProgress?.records[0]!.problem).toMatch(/does not read/);
    const text = formatStatus(report);
    expect(text).toContain('2 rsmtp/rmail progress records do not read: every retry of their inputs exits 75 until each is removed');
    expect(text).toContain(`\n  ${cut}\n`);
    // none: no key at all
    rmSync(cut);
    rmSync(edited);
    expect((await gatherStatus(s.config)).unreadableProgress).toBeUndefined();
  } finally {
    s.cleanup();
  }
});
