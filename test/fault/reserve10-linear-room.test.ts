// The runner's room for a job's progress records (docs/spool.md R2a) on a small spool: it
// held two files a transaction of the *cumulative* record size, a square in the job's
// transactions (~38 MB for a BSMTP job of 100), so on a spool with less free room (an SD
// card) such a job never got its room and waited "spool full" at every attempt until it
// bounced. Now two files of the final record's size (~0.75 MB here): a real 4 MiB tmpfs.
// The second case fills that spool as the MTA takes transaction 50: the record goes into
// the room, the rest of the job waits for the next attempt, and each of the 100
// transactions still reaches the MTA once.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config/index.js';
import { newJobId, type JobHeader } from '../../lib/job/index.js';
import { runJobs } from '../../lib/runner/runner.js';
import { Spool } from '../../lib/spool/index.js';
import { FAKE_SENDMAIL } from '../unit/runner/helpers.js';
import { canMount, mountTmpfs, unmount } from '../unit/spool/mount.js';

const mounted = canMount('reserve10, a BSMTP job of 100 transactions on a small spool');
let dir: string | undefined;
let mnt: string | undefined;
const N = 100;

beforeAll(() => {
  if (!mounted) return;
  dir = mkdtempSync(join(tmpdir(), 'mailbag-reserve10-'));
  mnt = join(dir, 'mnt');
  mountTmpfs(mnt, '4m');
});
afterAll(() => {
  if (mnt) unmount(mnt);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function setUp(name: string, fillAt: number | undefined, exits = '0') {
  const calls = join(dir!, `${name}-calls`);
  mkdirSync(calls);
  const count = join(dir!, `${name}-count`);
  writeFileSync(count, '0');
  const filler = join(mnt!, `${name}-filler`);
  const mta = join(dir!, `${name}-sendmail`);
  const fill = fillAt === undefined ? '' : `if [ "$n" = ${fillAt} ]; then dd if=/dev/zero of='${filler}' bs=4096 2>/dev/null; fi\n`;
  writeFileSync(mta, `#!/bin/sh\nn=$(($(cat '${count}') + 1)); echo $n > '${count}'\n${fill}exec '${FAKE_SENDMAIL}' "$@"\n`);
  chmodSync(mta, 0o755);
  const spoolDir = join(mnt!, name);
  const file = join(dir!, `${name}.toml`);
  writeFileSync(file, ['site = "home"', `spool = "${spoolDir}"`, '[delivery]', `sendmail = "${mta}"`, 'mta = "sendmail"', 'concurrency = 1', '[peers.hub]', 'transport = "command"', 'command = ["true"]'].join('\n'));
  const config = loadConfig({ path: file, env: {} });
  const spool = await Spool.open(spoolDir, { create: true });
  const rcpts = Array.from({ length: N }, (_, i) => `r${i}@y.example`);
  const h: JobHeader = { id: newJobId(), from: 'hub', to: 'home', created: new Date().toISOString(), command: 'rsmtp', args: [], sender: 's@x.example', recipients: rcpts };
  const body = rcpts.map((r, i) => `MAIL FROM:<s@x.example>\nRCPT TO:<${r}>\nDATA\nSubject: ${i}\n\nmessage ${i}\n.\n`).join('');
  await spool.writeJob('in', 'hub', h, Buffer.from(body));
  const env = { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: exits };
  const delivered = (): string[] =>
    readdirSync(calls)
      .filter((n) => n.endsWith('.argv'))
      .map((n) => readFileSync(join(calls, n), 'utf8').trim().split('\n').at(-1)!)
      .sort();
  const noticeTo = (): string[] => readdirSync(calls).filter((n) => n.endsWith('.stdin') && /^Content-Type: multipart\/report/im.test(readFileSync(join(calls, n), 'utf8')));
  return {
    noticeTo, config, spool, env, rcpts, delivered, filler, spoolDir };
}

it.skipIf(!mounted)('a BSMTP job of 100 transactions on a 4 MiB spool gets its room and is delivered, each once', async () => {
  const t = await setUp('plain', undefined);
  const lines: string[] = [];
  await runJobs({ config: t.config, spool: t.spool, env: t.env, now: () => new Date(), log: (l) => lines.push(l) });
  // before: "spool full … reserving room for the progress records", nothing handed over
  expect(await t.spool.listJobs('in', 'hub'), lines.join('\n')).toEqual([]);
  expect(t.delivered()).toEqual([...t.rcpts].sort());
  expect(readdirSync(join(t.spoolDir, 'tmp')).filter((n) => n.includes('run-reserve'))).toEqual([]);
}, 120_000);

it.skipIf(!mounted)('the spool fills as the MTA takes transaction 50 of 100: the rest waits for the next attempt, nothing delivered twice', async () => {
  const t = await setUp('fills', 50);
  const lines: string[] = [];
  await runJobs({ config: t.config, spool: t.spool, env: t.env, now: () => new Date(), log: (l) => lines.push(l) });
  const said = lines.join('\n');
  expect(said).toMatch(/progress kept in the room reserved for it/);
  expect(said).toMatch(/retry after .*the spool is full: the rest of the job waits for the next attempt/);
  // nothing past the transaction the spool filled at was handed over in that attempt
  expect(t.delivered()).toHaveLength(50);
  if (existsSync(t.filler)) unlinkSync(t.filler);
  for (let i = 0; i < 3 && (await t.spool.listJobs('in', 'hub')).length > 0; i++) {
    await runJobs({ config: t.config, spool: t.spool, env: t.env, now: () => new Date(Date.now() + 86_400_000 * (i + 1)) });
  }
  expect(await t.spool.listJobs('in', 'hub')).toEqual([]);
  expect(t.delivered()).toEqual([...t.rcpts].sort());
}, 120_000);

it.skipIf(!mounted)('the spool fills as the MTA refuses transaction 50 for good: its notice waits for the next attempt and goes once', async () => {
  const t = await setUp('refused', 50, 'r49@y.example=67,0');
  const lines: string[] = [];
  await runJobs({ config: t.config, spool: t.spool, env: t.env, now: () => new Date(), log: (l) => lines.push(l) });
  expect(lines.join('\n')).toMatch(/progress kept in the room reserved for it/);
  // the refusal recorded, its notice not sent on the full spool
  expect(t.noticeTo()).toEqual([]);
  expect(t.delivered()).toHaveLength(50);
  if (existsSync(t.filler)) unlinkSync(t.filler);
  for (let i = 0; i < 3 && (await t.spool.listJobs('in', 'hub')).length > 0; i++) {
    await runJobs({ config: t.config, spool: t.spool, env: t.env, now: () => new Date(Date.now() + 86_400_000 * (i + 1)) });
  }
  expect(await t.spool.listJobs('in', 'hub')).toEqual([]);
  expect((await t.spool.listJobs('failed', 'hub')).length).toBe(1);
  // each recipient offered once (r49 refused), and the sender told once
  expect(t.delivered().filter((r) => r !== 's@x.example')).toEqual([...t.rcpts].sort());
  expect(t.noticeTo()).toHaveLength(1);
}, 120_000);
