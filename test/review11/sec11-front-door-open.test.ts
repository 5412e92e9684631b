// sec11: the front doors write into a spool every user may write, and tell the MTA 0.
// Spool.open refuses such a spool ("anyone could swap tmp/ or a queue … and read or
// replace jobs", 24bd178), but the front doors' quick path (Spool.openForQueue →
// openSetUp) looks at no mode, so `mailbag enqueue` and `mailbag-uux` queue the message,
// exit 0, and the MTA drops its copy. Seen on this machine with real users (main at
// 23cf188): spool dirs 0777, the owner's `mailbag enqueue` exit 0, then another user's
// `rm -f SPOOL/out/hub/*` removed every queued job — mail lost, while `mailbag status`
// and `mailbag sync` refuse the spool (75). The MTA keeps the mail safely when told 75.
// it.fails until req-sec11.md R3; applied: openSetUp stats root, tmp, out, out/PEER.
import { chmodSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Spool } from '../../lib/spool/index.js';
import { MAILBAG_BIN, makeSite, requireBuild, runBin, UUX_BIN, type Site } from '../unit/cli/front-door-helpers.js';

const MESSAGE = 'Subject: kept\n\nbody\n';
let site: Site;

beforeAll(async () => {
  requireBuild();
  site = makeSite();
  const spool = await Spool.open(site.spool, { create: true });
  await spool.ensureDir('out', 'hub');
});
afterAll(() => site?.cleanup());

const queued = (): string[] => readdirSync(join(site.spool, 'out', 'hub'));

describe('sec11: a front door on a spool every user may write', () => {
  it('status refuses it (the rule the front doors skip)', async () => {
    chmodSync(join(site.spool, 'out', 'hub'), 0o777);
    try {
      const r = await runBin(MAILBAG_BIN, ['status', '--config', site.config], '');
      expect(r.code).toBe(75);
      expect(r.stderr).toMatch(/every user may write .*out\/hub \(mode 0777\)/);
    } finally {
      chmodSync(join(site.spool, 'out', 'hub'), 0o700);
    }
  });

  for (const [what, dir] of [
    ['the root', ''],
    ['tmp/', 'tmp'],
    ['out/hub/', 'out/hub'],
  ] as const) {
    // req-sec11.md R3 (applied by apply11)
    it(`enqueue and mailbag-uux exit 75 and queue nothing when ${what} is 0777`, async () => {
      const d = join(site.spool, dir);
      chmodSync(d, dir === 'tmp' ? 0o1777 : 0o777);
      try {
        const before = queued().length;
        const e = await runBin(MAILBAG_BIN, ['enqueue', 'hub', '--config', site.config, '-f', 'a@b.test', '--', 'c@d.test'], MESSAGE);
        const u = await runBin(UUX_BIN, ['-', '-r', `hub!rmail`, '(c@d.test)'], `From a@b.test Mon Nov 23 06:35:49 2026\n${MESSAGE}`, { MAILBAG_CONFIG: site.config });
        expect(queued().length).toBe(before);
        expect([e.code, u.code]).toEqual([75, 75]);
        expect(e.stderr).toMatch(/every user may write/);
      } finally {
        chmodSync(d, 0o700);
      }
    });
  }
});
