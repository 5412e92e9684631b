// A temp site for runner tests: a spool, a configuration whose sendmail is the fake
// one (test/fixtures/fake-sendmail), and helpers to queue received jobs and read what
// the fake sendmail was given.

import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { CliIo } from '../../../lib/cli/io.js';
import { loadConfig, type Config } from '../../../lib/config/index.js';
import { newJobId, type JobHeader } from '../../../lib/job/index.js';
import { Spool } from '../../../lib/spool/index.js';

export const FAKE_SENDMAIL = resolve(fileURLToPath(new URL('../../fixtures/fake-sendmail', import.meta.url)));

export interface Site {
  dir: string;
  calls: string;
  config: Config;
  spool: Spool;
  env: NodeJS.ProcessEnv;
  /** queue a received job in in/hub */
  receive(h: Partial<JobHeader> & { command: string }, payload: string | Buffer): Promise<string>;
  /** the fake sendmail calls so far: argv and stdin, in order */
  sendmailCalls(): { argv: string[]; stdin: Buffer }[];
  cleanup(): void;
}

export async function makeSite(opts: { toml?: string; exits?: string; flavour?: string } = {}): Promise<Site> {
  const dir = mkdtempSync(join(tmpdir(), 'mailbag-runner-'));
  const calls = join(dir, 'calls');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(calls);
  const file = join(dir, 'mailbag.toml');
  writeFileSync(file, [
    'site = "home"',
    `spool = "${join(dir, 'spool')}"`,
    '[delivery]',
    'method = "sendmail"',
    `sendmail = "${FAKE_SENDMAIL}"`,
    'concurrency = 2',
    '[peers.hub]',
    'transport = "command"',
    'command = ["true"]',
    opts.toml ?? '',
  ].join('\n'));
  const config = loadConfig({ path: file, env: {} });
  const spool = await Spool.open(config.spool, { create: true });
  const env = { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: opts.exits ?? '0', FAKE_SENDMAIL_FLAVOUR: opts.flavour ?? 'postfix' };
  return {
    dir,
    calls,
    config,
    spool,
    env,
    async receive(h, payload) {
      const header: JobHeader = {
        id: newJobId(),
        from: 'hub',
        to: 'home',
        created: new Date().toISOString(),
        args: [],
        sender: '',
        recipients: [],
        ...h,
      };
      await spool.writeJob('in', 'hub', header, Buffer.from(payload));
      return header.id;
    },
    sendmailCalls() {
      const n = readdirSync(calls).filter((f) => f.endsWith('.argv')).length;
      const out = [];
      for (let i = 1; i <= n; i++) {
        out.push({
          argv: readFileSync(join(calls, `${i}.argv`), 'utf8').split('\n').slice(0, -1),
          stdin: readFileSync(join(calls, `${i}.stdin`)),
        });
      }
      return out;
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const MESSAGE = 'From: a@x.example\nTo: r@y.example\nSubject: hello\n\nbody line\n.leading dot\nFrom inside body\n';
export const RMAIL_PAYLOAD = `From a!b!user  Sun Nov 22 04:10:00 2026 remote from c\n${MESSAGE}`;

/** A command's main run in-process on site `s` (its mailbag.toml): the exit code and stdout. */
export async function cliCommand(main: (argv: string[], io: CliIo) => Promise<number>, s: Site, argv: string[], config = join(s.dir, 'mailbag.toml')): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const o: Buffer[] = [];
  const e: Buffer[] = [];
  out.on('data', (c: Buffer) => o.push(c));
  err.on('data', (c: Buffer) => e.push(c));
  const code = await main(['--config', config, ...argv], { stdin: Readable.from([]), stdout: out, stderr: err, env: s.env, cwd: s.dir, isTTY: false });
  return { code, out: Buffer.concat(o).toString(), err: Buffer.concat(e).toString() };
}
