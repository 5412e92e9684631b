// `mailbag dispatch` after a session that failed, as mailbag sync does (lib/cli/dispatch.ts,
// lib/session/index.ts syncPeer):
// - its link cut right after this side's first ACK: the jobs it committed are handed to
//   the runner by that same dispatch (unless --no-run), which still exits 75, rather than
//   left in in/PEER/ until the next session or `mailbag run` (req-review4 #1);
// - a key the far sshd refuses: the message names this site in the forced command it
//   suggests (`--peer home`, not `--peer SITE`), and MAILBAG_TRACE shows the ssh steps
//   (req-review4 #2).
//
// dispatch runs in this process and dials hub through the command transport: a small node
// bridge between its stdio and a Unix socket of this test, whose other end is hub's
// `mailbag serve` (in this process too). The test reads the frames dispatch sends and cuts
// both ways right after its first ACK (test/helpers/ack-bridge.ts, as cut-after-commit.test.ts
// does for sync).
// The refused key: dispatch dials ssh2's embedded server, which knows another key.
import { writeFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main as dispatchMain } from '../../../lib/cli/dispatch.js';
import { syncPeer } from '../../../lib/session/index.js';
import { loadConfig } from '../../../lib/config/index.js';
import { generateKeyPair, startSshServer } from '../../../lib/transport/server.js';
import { cutLink, delivered, sink } from '../../helpers/ack-bridge.js';
import { enqueue, ids, makeSite, messages, soundKeyPair, tempDir, type Site } from '../session/sites.js';

interface Cut {
  dispatch: Promise<number>;
  serve: Promise<unknown>;
  dispatchErr: () => string;
  serveErr: () => string;
  cuts: () => number;
  server: Server;
}

/** `mailbag dispatch` at home (its only peer hub, due by its poll), cut after home's first ACK */
async function dispatchCut(dir: string, hub: Site, home: Site, flags: string[]): Promise<Cut> {
  const link = await cutLink(dir, hub, home, { watch: 'to-serve', serveArgs: ['--no-run'] });
  const dispatchErr = sink();
  const dispatch = dispatchMain(['--config', link.homeToml, '--quiet', ...flags], { stdin: new PassThrough(), stdout: new PassThrough().resume(), stderr: dispatchErr.stream, env: { PATH: process.env.PATH ?? '' }, cwd: dir, isTTY: false });
  return { server: link.server, serve: link.serve, dispatch, dispatchErr: dispatchErr.text, serveErr: link.serveErr, cuts: link.cuts };
}

describe('mailbag dispatch after a session cut after it committed', () => {
  it('delivers what it committed, then exits 75', async () => {
    const t = tempDir('dispatch-cut');
    try {
      const hub = await makeSite(t.dir, 'hub');
      const home = await makeSite(t.dir, 'home');
      const down = await enqueue(hub, 'home', messages([700, 2500], 74));
      const r = await dispatchCut(t.dir, hub, home, []);
      try {
        const [code] = await Promise.all([r.dispatch, r.serve]);
        expect(r.cuts()).toBe(1);
        expect(code, r.dispatchErr()).toBe(75);
        // the session's failure is said, as before
        expect(r.dispatchErr()).toMatch(/^4\.\d\.\d hub: /m);
        // committed by home, and delivered by that same dispatch
        expect(ids(home, 'in', 'hub'), r.dispatchErr()).toEqual([]);
        expect(delivered(t.dir)).toHaveLength(down.size);
      } finally {
        await new Promise((res) => r.server.close(res));
      }
    } finally {
      t.remove();
    }
  }, 60_000);

  it('with --no-run leaves them in in/PEER/ and exits 75', async () => {
    const t = tempDir('dispatch-cut-norun');
    try {
      const hub = await makeSite(t.dir, 'hub');
      const home = await makeSite(t.dir, 'home');
      await enqueue(hub, 'home', messages([900, 1800], 75));
      const r = await dispatchCut(t.dir, hub, home, ['--no-run']);
      try {
        const [code] = await Promise.all([r.dispatch, r.serve]);
        expect(r.cuts()).toBe(1);
        expect(code, r.dispatchErr()).toBe(75);
        // the first bag was committed (its ACK went out), nothing was delivered
        expect(ids(home, 'in', 'hub').length, r.dispatchErr()).toBeGreaterThan(0);
        expect(delivered(t.dir)).toEqual([]);
      } finally {
        await new Promise((res) => r.server.close(res));
      }
    } finally {
      t.remove();
    }
  }, 60_000);
});

