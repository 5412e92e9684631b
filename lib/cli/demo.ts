// `mailbag demo` (what `npm start` runs): with no configuration, two sites — hub and
// home — under the checkout's spool/demo/ (made fresh each run), an embedded SSH server
// on 127.0.0.1 standing for the hub's sshd with a forced command, a batch of messages
// queued both ways (from the shared corpus when it is there, read in place from its
// tarballs; else generated), one `sync` from home, and what crossed.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ssh2 from 'ssh2';
import tar from 'tar-stream';
import { defaultSpool, formatSize, loadConfig, packageRoot } from '../config/index.js';
import type { Config } from '../config/types.js';
import { formatFromLine } from '../envelope/index.js';
import { MailbagError } from '../errors.js';
import { newJobId } from '../job/id.js';
import { serveLink, syncPeer } from '../session/index.js';
import { Spool } from '../spool/spool.js';
import { generateKeyPair, startSshServer } from '../transport/server.js';
import type { CliIo } from './io.js';

const USAGE = 'usage: mailbag demo [--down N] [--up N] [--dir DIR]';

interface Message {
  name: string;
  bytes: Buffer;
}

/** Messages from one of the corpus tarballs, streamed through xz and tar-stream (never copied into the project). */
async function fromTarball(file: string, count: number): Promise<Message[]> {
  const out: Message[] = [];
  if (count <= 0) return out;
  const xz = spawn('xz', ['-dc', file], { stdio: ['ignore', 'pipe', 'ignore'] });
  const failed = new Promise<never>((_, reject) => xz.once('error', reject));
  const extract = tar.extract();
  const reading = (async () => {
    for await (const entry of extract) {
      if (out.length >= count || entry.header.type !== 'file') {
        entry.resume();
        if (out.length >= count) break;
        continue;
      }
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      out.push({ name: entry.header.name, bytes: Buffer.concat(chunks) });
    }
  })();
  xz.stdout.pipe(extract);
  try {
    await Promise.race([reading, failed]);
  } finally {
    xz.stdout.unpipe(extract);
    xz.kill('SIGTERM');
  }
  return out;
}

/** Generated messages of mail-like sizes, when there is no corpus. */
function generated(count: number, seed: number): Message[] {
  let x = seed;
  const rnd = (): number => (x = (x * 1103515245 + 12345) & 0x7fffffff);
  const words = 'the mail must go through store and forward over ssh bags resume hub home spool queue link slow'.split(' ');
  return Array.from({ length: count }, (_, i) => {
    const size = 2000 + (rnd() % 20000);
    const body: string[] = [];
    let len = 0;
    while (len < size) {
      const w = words[rnd() % words.length]!;
      body.push(w);
      len += w.length + 1;
    }
    const text = `From: sender${i}@example.org\nTo: me@example.net\nSubject: demo message ${seed}-${i}\nMessage-ID: <${seed}.${i}@demo.example>\n\n${body.join(' ').replace(/(.{1,72})( |$)/g, '$1\n')}`;
    return { name: `generated.${seed}.${i}`, bytes: Buffer.from(text) };
  });
}

async function enqueueAll(spool: Spool, from: string, to: string, messages: Message[], recipient: string): Promise<number> {
  let bytes = 0;
  const date = new Date();
  for (const m of messages) {
    const sender = `list-owner@${from}.example`;
    const payload = Buffer.concat([Buffer.from(formatFromLine({ sender, date, remoteFrom: from })), m.bytes]);
    await spool.writeJob('out', to, {
      id: newJobId(),
      from,
      to,
      created: date.toISOString(),
      command: 'rmail',
      args: [recipient],
      sender,
      recipients: [recipient],
    }, payload, { maxSize: 64 * 1024 * 1024 });
    bytes += m.bytes.length;
  }
  return bytes;
}

/**
 * An ed25519 key pair that ssh2 can read back: its generator strips a leading zero byte
 * of the public key about once in 256 keys (mscdex/ssh2 issues 1390 and 1513).
 */
function soundKeyPair(comment: string): { privateKey: string; publicKey: string } {
  for (let i = 0; ; i++) {
    const k = generateKeyPair(comment);
    const ok = !(ssh2.utils.parseKey(k.privateKey) instanceof Error) && !(ssh2.utils.parseKey(k.publicKey) instanceof Error);
    if (ok || i >= 20) return k;
  }
}

