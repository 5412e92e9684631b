// Two `mailbag run` processes at once on one real spool. The one that holds a peer's
// runner lock runs that peer's jobs, also those that came in while it ran: a killed
// session's committed jobs (docs/spool.md S7) that the other process found are not left
// in in/PEER/ for some later run, and the other one says which process has them and
// exits 0 (nothing failed: the mail is being delivered). The sendmail here holds its
// first call until the test opens a gate, so the order of the two runs is fixed.

import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { newJobId } from '../../lib/job/id.js';
import { readState, writeState } from '../../lib/runner/state.js';
import { Spool } from '../../lib/spool/spool.js';
import { mailbagBin, run, waitFor } from '../helpers/mta-common.js';
import { need } from '../helpers/need.js';
import { FAKE_SENDMAIL, RMAIL_PAYLOAD } from '../unit/runner/helpers.js';

const built = need('the built mailbag', [mailbagBin], 'run npm run build first (npm test does)');

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

const HASH = 'cd'.repeat(32);

interface World {
  dir: string;
  root: string;
  spool: Spool;
  toml: string;
  calls: string;
  gate: string;
  held: string;
  env: NodeJS.ProcessEnv;
  receive(): Promise<string>;
}

async function world(): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'mailbag-run-race-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const root = join(dir, 'spool');
  const spool = await Spool.open(root, { create: true });
  const calls = join(dir, 'calls');
  mkdirSync(calls);
  const gate = join(dir, 'gate');
  const held = join(dir, 'held');
  // the first call says so and waits for the gate (at most 20 s); every call then is the fake sendmail
  const sendmail = join(dir, 'gated-sendmail');
  writeFileSync(sendmail, `#!/bin/sh\n[ -e ${JSON.stringify(held)} ] || : > ${JSON.stringify(held)}\ni=0\nwhile [ ! -e ${JSON.stringify(gate)} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done\nexec ${JSON.stringify(FAKE_SENDMAIL)} "$@"\n`);
  chmodSync(sendmail, 0o755);
  const toml = join(dir, 'mailbag.toml');
  writeFileSync(toml, [`site = "home"`, `spool = ${JSON.stringify(root)}`, '[delivery]', `sendmail = ${JSON.stringify(sendmail)}`, 'mta = "sendmail"', 'concurrency = 1', '[peers.hub]', 'transport = "command"', 'command = ["true"]', ''].join('\n'));
  const env: NodeJS.ProcessEnv = { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0' };
  delete env.MAILBAG_FAULT;
  return {
    dir,
    root,
    spool,
    toml,
    calls,
    gate,
    held,
    env,
    async receive() {
      const id = newJobId();
      await spool.writeJob('in', 'hub', { id, from: 'hub', to: 'home', created: new Date().toISOString(), command: 'rmail', args: ['r@y.example'], sender: '', recipients: [] }, Buffer.from(RMAIL_PAYLOAD));
      return id;
    },
  };
}

/** A session killed after committing a bag of `n` jobs: they wait in bags/in/hub/HASH.d/ (S7). */
async function killedSessionLeft(w: World, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await w.receive());
  const bag = join(w.root, 'bags', 'in', 'hub', `${HASH}.d`);
  mkdirSync(bag, { recursive: true });
  for (const id of ids) renameSync(join(w.root, 'in', 'hub', id), join(bag, id));
  mkdirSync(join(w.root, 'ledger'), { recursive: true });
  writeFileSync(join(w.root, 'ledger', 'hub'), `mailbag-ledger 1\n${Date.now()} ${HASH} ${ids.join(',')}\n`);
  return ids;
}

const inQueue = (w: World): string[] => readdirSync(join(w.root, 'in', 'hub')).sort();
const sendmailCalls = (w: World): number => readdirSync(w.calls).filter((f) => f.endsWith('.argv')).length;