describe('mailbag dispatch with a key the far side refuses', () => {
  it("names this site as the far side's --peer, and traces the ssh steps with MAILBAG_TRACE", async () => {
    const t = tempDir('dispatch-refused');
    const authorized = generateKeyPair('authorized');
    const server = await startSshServer({
      hostKeys: [soundKeyPair('hub-host').privateKey],
      authorizedKeys: [{ key: authorized.publicKey, peer: 'home' }],
      onExec: () => Promise.resolve(1),
    });
    try {
      const home = await makeSite(t.dir, 'home');
      const key = join(t.dir, 'id_stranger');
      writeFileSync(key, generateKeyPair('stranger').privateKey, { mode: 0o600 });
      const kh = join(t.dir, 'known_hosts');
      writeFileSync(kh, `${server.knownHostsLine}\n`, { mode: 0o600 });
      const toml = join(t.dir, 'home.toml');
      writeFileSync(
        toml,
        `site = "home"\nspool = ${JSON.stringify(home.root)}\n[peers.hub]\nhost = "127.0.0.1"\nport = ${server.port}\nuser = "mailbag"\n` +
          `identity = ${JSON.stringify(key)}\nknown_hosts = ${JSON.stringify(kh)}\nconnect_timeout = "10s"\n`,
      );
      const err = sink();
      const code = await dispatchMain(['--config', toml, '--quiet'], {
        stdin: new PassThrough(),
        stdout: new PassThrough().resume(),
        stderr: err.stream,
        env: { PATH: process.env.PATH ?? '', MAILBAG_TRACE: '1' },
        cwd: t.dir,
        isTTY: false,
      });
      expect(code, err.text()).toBe(77); // auth: EX_NOPERM
      expect(err.text()).toContain('refused authentication');
      expect(err.text()).toContain('command="mailbag serve --peer home",restrict');
      expect(err.text()).not.toContain('--peer SITE');
      expect(err.text()).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} ssh: connecting to \\[127\\.0\\.0\\.1\\]:${server.port}$`, 'm'));
    } finally {
      await server.close();
      t.remove();
    }
  }, 60_000);
});

// A file at locks/session-PEER.lock that is not a lock no session holds: a lock of another
// version (never broken, docs/spool.md state 9) or junk too young to take over. It stops
// every session with the peer until someone removes it, so dispatch must say so and fail
// (75), not report the peer skipped because 'another session with hub is running' and
// exit 0 (with --quiet: nothing at all), every time, while the peer's mail waits.
describe('mailbag dispatch over a session lock file that is not a lock', () => {
  async function homeWithHub(dir: string): Promise<{ toml: string; lockFile: string; home: Site }> {
    const home = await makeSite(dir, 'home');
    const toml = join(dir, 'home.toml');
    // never dialed: the session lock comes first
    writeFileSync(toml, `site = "home"\nspool = ${JSON.stringify(home.root)}\n[peers.hub]\ntransport = "command"\ncommand = ${JSON.stringify([process.execPath, '-e', 'process.exit(3)'])}\n`);
    return { toml, lockFile: join(home.root, 'locks', 'session-hub.lock'), home };
  }
  const dispatch = async (toml: string, dir: string): Promise<{ code: number; err: string; out: string }> => {
    const err = sink();
    let out = '';
    const stdout = new Writable({ write: (c: Buffer, _e, cb) => ((out += c.toString()), cb()) });
    const code = await dispatchMain(['--config', toml], { stdin: new PassThrough(), stdout, stderr: err.stream, env: { PATH: process.env.PATH ?? '' }, cwd: dir, isTTY: false });
    return { code, err: err.text(), out };
  };
  const FILES: [string, string, string][] = [
    ['a lock of another version', `mailbag-lock 2\n${JSON.stringify({ pid: 1, host: 'x', nonce: 'newer' })}\n`, 'lock file version 2 is not supported'],
    ['an empty file written just now', '', 'is not a mailbag lock file; remove it if no mailbag is running'],
  ];
  it.each(FILES)('(%s) says what the file is and exits 75; mailbag sync says the same', async (_kind, content, says) => {
    const t = tempDir('dispatch-lock-junk');
    try {
      const { toml, lockFile } = await homeWithHub(t.dir);
      writeFileSync(lockFile, content);
      const r = await dispatch(toml, t.dir);
      expect(r.code, r.err + r.out).toBe(75);
      expect(r.err).toContain(`${lockFile}`);
      expect(r.err).toContain(says);
      expect(r.out).not.toContain('skipped');
      const cfg = loadConfig({ path: toml, env: { PATH: process.env.PATH ?? '' }, cwd: t.dir });
      const e = await syncPeer({ config: cfg, peer: 'hub' }).then(() => undefined, (x: unknown) => x);
      expect(e).toMatchObject({ exitCode: 75 });
      expect((e as Error).message).toContain(says);
      expect((e as Error).message).not.toContain('another session');
    } finally {
      t.remove();
    }
  });

  it('still skips the peer, exit 0, while a live session holds the lock', async () => {
    const t = tempDir('dispatch-lock-held');
    try {
      const { toml, home } = await homeWithHub(t.dir);
      const held = await home.spool.lock('session-hub');
      try {
        const r = await dispatch(toml, t.dir);
        expect(r.code, r.err).toBe(0);
        expect(r.out).toContain('hub: skipped: another session with hub is running');
        expect(r.err).toBe('');
      } finally {
        await held.release();
      }
    } finally {
      t.remove();
    }
  });
});
