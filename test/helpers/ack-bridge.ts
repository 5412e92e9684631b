// A link between two sites, home and hub, that is cut right after the receiver's first ACK:
// for tests of what a session does with the jobs it committed before its link went away
// (test/unit/transport/cut-after-commit.test.ts, dispatch-sessions.test.ts).
//
// home dials hub through the command transport: a small node bridge between its stdio and
// a Unix socket of the test, whose other end is hub's `mailbag serve --peer home` (run in
// this process). The frames of one direction are read as they pass; right after the first
// ACK's last byte both ways are cut (serve's stderr with them, as sshd's side goes away).
import { readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { main as serveMain } from '../../lib/cli/serve.js';

const ACK = 0x21;

/** the frames of one direction, read as they pass; `onAck` after the first ACK's last byte */
export function acker(onAck: () => void): (chunk: Buffer, forward: (b: Buffer) => void) => void {
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

/** a stderr that keeps its text; after gone(), a write fails as one to a closed pipe does */
export function sink(): { stream: Writable; text: () => string; gone: () => void } {
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

/** the messages the stand-in sendmail of cutLink() was given, in `dir` */
export function delivered(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith('sendmail.') && n.endsWith('.msg'));
}

export interface CutLinkOptions {
  /** whose frames are read for the receiver's ACK: home's (to serve) or serve's (to home) */
  watch: 'to-serve' | 'from-serve';
  /** a frame serve gets at the cut, before its input ends (the client's ERROR) */
  lastWord?: Buffer;
  /** more arguments for `mailbag serve` (`--no-run`) */
  serveArgs?: string[];
}

export interface CutLink {
  /** home's config: its peer hub dials through the bridge */
  homeToml: string;
  /** the Unix socket's server: close it when done */
  server: Server;
  /** hub's serve: `{ code }`, or what it threw */
  serve: Promise<unknown>;
  serveErr: () => string;
  /** links cut so far */
  cuts: () => number;
}

/**
 * writes hub.toml and home.toml in `dir` (both deliver with a stand-in sendmail that keeps
 * each message as `dir`/sendmail.PID.msg) and listens on `dir`/link.sock; hub's serve
 * starts when home dials in
 */
export async function cutLink(dir: string, hub: { root: string }, home: { root: string }, opts: CutLinkOptions): Promise<CutLink> {
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
      if (opts.lastWord) toServe.write(opts.lastWord);
      toServe.end();
      fromServe.resume();
    };
    const pass = (c: Buffer, f: (b: Buffer) => void): void => f(c);
    const up = opts.watch === 'to-serve' ? acker(cutNow) : pass;
    const down = opts.watch === 'from-serve' ? acker(cutNow) : pass;
    conn.on('error', () => {});
    conn.on('data', (c: Buffer) => !cut && up(c, (b) => toServe.write(b)));
    conn.on('end', () => !cut && toServe.end());
    fromServe.on('data', (c: Buffer) => !cut && down(c, (b) => conn.write(b)));
    serveDone(
      serveMain(['--peer', 'home', '--config', hubToml, ...(opts.serveArgs ?? [])], { stdin: toServe, stdout: fromServe, stderr: serveErr.stream, env: { PATH: process.env.PATH ?? '' }, cwd: dir, isTTY: false }).then(
        (code) => ({ code }),
        (err: unknown) => err,
      ),
    );
  });
  await new Promise<void>((r) => server.listen(sock, r));
  return { homeToml, server, serve, serveErr: serveErr.text, cuts: () => cuts };
}
