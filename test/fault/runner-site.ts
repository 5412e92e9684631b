// The site the runner's fault tests share: a spool with one peer (hub), the fake sendmail
// recording every call in calls/, and `mailbag run` (the built binary) run with a fault
// point (MAILBAG_FAULT) and the fake's exit codes (FAKE_SENDMAIL_EXITS).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { Spool } from '../../lib/spool/index.js';
import { mailbagBin, run, type RunResult } from '../helpers/mta-common.js';
import { FAKE_SENDMAIL } from '../unit/runner/helpers.js';

export interface RunnerSite {
  dir: string;
  calls: string;
  config: string;
  spool: Spool;
}

const dirs: string[] = [];
// registered as the test file imports this module (while vitest collects the file): a
// hook registered from inside a running test, as makeRunnerSite did, never ran, and every
// site stayed in the temp directory (90 of them after one run of the suite)
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A new site; its directory is removed after the test. */
export async function makeRunnerSite(prefix = 'mailbag-runner-fault-'): Promise<RunnerSite> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  const calls = join(dir, 'calls');
  mkdirSync(calls);
  const config = join(dir, 'mailbag.toml');
  writeFileSync(config, [
    'site = "home"', `spool = "${join(dir, 'spool')}"`,
    '[delivery]', `sendmail = "${FAKE_SENDMAIL}"`, 'mta = "sendmail"', 'concurrency = 1',
    '[peers.hub]', 'transport = "command"', 'command = ["true"]',
  ].join('\n'));
  const spool = await Spool.open(join(dir, 'spool'), { create: true });
  return { dir, calls, config, spool };
}

/** `mailbag run [args]` on site `s`, the fake sendmail exiting as `exits` says, killed at `fault` if given. */
export function runRunner(s: RunnerSite, o: { exits?: string; fault?: string; args?: string[] } = {}): Promise<RunResult> {
  return run(process.execPath, [mailbagBin, 'run', '--config', s.config, ...(o.args ?? [])], {
    env: { ...process.env, FAKE_SENDMAIL_DIR: s.calls, ...(o.exits !== undefined ? { FAKE_SENDMAIL_EXITS: o.exits } : {}), MAILBAG_FAULT: o.fault ?? '' },
    timeoutMs: 60_000,
  });
}
