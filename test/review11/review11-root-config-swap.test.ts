// review11: R6 (lib/config/index.ts checkRootsFile, 800b3a3) checks a configuration file
// by its path after it has been read by its path: readConfigFile reads the text, parseConfig
// parses it, and only then does checkRootsFile stat the file and its directory. Whoever may
// change a directory above the file (here a symbolic link `mb` in a directory uid 65534
// owns, pointing at root's own 0755 directory with root's 0644 file) flips `mb` between
// root's directory and one of their own: the text read is theirs, the file and directory
// stat()ed a moment later are root's, and root takes their configuration (their
// delivery.sendmail, a peer's command). OpenSSH, whose rule the docs cite, checks every
// directory up to / and the descriptor it reads. Seen on 6ad40b9 (load 2.5-3.8): root's
// loadConfig returned the other user's site within the first 100 loads, in 4 runs of 4.
// req-review11.md R1 applied (read the file through one descriptor and check that
// descriptor's fstat; check every directory above the file as OpenSSH's safe_path does).
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config/index.js';

const root = process.getuid?.() === 0;
const dir = mkdtempSync(join(tmpdir(), 'mailbag-review11-swap-'));

describe.runIf(root)('review11: root and a configuration file swapped under its check', () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('root never takes a file of uid 65534 while a directory above it is flipped', async () => {
    chmodSync(dir, 0o755);
    const spool = join(dir, 'spool');
    const text = (site: string): string => `site = "${site}"\nspool = "${spool}"\n[delivery]\nsendmail = "/usr/sbin/sendmail"\n`;
    // root's: directory 0755, file 0644
    const good = join(dir, 'good');
    mkdirSync(good, { mode: 0o755 });
    writeFileSync(join(good, 'm.toml'), text('rootsite'), { mode: 0o644 });
    // uid 65534's: their directory, where they keep their own file and the link
    const eve = join(dir, 'eve');
    mkdirSync(eve, { mode: 0o755 });
    const evil = join(eve, 'evil');
    mkdirSync(evil, { mode: 0o755 });
    writeFileSync(join(evil, 'm.toml'), text('theirsite'), { mode: 0o644 });
    for (const p of [eve, evil, join(evil, 'm.toml')]) chownSync(p, 65534, 65534);
    symlinkSync(good, join(eve, 'mb'));
    const file = join(eve, 'mb', 'm.toml');
    // their file on its own is refused (R6 as applied): the check itself is in place
    const linkTo = (target: string): void => {
      rmSync(join(eve, 'mb'));
      symlinkSync(target, join(eve, 'mb'));
    };
    linkTo(evil);
    expect(() => loadConfig({ path: file, systemFile: join(dir, 'none') })).toThrow(/owned by uid 65534/);
    linkTo(good);
    // the flipper: what uid 65534 may do in their own directory (an atomic rename of a link)
    const flipper = spawn(process.execPath, ['-e', `
      const fs = require('node:fs');
      const end = Date.now() + 6000;
      let n = 0;
      while (Date.now() < end) {
        const t = ${JSON.stringify(join(eve, 'mb.tmp'))};
        try { fs.unlinkSync(t); } catch {}
        fs.symlinkSync(n++ % 2 ? ${JSON.stringify(good)} : ${JSON.stringify(evil)}, t);
        fs.renameSync(t, ${JSON.stringify(join(eve, 'mb'))});
      }
    `], { stdio: 'ignore' });
    const exited = new Promise((r) => flipper.once('exit', r));
    try {
      await new Promise((r) => setTimeout(r, 300));
      let theirs = 0;
      let loads = 0;
      const until = Date.now() + 4000;
      while (Date.now() < until && theirs === 0) {
        loads++;
        try {
          if (loadConfig({ path: file, systemFile: join(dir, 'none') }).site === 'theirsite') theirs++;
        } catch {
          // refused (their file seen) or the link between two states: nothing taken
        }
      }
      // loadConfig returned their configuration to root (seen on 6ad40b9: at the 2nd load)
      expect({ theirs, loads }).toEqual({ theirs: 0, loads: expect.any(Number) });
      // and enough loads were made for a flip to fall between the read and the check
      expect(loads).toBeGreaterThan(100);
    } finally {
      flipper.kill('SIGKILL');
      await exited;
    }
  }, 30_000);
});
