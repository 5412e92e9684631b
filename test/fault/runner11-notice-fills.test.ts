// A failure notice whose record meets a full spool (DESIGN.md promise 2, nothing twice):
// the runner recorded "notice sent" (Runner.finishFailedNotices) with a plain write, not
// through the room held for records (docs/spool.md R2a), so a spool that filled while the
// MTA took the notice left it sent and unrecorded, and the next run sent the sender the
// same notice again. A real tmpfs, filled by the MTA as it takes the notice.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config/index.js';
import { newJobId, type JobHeader } from '../../lib/job/index.js';
import { readState } from '../../lib/runner/state.js';
import { runJobs } from '../../lib/runner/runner.js';
import { Spool } from '../../lib/spool/index.js';
import { FAKE_SENDMAIL } from '../unit/runner/helpers.js';
import { canMount, fillUp, mountTmpfs, unmount } from '../unit/spool/mount.js';

const mounted = canMount('runner11, a failure notice recorded on a spool that fills');
let dir: string | undefined;
let mnt: string | undefined;

beforeAll(() => {
  if (!mounted) return;
  dir = mkdtempSync(join(tmpdir(), 'mailbag-runner11-notice-'));
  mnt = join(dir, 'mnt');
  mountTmpfs(mnt, '1m');
});
afterAll(() => {
  if (mnt) unmount(mnt);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** a site on its own directory of the tmpfs whose MTA fills the tmpfs at its call `fillAt` */
async function setUp(name: string, fillAt: number, exits: string, command: string, body = 'Subject: hello\n\nhello\n') {
  const calls = join(dir!, `${name}-calls`);
  mkdirSync(calls);
  const count = join(dir!, `${name}-count`);
  writeFileSync(count, '0');
  const filler = join(mnt!, `${name}-filler`);
  const mta = join(dir!, `${name}-sendmail`);
  writeFileSync(mta, `#!/bin/sh\n[ "$1" = -bV ] && exec '${FAKE_SENDMAIL}' "$@"\nn=$(($(cat '${count}') + 1)); echo $n > '${count}'\nif [ "$n" = ${fillAt} ]; then dd if=/dev/zero of='${filler}' bs=4096 2>/dev/null; fi\nexec '${FAKE_SENDMAIL}' "$@"\n`);
  chmodSync(mta, 0o755);
  const spoolDir = join(mnt!, name);
  const file = join(dir!, `${name}.toml`);
  writeFileSync(file, ['site = "home"', `spool = "${spoolDir}"`, '[delivery]', `sendmail = "${mta}"`, 'mta = "sendmail"', 'concurrency = 1', '[peers.hub]', 'transport = "command"', 'command = ["true"]'].join('\n'));
  const config = loadConfig({ path: file, env: {} });
  const spool = await Spool.open(spoolDir, { create: true });
  const h: JobHeader = { id: newJobId(), from: 'hub', to: 'home', created: new Date().toISOString(), command, args: ['r@y.example'], sender: 's@x.example', recipients: ['r@y.example'] };
  await spool.writeJob('in', 'hub', h, Buffer.from(body));
  const env = { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: exits };
  const notices = (): string[] => readdirSync(calls).filter((n) => n.endsWith('.stdin') && /^Content-Type: multipart\/report/im.test(readFileSync(join(calls, n), 'utf8')));
  const free = (): void => {
    if (existsSync(filler)) unlinkSync(filler);
  };
  return { config, spool, env, id: h.id, notices, free };
}

it.skipIf(!mounted)('a job failing for good whose notice fills the spool: the notice is recorded in the room held for it and sent once', async () => {
  // a command the peer may not run: failed for good, its notice the MTA's first call
  const t = await setUp('forbidden', 1, '0', 'uucico');
  const lines: string[] = [];
  await runJobs({ config: t.config, spool: t.spool, env: t.env, log: (l) => lines.push(l) });
  expect(t.notices()).toHaveLength(1);
  t.free();
  // the next runs (later, and with --now): nothing owed, nothing sent again
  await runJobs({ config: t.config, spool: t.spool, env: t.env, now: () => new Date(Date.now() + 86_400_000) });
  await runJobs({ config: t.config, spool: t.spool, env: t.env, force: true });
  expect(t.notices(), lines.join('\n')).toHaveLength(1);
  expect((await readState(t.spool, 'hub', t.id))?.failed?.noticeSent).toBe(true);
}, 60_000);

it.skipIf(!mounted)('a deferred notice sent from failed/ as the spool fills: recorded in the room held for it and sent once', async () => {
  // the MTA defers the notice (75), then takes it in the next run and fills the spool
  const t = await setUp('deferred', 2, '75,0', 'uucico');
  await runJobs({ config: t.config, spool: t.spool, env: t.env });
  expect(t.notices()).toHaveLength(1); // the deferred try
  const lines: string[] = [];
  await runJobs({ config: t.config, spool: t.spool, env: t.env, force: true, log: (l) => lines.push(l) });
  expect(t.notices()).toHaveLength(2);
  t.free();
  await runJobs({ config: t.config, spool: t.spool, env: t.env, force: true });
  await runJobs({ config: t.config, spool: t.spool, env: t.env, now: () => new Date(Date.now() + 86_400_000) });
  // the deferred try and the one that went: not a third
  expect(t.notices(), lines.join('\n')).toHaveLength(2);
  expect((await readState(t.spool, 'hub', t.id))?.failed?.noticeSent).toBe(true);
}, 60_000);

it.skipIf(!mounted)('a spool nearly full when a notice is due (no room for its record): it waits, said and a failure of the run, and goes once when there is room', async () => {
  const t = await setUp('full', 0, '75,0', 'uucico');
  await runJobs({ config: t.config, spool: t.spool, env: t.env });
  expect(t.notices()).toHaveLength(1);
  // one page left: the runner's lock takes it, and no room is left for the notice's record
  const filler = fillUp(mnt!);
  truncateSync(filler, statSync(filler).size - 4096);
  const lines: string[] = [];
  const s = await runJobs({ config: t.config, spool: t.spool, env: t.env, force: true, log: (l) => lines.push(l) });
  expect(t.notices(), lines.join('\n')).toHaveLength(1);
  expect(lines.join('\n')).toMatch(/the notice waits for the next run: spool full/);
  expect(s.unfinished?.map((u) => u.error.code)).toEqual(['spool-full']);
  unlinkSync(filler);
  await runJobs({ config: t.config, spool: t.spool, env: t.env, force: true });
  await runJobs({ config: t.config, spool: t.spool, env: t.env, force: true });
  expect(t.notices(), lines.join('\n')).toHaveLength(2);
  expect((await readState(t.spool, 'hub', t.id))?.failed?.noticeSent).toBe(true);
}, 60_000);

it.skipIf(!mounted)('a notice an earlier attempt owes, sent at the start of the next as the spool fills: recorded in the room, sent once', async () => {
  // two transactions: r1 refused for good (its notice deferred by the MTA), r2 deferred
  const bsmtp = ['r1', 'r2'].map((r) => `MAIL FROM:<s@x.example>\nRCPT TO:<${r}@y.example>\nDATA\nSubject: ${r}\n\nto ${r}\n.\n`).join('');
  // calls: 1 r1 (67), 2 its notice (75), 3 r2 (75); the next attempt: 4 the notice, taken, filling the spool
  const t = await setUp('owed', 4, 'r1@y.example=67,r2@y.example=75,s@x.example=75', 'rsmtp', bsmtp);
  await runJobs({ config: t.config, spool: t.spool, env: t.env });
  expect(t.notices()).toHaveLength(1);
  const lines: string[] = [];
  const env = { ...t.env, FAKE_SENDMAIL_EXITS: 'r1@y.example=67,r2@y.example=75,s@x.example=0' };
  await runJobs({ config: t.config, spool: t.spool, env, force: true, log: (l) => lines.push(l) });
  expect(t.notices()).toHaveLength(2);
  t.free();
  await runJobs({ config: t.config, spool: t.spool, env, force: true });
  await runJobs({ config: t.config, spool: t.spool, env, force: true });
  // the deferred try and the one that went: not a third
  expect(t.notices(), lines.join('\n')).toHaveLength(2);
  expect(lines.join('\n')).toMatch(/progress kept in the room reserved for it/);
  expect((await readState(t.spool, 'hub', t.id))?.tx['0']?.noticed).toBe(true);
}, 60_000);