describe.skipIf(!built)('two mailbag run processes at once', () => {
  it('the run holding the runner lock also runs the jobs the other found moved in; the other says so and exits 0', async () => {
    const w = await world();
    await w.receive();
    // run 1 takes hub's runner lock and hands its job to the (held) sendmail
    const first = spawn(process.execPath, [mailbagBin, 'run', '--config', w.toml], { env: w.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out1: Buffer[] = [];
    const err1: Buffer[] = [];
    first.stdout.on('data', (b: Buffer) => out1.push(b));
    first.stderr.on('data', (b: Buffer) => err1.push(b));
    const exited = new Promise<number | null>((resolve) => first.on('close', (code) => resolve(code)));
    const killer = setTimeout(() => first.kill('SIGKILL'), 40_000);
    cleanups.push(() => {
      clearTimeout(killer);
      if (first.exitCode === null && first.signalCode === null) first.kill('SIGKILL');
    });
    await waitFor(() => existsSync(w.held), 20_000, 'the first run to hand its job over');

    // meanwhile a session with hub is killed after its commit, and a second run starts
    const left = await killedSessionLeft(w, 2);
    const second = await run(process.execPath, [mailbagBin, 'run', '--config', w.toml], { env: w.env, timeoutMs: 30_000 });
    const out2 = second.stdout.toString('utf8');
    expect(second.code, out2 + second.stderr).toBe(0);
    expect(out2).toMatch(/^hub: another runner is at work \(lock runner\.hub is held by pid \d+ since [^)]+\); it runs hub's jobs, also those that come in before it ends$/m);
    expect(out2).toContain('run: 0 done, 0 to retry, 0 failed, 1 skipped');
    expect(out2).not.toContain('a session is running');
    expect(second.stderr).toBe('');

    writeFileSync(w.gate, '');
    const code1 = await exited;
    const stdout1 = Buffer.concat(out1).toString('utf8');
    expect(code1, stdout1 + Buffer.concat(err1).toString('utf8')).toBe(0);
    expect(stdout1).toContain('hub: finished an earlier session: 2 received job(s) moved into in/hub/, 0 acknowledged job(s) removed from out/hub/');
    expect(stdout1).toContain('run: 3 done, 0 to retry, 0 failed, 0 skipped');
    // nothing left behind: every job delivered once, no bag left
    expect(inQueue(w)).toEqual([]);
    expect(readdirSync(join(w.root, 'bags', 'in', 'hub'))).toEqual([]);
    expect(sendmailCalls(w)).toBe(3);
    expect(left).toHaveLength(2);
    expect(readdirSync(join(w.root, 'locks'))).toEqual([]);
  }, 60_000);

  it('a job that comes in while a run holds the lock (a session\'s run step finding it taken) is run by that run before it ends', async () => {
    const w = await world();
    await w.receive();
    const first = spawn(process.execPath, [mailbagBin, 'run', '--config', w.toml], { env: w.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out1: Buffer[] = [];
    first.stdout.on('data', (b: Buffer) => out1.push(b));
    first.stderr.on('data', () => undefined);
    const exited = new Promise<number | null>((resolve) => first.on('close', (code) => resolve(code)));
    const killer = setTimeout(() => first.kill('SIGKILL'), 40_000);
    cleanups.push(() => {
      clearTimeout(killer);
      if (first.exitCode === null && first.signalCode === null) first.kill('SIGKILL');
    });
    await waitFor(() => existsSync(w.held), 20_000, 'the first run to hand its job over');
    // a session moves a job in, and its run step finds the runner lock taken
    await w.receive();
    const second = await run(process.execPath, [mailbagBin, 'run', '--config', w.toml, '--peer', 'hub'], { env: w.env, timeoutMs: 30_000 });
    expect(second.code, second.stdout.toString('utf8') + second.stderr).toBe(0);
    writeFileSync(w.gate, '');
    expect(await exited).toBe(0);
    expect(Buffer.concat(out1).toString('utf8')).toContain('run: 2 done, 0 to retry, 0 failed, 0 skipped');
    expect(inQueue(w)).toEqual([]);
    expect(sendmailCalls(w)).toBe(2);
  }, 60_000);

  it('mailbag retry while a run holds the runner lock waits for it: the run does not undo the retry (before: the run saved the job\'s failure again and moved it back to failed/)', async () => {
    const w = await world();
    // a failed job whose notice is still owed: the run sends it first, to the held sendmail
    const id = newJobId();
    await w.spool.writeJob('failed', 'hub', { id, from: 'hub', to: 'home', created: new Date().toISOString(), command: 'rmail', args: ['r@y.example'], sender: 's@x.example', recipients: ['r@y.example'] }, Buffer.from(RMAIL_PAYLOAD));
    const at = new Date().toISOString();
    await writeState(w.spool, 'hub', id, {
      attempts: 1,
      tx: { '0': { accepted: [], failed: [{ address: 'r@y.example', status: '4.4.7', diagnostic: 'x-mailbag; not delivered' }], noticed: false } },
      failed: { reason: 'not delivered within the queue lifetime (120 h)', at, status: '4.4.7', noticeSent: false },
    });
    const spawnMailbag = (args: string[]) => {
      const child = spawn(process.execPath, [mailbagBin, ...args, '--config', w.toml], { env: w.env, stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => out.push(b));
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      const killer = setTimeout(() => child.kill('SIGKILL'), 40_000);
      cleanups.push(() => {
        clearTimeout(killer);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      });
      return { exited, text: () => Buffer.concat(out).toString('utf8') };
    };
    const first = spawnMailbag(['run']);
    await waitFor(() => existsSync(w.held), 20_000, 'the run to hand the notice over');
    const retry = spawnMailbag(['retry', `hub/${id}`]);
    // the retry either is done at once (no lock: before) or waits for the run's lock
    await Promise.race([retry.exited, new Promise((r) => setTimeout(r, 1500))]);
    writeFileSync(w.gate, '');
    expect(await first.exited, first.text()).toBe(0);
    expect(await retry.exited, retry.text()).toBe(0);
    expect(retry.text()).toBe(`hub/${id} is back in in/hub; run: mailbag run --peer hub\n`);
    expect(readdirSync(join(w.root, 'failed', 'hub'))).toEqual([]);
    // back in in/hub with its failure cleared (or already delivered: the run, letting go of
    // its lock, looks at in/hub once more and may have found it there)
    if (inQueue(w).length > 0) {
      expect(inQueue(w)).toEqual([id]);
      const st = await readState(w.spool, 'hub', id);
      expect(st?.failed).toBeUndefined();
      expect(st?.retriedAt).toBeDefined();
    }
    // delivered by the next run at the latest; the notice went out once, before
    const again = await run(process.execPath, [mailbagBin, 'run', '--config', w.toml], { env: w.env, timeoutMs: 30_000 });
    expect(again.code, String(again.stderr)).toBe(0);
    expect(inQueue(w)).toEqual([]);
    expect(readdirSync(join(w.root, 'failed', 'hub'))).toEqual([]);
    expect(sendmailCalls(w)).toBe(2);
    expect(readdirSync(join(w.root, 'locks'))).toEqual([]);
  }, 60_000);
});
