import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PeerConfig } from '../../../lib/config/types.js';
import { commandTransport, type Link } from '../../../lib/transport/index.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-cmd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function readAll(link: Link): Promise<string> {
  let s = '';
  for await (const c of link.input) s += String(c);
  return s;
}

/** a stand-in for ssh(1): prints what ssh prints on a failure and exits 255 */
function fakeSsh(message: string): string {
  const d = mkdtempSync(join(dir, 'bin-'));
  const p = join(d, 'ssh');
  writeFileSync(p, `#!/bin/sh\necho '${message}' >&2\nexit 255\n`);
  chmodSync(p, 0o755);
  return p;
}

describe('command transport', () => {
  it('talks to the child over stdin/stdout, no shell', async () => {
    const link = await commandTransport({ argv: ['cat'] }).connect();
    const got = readAll(link);
    link.output.end('through cat; $(not expanded)');
    expect(await got).toBe('through cat; $(not expanded)');
    expect(await link.done).toMatchObject({ ok: true, exitCode: 0 });
    expect(link.describe()).toBe('cat');
  });

  it('passes arguments as they are', async () => {
    const link = await commandTransport({ argv: ['printf', '%s|', 'a b', '$HOME', '*'] }).connect();
    link.output.end();
    expect(await readAll(link)).toBe('a b|$HOME|*|');
  });

  it('maps a non-zero exit with its stderr', async () => {
    const link = await commandTransport({ argv: ['sh', '-c', 'echo "4.3.0 spool not writable" >&2; exit 75'] }).connect();
    link.output.end();
    await readAll(link);
    const end = await link.done;
    expect(end.ok).toBe(false);
    expect(end.exitCode).toBe(75);
    expect(end.stderr).toBe('4.3.0 spool not writable');
    expect(end.error?.code).toBe('peer-refused');
    expect(end.error?.message).toContain('4.3.0 spool not writable');
  });

  it('refuses a program that does not exist', async () => {
    await expect(commandTransport({ argv: [join(dir, 'no-such-ssh')] }).connect()).rejects.toMatchObject({ code: 'config' });
  });

  it.each([
    ['Host key verification failed.', 'host-key'],
    ['mailbag@hub: Permission denied (publickey).', 'auth'],
    ['ssh: connect to host hub port 22: Connection refused', 'unreachable'],
    ['ssh: connect to host hub port 22: Connection timed out', 'timeout'],
  ])('reads ssh exit 255 "%s" as %s', async (message, code) => {
    const link = await commandTransport({ argv: [fakeSsh(message), 'hub', 'mailbag', 'serve'] }).connect();
    link.output.end();
    await readAll(link);
    const end = await link.done;
    expect(end.error?.code).toBe(code);
    expect(end.error?.message).toContain(message);
  });

  it('abort() kills the child', async () => {
    const link = await commandTransport({ argv: ['sleep', '30'] }).connect();
    link.abort(new Error('dead link'));
    const end = await link.done;
    expect(end.ok).toBe(false);
    expect(end.signal).toBe('SIGTERM');
    expect(end.error?.message).toContain('dead link');
  });

  it('traces the spawn with the child pid (MAILBAG_TRACE), given through transportForPeer', async () => {
    const { transportForPeer } = await import('../../../lib/transport/index.js');
    const lines: string[] = [];
    const peer: PeerConfig = {
      name: 'hub', transport: 'command', host: undefined, port: 22, user: 'mailbag', identity: undefined, agent: false, knownHosts: join(dir, 'known_hosts'),
      remoteCommand: 'mailbag serve --peer home', command: ['cat'], connectTimeoutMs: 5000, keepaliveMs: 1000, pollMs: 60_000, codec: 'br', accept: ['rmail'], domains: [], addresses: [], actions: {},
    };
    const link = await (await transportForPeer(peer, process.env, (l) => lines.push(l))).connect();
    link.output.end('x');
    expect(await readAll(link)).toBe('x');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^command: cat spawned \(pid [1-9]\d*\)$/);
    // no trace function: no line, and the link works as before
    const quiet = await commandTransport({ argv: ['cat'] }).connect();
    quiet.output.end('y');
    expect(await readAll(quiet)).toBe('y');
  });

  it('close() ends stdin and waits for the child', async () => {
    const link = await commandTransport({ argv: ['sh', '-c', 'cat >/dev/null; echo bye'] }).connect();
    const got = readAll(link);
    const end = await link.close();
    expect(end.ok).toBe(true);
    expect(await got).toBe('bye\n');
  });
});
