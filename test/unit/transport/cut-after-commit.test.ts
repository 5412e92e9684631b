// A session whose link is cut after the receiver committed a bag (its ACK went out, both
// BYEs never came): that same `mailbag serve` or `mailbag sync` still hands the committed
// jobs to the runner, then fails with the session's status (75), rather than leaving them
// in in/PEER/ until the next session or `mailbag run` (req-audit #1).
//
// Both commands run in this process (lib/cli/*.ts). sync dials through the command
// transport: a small node bridge between its stdio and a Unix socket of this test, whose
// other end is `mailbag serve`'s stdin/stdout. The test reads the frames going one way
// and cuts both ways right after the first ACK of the receiver.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main as serveMain } from '../../../lib/cli/serve.js';
import { main as syncMain } from '../../../lib/cli/sync.js';
import { enqueue, ids, makeSite, messages, tempDir, type Site } from '../session/sites.js';

const ACK = 0x21;

/** the frames of one direction, read as they pass; `onAck` after the first ACK's last byte */
function acker(onAck: () => void): (chunk: Buffer, forward: (b: Buffer) => void) => void {
  let head = Buffer.alloc(0);
  let left = 0;
  let isAck = false;
  let done = false;
  return (chunk, forward) => {
    if (done) return;
    let at = 0;
    while (at < chunk.length) {
      if (left > 0) {
        const n = Math.min(left, chunk.length - at);
        at += n;
        left -= n;
      } else {
        const need = 5 - head.length;
        head = Buffer.concat([head, chunk.subarray(at, at + need)]);
        at += Math.min(need, chunk.length - at);
        if (head.length < 5) break;
        isAck = head[0] === ACK;
        left = head.readUInt32BE(1);
        head = Buffer.alloc(0);
      }
      if (left === 0 && head.length === 0 && isAck) {
        // up to and with the ACK, nothing after it
        forward(chunk.subarray(0, at));
        done = true;
        onAck();
        return;
      }
    }
    forward(chunk);
  };
}

interface Run {
  serve: Promise<unknown>;
  sync: Promise<unknown>;
  serveErr: () => string;
  syncErr: () => string;
  cuts: () => number;
}

/** a stderr that keeps its text; after gone(), a write fails as one to a closed pipe does */
function sink(): { stream: Writable; text: () => string; gone: () => void } {
  let text = '';
  let gone = false;
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (gone) return cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      text += chunk.toString();
      cb();
    },
  });
  return { stream, text: () => text, gone: () => void (gone = true) };
}

/** sync home→hub through the bridge; `watch`: whose frames are read for the receiver's ACK */
/** `lastWord`: a frame serve gets at the cut, before its input ends (the client's ERROR) */
async function runCut(dir: string, hub: Site, home: Site, watch: 'serve-to-sync' | 'sync-to-serve', lastWord?: Buffer): Promise<Run & { server: Server }> {
  const fake = join(dir, 'sendmail');
  // a stand-in sendmail that keeps each message it is given
  writeFileSync(fake, `#!/bin/sh\ncat > "$0.$$.msg"\nexit 0\n`, { mode: 0o755 });
  const delivery = `[delivery]\nmethod = "sendmail"\nsendmail = ${JSON.stringify(fake)}\nmta = "sendmail"\n`;
  const hubToml = join(dir, 'hub.toml');
  writeFileSync(hubToml, `site = "hub"\nspool = ${JSON.stringify(hub.root)}\n${delivery}[peers.home]\n`);
  const sock = join(dir, 'link.sock');
  const bridge = `const s = require('net').connect(${JSON.stringify(sock)}); process.stdin.pipe(s); s.pipe(process.stdout); s.on('error', () => {}); s.on('close', () => process.exit(255)); setTimeout(() => process.exit(3), 30000).unref();`;
  const homeToml = join(dir, 'home.toml');
  writeFileSync(homeToml, `site = "home"\nspool = ${JSON.stringify(home.root)}\n${delivery}[peers.hub]\ntransport = "command"\ncommand = ${JSON.stringify([process.execPath, '-e', bridge])}\n`);
  const serveErr = sink();
  const syncErr = sink();
  let cuts = 0;
  let serveDone!: (p: Promise<unknown>) => void;
  const serve = new Promise<unknown>((r) => (serveDone = r));
  const server = createServer((conn: Socket) => {
    const toServe = new PassThrough();
    const fromServe = new PassThrough();
    let cut = false;
    const cutNow = (): void => {
      cut = true;
      cuts++;
      conn.destroy();
      // sshd's side of a cut link goes away with it: serve's stderr too
      serveErr.gone();
      if (lastWord) toServe.write(lastWord);
      toServe.end();
      fromServe.resume();
    };
    const up = watch === 'sync-to-serve' ? acker(cutNow) : (c: Buffer, f: (b: Buffer) => void) => f(c);
    const down = watch === 'serve-to-sync' ? acker(cutNow) : (c: Buffer, f: (b: Buffer) => void) => f(c);
    conn.on('error', () => {});
    conn.on('data', (c: Buffer) => !cut && up(c, (b) => toServe.write(b)));
    conn.on('end', () => !cut && toServe.end());
    fromServe.on('data', (c: Buffer) => !cut && down(c, (b) => conn.write(b)));
    serveDone(
      serveMain(['--peer', 'home', '--config', hubToml], { stdin: toServe, stdout: fromServe, stderr: serveErr.stream, env: { PATH: process.env.PATH ?? '' }, cwd: dir, isTTY: false }).then(
        (code) => ({ code }),
        (err: unknown) => err,
      ),
    );
  });
  await new Promise<void>((r) => server.listen(sock, r));
  const sync = syncMain(['hub', '--config', homeToml, '--quiet'], { stdin: new PassThrough(), stdout: new PassThrough().resume(), stderr: syncErr.stream, env: { PATH: process.env.PATH ?? '' }, cwd: dir, isTTY: false }).then(
    (code) => ({ code }),
    (err: unknown) => err,
  );
  return { server, serve, sync, serveErr: serveErr.text, syncErr: syncErr.text, cuts: () => cuts };
}

function delivered(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith('sendmail.') && n.endsWith('.msg'));
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
