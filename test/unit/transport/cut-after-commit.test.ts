// A session whose link is cut after the receiver committed a bag (its ACK went out, both
// BYEs never came): that same `mailbag serve` or `mailbag sync` still hands the committed
// jobs to the runner, then fails with the session's status (75), rather than leaving them
// in in/PEER/ until the next session or `mailbag run` (req-audit #1).
//
// Both commands run in this process (lib/cli/*.ts). sync dials through the command
// transport: a small node bridge between its stdio and a Unix socket of this test, whose
// other end is `mailbag serve`'s stdin/stdout. The test reads the frames going one way
// and cuts both ways right after the first ACK of the receiver (test/helpers/ack-bridge.ts).
import { existsSync } from 'node:fs';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main as syncMain } from '../../../lib/cli/sync.js';
import { cutLink, delivered, sink } from '../../helpers/ack-bridge.js';
import { enqueue, ids, makeSite, messages, tempDir, type Site } from '../session/sites.js';

interface Run {
  serve: Promise<unknown>;
  sync: Promise<unknown>;
  serveErr: () => string;
  syncErr: () => string;
  cuts: () => number;
}

/** sync home→hub through the bridge; `watch`: whose frames are read for the receiver's ACK */
/** `lastWord`: a frame serve gets at the cut, before its input ends (the client's ERROR) */
async function runCut(dir: string, hub: Site, home: Site, watch: 'serve-to-sync' | 'sync-to-serve', lastWord?: Buffer): Promise<Run & { server: Server }> {
  const link = await cutLink(dir, hub, home, { watch: watch === 'sync-to-serve' ? 'to-serve' : 'from-serve', lastWord });
  const syncErr = sink();
  const sync = syncMain(['hub', '--config', link.homeToml, '--quiet'], { stdin: new PassThrough(), stdout: new PassThrough().resume(), stderr: syncErr.stream, env: { PATH: process.env.PATH ?? '' }, cwd: dir, isTTY: false }).then(
    (code) => ({ code }),
    (err: unknown) => err,
  );
  return { server: link.server, serve: link.serve, sync, serveErr: link.serveErr, syncErr: syncErr.text, cuts: link.cuts };
}

describe('a session cut after the receiver committed', () => {
  it('serve (the receiver) delivers what it committed, then fails with 75', async () => {
    const t = tempDir('cut-commit-serve');
    try {
      const hub = await makeSite(t.dir, 'hub');
      const home = await makeSite(t.dir, 'home');
      const up = await enqueue(home, 'hub', messages([900, 1500], 71));
      const r = await runCut(t.dir, hub, home, 'serve-to-sync');
      try {
        const [serve, sync] = await Promise.all([r.serve, r.sync]);
        expect(r.cuts()).toBe(1);
        expect(serve, r.serveErr()).toMatchObject({ exitCode: 75 });
        expect(sync, r.syncErr()).toMatchObject({ exitCode: 75 });
        // committed by hub, and delivered by that same serve
        expect(ids(hub, 'in', 'home'), r.serveErr()).toEqual([]);
        expect(delivered(t.dir)).toHaveLength(up.size);
      } finally {
        await new Promise((res) => r.server.close(res));
      }
    } finally {
      t.remove();
    }
  }, 60_000);

  it("serve delivers what it committed when the client's disk fills after its ACK (the client's ERROR spool-full)", async () => {
    const t = tempDir('cut-commit-full');
    try {
      const hub = await makeSite(t.dir, 'hub');
      const home = await makeSite(t.dir, 'home');
      const up = await enqueue(home, 'hub', messages([600, 1100], 73));
      const json = Buffer.from(JSON.stringify({ code: 'spool-full', message: 'spool: no space left on device' }));
      const error = Buffer.concat([Buffer.from([0x02, 0, 0, 0, 0]), json]);
      error.writeUInt32BE(json.length, 1);
      const r = await runCut(t.dir, hub, home, 'serve-to-sync', error);
      try {
        const [serve] = await Promise.all([r.serve, r.sync]);
        expect(r.cuts()).toBe(1);
        // the client's ERROR is the session's failure (peer-refused, 75)
        expect(serve, r.serveErr()).toMatchObject({ exitCode: 75, message: expect.stringContaining('no space left') });
        expect(ids(hub, 'in', 'home'), r.serveErr()).toEqual([]);
        expect(delivered(t.dir)).toHaveLength(up.size);
      } finally {
        await new Promise((res) => r.server.close(res));
      }
    } finally {
      t.remove();
    }
  }, 60_000);

  it('sync (the receiver) delivers what it committed, then fails with 75', async () => {
    const t = tempDir('cut-commit-sync');
    try {
      const hub = await makeSite(t.dir, 'hub');
      const home = await makeSite(t.dir, 'home');
      const down = await enqueue(hub, 'home', messages([700, 2500], 72));
      const r = await runCut(t.dir, hub, home, 'sync-to-serve');
      try {
        const [serve, sync] = await Promise.all([r.serve, r.sync]);
        expect(r.cuts()).toBe(1);
        expect(sync, r.syncErr()).toMatchObject({ exitCode: 75 });
        expect(serve, r.serveErr()).toMatchObject({ exitCode: 75 });
        expect(ids(home, 'in', 'hub'), r.syncErr()).toEqual([]);
        expect(delivered(t.dir)).toHaveLength(down.size);
        expect(existsSync(join(home.root, 'ledger', 'hub'))).toBe(true);
      } finally {
        await new Promise((res) => r.server.close(res));
      }
    } finally {
      t.remove();
    }
  }, 60_000);
});
