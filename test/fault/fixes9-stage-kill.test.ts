// The standalone rsmtp and rmail (delivery.method smtp) keep a copy of their stdin while
// they deliver it. They kept it in $TMPDIR/mailbag-{rsmtp,rmail}-XXXX/, which one killed
// with SIGKILL (an OOM kill, a machine's shutdown) left there for ever: nothing of
// mailbag looks there, and rsmtp's can be up to max_bag_expanded (1 GiB). With a spool
// the copy is now staged in SPOOL/tmp/ under the writer's name, and the next process to
// open the spool removes it once its writer is dead. The real programs (the repo's
// dist/bin, CI builds once before the tests) are killed while their copy is being
// written; then any spool user's Spool.open: nothing is left in $TMPDIR nor in tmp/.
// Seen failing before the change (the mailbag-rsmtp-… directory stayed in $TMPDIR).

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { need } from '../helpers/need.js';
import { Spool } from '../../lib/spool/index.js';
import { FAKE_SENDMAIL } from '../unit/runner/helpers.js';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const bins = { rsmtp: join(repo, 'dist', 'bin', 'rsmtp.js'), rmail: join(repo, 'dist', 'bin', 'rmail.js') };
const ready = need('the built rsmtp and rmail (dist/bin)', Object.values(bins), 'run npm run build first');
const dir = mkdtempSync(join(tmpdir(), 'mailbag-fixes9-stage-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** the files anywhere under `at` that have bytes in them */
function filled(at: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(at, { recursive: true }) as string[]) {
    const st = statSync(join(at, name), { throwIfNoEntry: false });
    if (st?.isFile() && st.size > 0) out.push(name);
  }
  return out;
}

const cases = [
  {
    what: 'rsmtp',
    args: [] as string[],
    delivery: `sendmail = "${FAKE_SENDMAIL}"\nmta = "sendmail"\n`,
    head: 'MAIL FROM:<s@x.example>\nRCPT TO:<a@y.example>\nDATA\nSubject: t\n\n',
  },
  {
    what: 'rmail',
    args: ['a@y.example'],
    // never reached: the program is killed while it copies the message
    delivery: 'method = "smtp"\nsmtp = "127.0.0.1:9"\n',
    head: 'From s@x.example  Sun Nov 22 04:10:00 2026\nSubject: t\n\n',
  },
] as const;

for (const c of cases) {
  it.skipIf(!ready)(`${c.what} killed (SIGKILL) while it copies its input: the next Spool.open leaves nothing of it`, async () => {
    const base = join(dir, c.what);
    const privateTmp = join(base, 'tmp');
    mkdirSync(privateTmp, { recursive: true });
    const spoolDir = join(base, 'spool');
    const config = join(base, 'mailbag.toml');
    writeFileSync(config, `site = "home"\nspool = "${spoolDir}"\n[delivery]\n${c.delivery}`);
    await Spool.open(spoolDir, { create: true });
    const p = spawn(process.execPath, [bins[c.what], '--config', config, ...c.args], { env: { ...process.env, TMPDIR: privateTmp }, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const closed = new Promise<NodeJS.Signals | null>((res) => p.on('close', (_code, signal) => res(signal)));
    // the input's start, then more and more of its body, never its end: the copy grows
    p.stdin.on('error', () => undefined);
    p.stdin.write(c.head);
    const line = `${'x'.repeat(70)}\n`;
    let copy: string[] = [];
    for (let i = 0; i < 500 && copy.length === 0; i++) {
      p.stdin.write(line.repeat(100));
      await new Promise((r) => setTimeout(r, 20));
      copy = [...filled(privateTmp).map((n) => `TMPDIR/${n}`), ...filled(join(spoolDir, 'tmp')).map((n) => `tmp/${n}`)];
    }
    expect(copy, stderr).toHaveLength(1); // the copy being written, wherever it is
    p.kill('SIGKILL');
    expect(await closed).toBe('SIGKILL');
    // any mailbag command that opens the spool next (here: the library's Spool.open)
    await Spool.open(spoolDir);
    expect(readdirSync(privateTmp)).toEqual([]);
    expect(readdirSync(join(spoolDir, 'tmp'))).toEqual([]);
  }, 30_000);
}
