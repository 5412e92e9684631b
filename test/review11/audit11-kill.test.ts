// audit11 (session 11): test/fault/session-kill.test.ts kills the hub (the far `mailbag
// serve`) at each named point, but for the sender's points after the acknowledgement
// (session-sender-after-ack, session-sender-after-remove) it accepts a sync that exited 0,
// so it passes whether or not the hub was ever killed there. Here the far side runs under
// a shell that records how it ended: at every hub point the hub must have died of SIGKILL
// (the fault fired), and after a new sync nothing is lost or stored twice.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { need } from '../helpers/need.js';
import { writeSyncDriver } from '../helpers/sync-driver.js';
import { enqueue, ids, makeSite, messages, payloadOf, tempDir } from '../unit/session/sites.js';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const dist = join(repo, 'dist');
const bin = join(dist, 'bin', 'mailbag.js');
const built = need('the built mailbag', [bin, join(dist, 'lib', 'session', 'index.js')], 'run npm run build first (npm test does)');

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

const HUB_POINTS = ['session-mid-bag', 'session-after-commit', 'session-before-ack', 'session-after-ack', 'session-sender-mid-bag', 'session-sender-after-ack', 'session-sender-after-remove'];

function ledgerJobs(root: string, peer: string): string[] {
  let text: string;
  try {
    text = readFileSync(join(root, 'ledger', peer), 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').slice(1).filter(Boolean).flatMap((l) => (l.split(' ')[2] ?? '').split(',').filter(Boolean));
}

describe.skipIf(!built)('audit11: the hub killed at each named point, the kill itself checked', () => {
  for (const point of HUB_POINTS) {
    it(`hub killed at ${point}: it died of SIGKILL there; after a new sync nothing is lost or stored twice`, async () => {
      const t = tempDir('audit11-kill');
      cleanups.push(t.remove);
      const hub = await makeSite(t.dir, 'hub');
      const home = await makeSite(t.dir, 'home');
      writeFileSync(join(t.dir, 'hub.toml'), `site = "hub"\nspool = ${JSON.stringify(hub.root)}\n[peers.home]\naccept = ["rmail"]\n`);
      writeFileSync(join(t.dir, 'home.toml'), `site = "home"\nspool = ${JSON.stringify(home.root)}\n[peers.hub]\nkeepalive = "2s"\n`);
      const noise = (): Buffer[] => Array.from({ length: 40 }, () => randomBytes(8000));
      const down = await enqueue(hub, 'home', [...messages([800, 5000, 20000], 21), ...noise(), randomBytes(700_000)]);
      const up = await enqueue(home, 'hub', [...messages([1500, 9000], 22), ...noise(), randomBytes(500_000)]);
      const script = writeSyncDriver(t.dir);
      const status = join(t.dir, 'far-status');
      const sync = (fault?: string): { status: number | null; err: string } => {
        const serve = [process.execPath, bin, 'serve', '--peer', 'home', '--no-run', '--config', join(t.dir, 'hub.toml')];
        // the far side under sh, which writes how it ended ($? is 137 for SIGKILL)
        const far = ['env', ...(fault ? [`MAILBAG_FAULT=${fault}`] : ['-u', 'MAILBAG_FAULT']), 'sh', '-c', `"$@"; echo $? > ${status}`, 'sh', ...serve];
        const env = { ...process.env };
        delete env.MAILBAG_FAULT;
        const r = spawnSync(process.execPath, [script, join(t.dir, 'home.toml'), 'hub', ...far], { env, encoding: 'utf8', timeout: 60_000 });
        return { status: r.status, err: r.stderr };
      };
      const first = sync(point);
      // the far shell may write its line a moment after the link closed
      for (let i = 0; i < 50 && !existsSync(status); i++) await new Promise((r) => setTimeout(r, 100));
      expect(readFileSync(status, 'utf8').trim(), `sync ${first.status}: ${first.err}`).toBe('137');
      let last = sync();
      for (let i = 0; i < 5 && last.status !== 0 && /locked|another session/.test(last.err); i++) {
        await new Promise((r) => setTimeout(r, 500));
        last = sync();
      }
      expect(last.status, last.err).toBe(0);
      expect(ids(home, 'in', 'hub')).toEqual([...down.keys()].sort());
      expect(ids(hub, 'in', 'home')).toEqual([...up.keys()].sort());
      expect(ids(hub, 'out', 'home')).toEqual([]);
      expect(ids(home, 'out', 'hub')).toEqual([]);
      for (const [id, p] of down) expect(payloadOf(home, 'in', 'hub', id).equals(p)).toBe(true);
      for (const [id, p] of up) expect(payloadOf(hub, 'in', 'home', id).equals(p)).toBe(true);
      expect(ledgerJobs(home.root, 'hub').sort()).toEqual([...down.keys()].sort());
      expect(ledgerJobs(hub.root, 'home').sort()).toEqual([...up.keys()].sort());
    }, 120_000);
  }
});