/** What a demo makes in its directory: the only names it removes again. */
const DEMO_NAMES = new Set(['hub', 'home', 'hub.toml', 'home.toml', 'home_id_ed25519', 'home_known_hosts']);

/**
 * The demo removes its directory and makes it again: refuse one that holds anything it
 * did not make (`--dir /var/spool/mailbag` would have taken the real spool with it).
 */
async function refuseForeign(base: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(base);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    throw new MailbagError('usage', `${base} ${code === 'ENOTDIR' ? 'is not a directory' : `cannot be read (${String(code ?? err)})`}: name an empty or new directory with --dir (${USAGE})`, { cause: err });
  }
  const foreign = names.filter((n) => !DEMO_NAMES.has(n)).sort();
  if (foreign.length > 0) {
    throw new MailbagError('usage', `${base} holds ${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', …' : ''}, which the demo did not make (it removes its directory and makes it again): name an empty or new directory with --dir (${USAGE})`);
  }
}

function toml(s: string): string {
  return JSON.stringify(s);
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  let down = 600;
  let up = 150;
  let dir: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const num = (): number => {
      const n = Number(argv[++i]);
      if (!Number.isSafeInteger(n) || n < 0 || n > 20000) throw new MailbagError('usage', `${a} needs a count from 0 to 20000 (${USAGE})`);
      return n;
    };
    if (a === '--down') down = num();
    else if (a === '--up') up = num();
    else if (a === '--dir') {
      dir = argv[++i];
      // an empty DIR would be the current directory, removed with all in it
      if (!dir) throw new MailbagError('usage', `--dir needs a DIR (${USAGE})`);
    }
    else if (a === '--config' || a.startsWith('--config=')) {
      if (a === '--config') i++;
      // the demo never reads a configuration: it makes its own two
    } else if (a === '--help' || a === '-h') {
      io.stdout.write(`${USAGE}\n`);
      return 0;
    } else throw new MailbagError('usage', `unexpected argument ${JSON.stringify(a)} (${USAGE})`);
  }
  const started = Date.now();
  // a checkout's spool/demo (npm start); an installed package has no spool of its own
  // (defaultSpool, 7a6bfc1) and may not be writable: a new directory under $TMPDIR there
  const base = dir
    ? resolve(io.cwd, dir)
    : defaultSpool() !== undefined
      ? join(packageRoot(), 'spool', 'demo')
      : await mkdtemp(join(tmpdir(), 'mailbag-demo-'));
  await refuseForeign(base);
  await rm(base, { recursive: true, force: true });
  await mkdir(base, { recursive: true, mode: 0o700 });
  const hubRoot = join(base, 'hub');
  const homeRoot = join(base, 'home');
  const hubSpool = await Spool.open(hubRoot, { create: true });
  const homeSpool = await Spool.open(homeRoot, { create: true });

  // the hub's sshd: home's key with a forced `mailbag serve --peer home`
  const homeKey = soundKeyPair('home@demo');
  const keyFile = join(base, 'home_id_ed25519');
  await writeFile(keyFile, homeKey.privateKey, { mode: 0o600 });
  let hubConfig: Config | undefined;
  const served: Promise<unknown>[] = [];
  const server = await startSshServer({
    hostKeys: [soundKeyPair('hub-host@demo').privateKey],
    authorizedKeys: [{ key: homeKey.publicKey, peer: 'home' }],
    onExec: async ({ peer, link }) => {
      const run = serveLink({ config: hubConfig!, peer, link });
      served.push(run.catch(() => undefined));
      await run;
      return 0;
    },
  });
  try {
    const knownHosts = join(base, 'home_known_hosts');
    await writeFile(knownHosts, `${server.knownHostsLine}\n`, { mode: 0o600 });
    const hubFile = join(base, 'hub.toml');
    const homeFile = join(base, 'home.toml');
    await writeFile(hubFile, `site = "hub"\nspool = ${toml(hubRoot)}\n\n[peers.home]\naccept = ["rmail", "rsmtp"]\n`, { mode: 0o600 });
    await writeFile(
      homeFile,
      `site = "home"\nspool = ${toml(homeRoot)}\n\n[peers.hub]\ntransport = "ssh"\nhost = "127.0.0.1"\nport = ${server.port}\nuser = "mailbag"\n` +
        `identity = ${toml(keyFile)}\nknown_hosts = ${toml(knownHosts)}\nremote_command = "mailbag serve --peer home"\naccept = ["rmail", "rsmtp"]\n`,
      { mode: 0o600 },
    );
    hubConfig = loadConfig({ path: hubFile, env: {}, cwd: base });
    const homeConfig = loadConfig({ path: homeFile, env: {}, cwd: base });

    // the mail: the shared corpus read in place when it is there
    const corpus = io.env.MAILBAG_CORPUS ?? resolve(packageRoot(), '..', 'shared', 'corpus');
    let source = 'generated messages';
    let downMsgs: Message[];
    let upMsgs: Message[];
    if (existsSync(join(corpus, 'bulk.tar.xz'))) {
      try {
        const bulk = await fromTarball(join(corpus, 'bulk.tar.xz'), down + up);
        const large = existsSync(join(corpus, 'large.tar.xz')) && down > 0 ? await fromTarball(join(corpus, 'large.tar.xz'), 3) : [];
        downMsgs = [...bulk.slice(0, Math.max(0, down - large.length)), ...large];
        upMsgs = bulk.slice(down, down + up);
        source = `the shared corpus (${corpus})`;
      } catch {
        downMsgs = generated(down, 1);
        upMsgs = generated(up, 2);
      }
    } else {
      downMsgs = generated(down, 1);
      upMsgs = generated(up, 2);
    }
    const t0 = Date.now();
    const downBytes = await enqueueAll(hubSpool, 'hub', 'home', downMsgs, 'me@home.example');
    const upBytes = await enqueueAll(homeSpool, 'home', 'hub', upMsgs, 'friend@world.example');
    const enqueueMs = Date.now() - t0;

    io.stdout.write(
      `mailbag demo: two sites under ${base}\n` +
        `  hub:  an embedded SSH server on ${server.host}:${server.port}, home's key forced to "mailbag serve --peer home"\n` +
        `  home: dials the hub with ssh2 (key ${keyFile}, host key checked against ${knownHosts})\n` +
        `queued from ${source} in ${(enqueueMs / 1000).toFixed(1)} s:\n` +
        `  hub -> home  ${downMsgs.length} messages, ${formatSize(downBytes)}\n` +
        `  home -> hub  ${upMsgs.length} messages, ${formatSize(upBytes)}\n` +
        `mailbag sync hub (from home): one SSH session, both directions...\n`,
    );
    const t1 = Date.now();
    const r = await syncPeer({ config: homeConfig, peer: 'hub' });
    const syncMs = Date.now() - t1;
    await Promise.all(served);

    const arrivedHome = (await homeSpool.listJobs('in', 'hub')).length;
    const arrivedHub = (await hubSpool.listJobs('in', 'home')).length;
    const leftHub = (await hubSpool.listJobs('out', 'home')).length;
    const leftHome = (await homeSpool.listJobs('out', 'hub')).length;
    const wire = r.wire.in + r.wire.out;
    const mail = downBytes + upBytes;
    io.stdout.write(
      `  hub -> home  ${r.received.jobs} jobs in ${r.received.bags} bags (${formatSize(r.received.bytes)} of bags for ${formatSize(downBytes)} of mail)\n` +
        `  home -> hub  ${r.sent.jobs} jobs in ${r.sent.bags} bags (${formatSize(r.sent.bytes)} of bags for ${formatSize(upBytes)} of mail)\n` +
        `  on the wire: ${formatSize(r.wire.in)} in, ${formatSize(r.wire.out)} out = ${formatSize(wire)}, ${((100 * wire) / Math.max(1, mail)).toFixed(1)}% of the ${formatSize(mail)} of mail\n` +
        `  time: ${(syncMs / 1000).toFixed(2)} s for the session, ${((Date.now() - started) / 1000).toFixed(1)} s in all\n` +
        `result: home's in/hub holds ${arrivedHome} jobs, hub's in/home holds ${arrivedHub}; out queues left: hub ${leftHub}, home ${leftHome}\n`,
    );
    // a second session finds nothing to do: nothing is sent twice
    const again = await syncPeer({ config: homeConfig, peer: 'hub' });
    io.stdout.write(`a second sync: ${again.sent.jobs + again.received.jobs} jobs moved, ${formatSize(again.wire.in + again.wire.out)} on the wire\n`);
    const ok = arrivedHome === downMsgs.length && arrivedHub === upMsgs.length && leftHub === 0 && leftHome === 0 && r.drained;
    io.stdout.write(ok ? 'every message crossed exactly once.\n' : 'NOT everything crossed: see above.\n');
    return ok ? 0 : 70;
  } finally {
    await server.close();
  }
}
