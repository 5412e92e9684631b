// `mailbag sync` dials its peer before it takes the session lock (lib/transport/early.ts):
// when another session holds the lock, the link it started is torn down and sync fails
// with `locked` as before, leaving no transport process behind.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { main } from '../../../lib/cli/sync.js';
import { Spool } from '../../../lib/spool/spool.js';
import { makeSite, tempDir } from '../session/sites.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('mailbag sync dials early', () => {
  it('a link started while another session holds the lock is torn down; sync fails with locked', async () => {
    const t = tempDir('early-sync');
    try {
      const home = await makeSite(t.dir, 'home');
      const marker = join(t.dir, 'far.pid');
      const got = join(t.dir, 'far.in');
      // the "far side": notes that it started, keeps what it is sent, ends at its stdin's end (bounded)
      const far = `const fs = require('fs'); process.stdin.on('data', (d) => fs.appendFileSync(${JSON.stringify(got)}, d)); process.stdin.on('end', () => process.exit(0)); setTimeout(() => process.exit(3), 20000);`;
      const toml = join(t.dir, 'home.toml');
      // through sh, whose pid the far node keeps (exec): the pid is there as soon as it runs
      const command = ['/bin/sh', '-c', `echo $$ > ${marker}; exec "$0" -e "$1"`, process.execPath, far];
      writeFileSync(toml, `site = "home"\nspool = ${JSON.stringify(home.root)}\n[peers.hub]\ntransport = "command"\ncommand = ${JSON.stringify(command)}\n`);
      const held = await home.spool.lock('session-hub');
      const spy = vi.spyOn(Spool, 'open');
      const stderr = new PassThrough();
      const stdout = new PassThrough();
      stdout.resume();
      stderr.resume();
      let error: unknown;
      try {
        await main(['hub', '--config', toml, '--no-run', '--quiet'], { stdin: new PassThrough(), stdout, stderr, env: { PATH: process.env.PATH ?? '' }, cwd: t.dir, isTTY: false });
      } catch (err) {
        error = err;
      } finally {
        await held.release();
      }
      const opened = spy.mock.calls.map((c) => c[0]);
      spy.mockRestore();
      expect(error).toMatchObject({ code: 'locked' });
      // one spool for the expiry and the session (each opened its own before)
      expect(opened).toEqual([home.root]);
      // a far side that was started (dialled early: when the lock is found held first, it
      // may not have been) is gone again
      if (existsSync(marker)) {
        const pid = Number(readFileSync(marker, 'utf8'));
        for (let i = 0; i < 250 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
        expect(alive(pid)).toBe(false);
      }
      // nothing was said on the link: no HELLO without the lock
      expect(existsSync(got)).toBe(false);
    } finally {
      t.remove();
    }
  });
});
