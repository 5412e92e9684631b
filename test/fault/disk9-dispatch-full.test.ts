// `mailbag dispatch` at home when the hub's spool is full (a real tmpfs, filled): the
// hub's serve cannot write its session lock (ENOSPC) and used to refuse the session with
// the code 'locked', which the dialer reads as "another session is running": dispatch
// said `hub: skipped: …` and exited 0, so its timer saw success while no mail could go
// either way. Now the refusal carries 'spool-full': dispatch exits 75 with the reason.
// Seen failing before the fix (exit 0, "skipped"; disk9, applied by the lead).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { run as runProcess } from '../helpers/mta-common.js';
import { need } from '../helpers/need.js';
import { Spool } from '../../lib/spool/index.js';
import { canMount, mountTmpfs, unmount } from '../unit/spool/mount.js';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const ready = need('the built mailbag (dist/bin/mailbag.js)', [join(repo, 'dist', 'bin', 'mailbag.js')], 'run npm run build first') && canMount('disk9 dispatch to a full hub');
let dir = '';
let mnt = '';
let bin = '';
beforeAll(() => {
  if (!ready) return;
  dir = mkdtempSync(join(tmpdir(), 'mailbag-disk9-dispatch-'));
  bin = join(repo, 'dist', 'bin', 'mailbag.js');
  mnt = join(dir, 'hub');
  mountTmpfs(mnt, '256k');
}, 60_000);
afterAll(() => {
  if (mnt) unmount(mnt);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function run(args: string[], config: string, input = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = await runProcess(process.execPath, [bin, ...args], { env: { ...process.env, MAILBAG_CONFIG: config }, input, timeoutMs: 60_000 });
  return { code: r.code, stdout: r.stdout.toString(), stderr: r.stderr };
}

it.skipIf(!ready)('dispatch to a hub whose spool is full: exit 75 and the reason, not "skipped" and 0', async () => {
  const hubSpool = join(mnt, 'spool');
  await Spool.open(hubSpool, { create: true });
  const hubToml = join(dir, 'hub.toml');
  const homeToml = join(dir, 'home.toml');
  writeFileSync(hubToml, `site = "hub"\nspool = "${hubSpool}"\n[peers.home]\n`);
  writeFileSync(homeToml, `site = "home"\nspool = "${join(dir, 'home-spool')}"\n[peers.hub]\ncommand = ${JSON.stringify([process.execPath, bin, '--config', hubToml, 'serve', '--peer', 'home', '--no-run'])}\n`);
  const q = await run(['enqueue', 'hub', '-f', 'a@x.example', '--', 'r@y.example'], homeToml, 'Subject: t\n\nbody\n');
  expect(q.code, q.stderr).toBe(0);
  let size = 0;
  try {
    for (;;) {
      size += 4096;
      writeFileSync(join(mnt, 'filler'), Buffer.alloc(size));
    }
  } catch {
    // full
  }
  const d = await run(['dispatch'], homeToml);
  expect(d.stdout + d.stderr).not.toMatch(/skipped/);
  expect(d.code, d.stdout + d.stderr).toBe(75);
  expect(d.stderr).toMatch(/spool full: .*no space left on device/i);
});
