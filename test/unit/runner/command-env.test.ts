// The session commands use their own environment (CliIo.env), not this process's: the
// transport command that dials the peer and the MTA commands of the run step get the env
// the command was given. Tests and embedders run commands in-process with their own env;
// before, syncPeer gave the transport process.env and runReceivedJobs gave the runner
// nothing (so process.env too): a run step's sendmail missed MAIL_CONFIG, PATH, …

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { main as dispatchMain } from '../../../lib/cli/dispatch.js';
import { main as syncMain } from '../../../lib/cli/sync.js';
import { cliCommand, makeSite, RMAIL_PAYLOAD, type Site } from './helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

/**
 * A site whose peer is a transport command that writes what it finds in its env (to the
 * returned file), then fails; a received job waits in in/hub; the command's env (not this
 * process's) carries MAILBAG_TEST_MARK and the fake sendmail's FAKE_SENDMAIL_DIR.
 */
async function siteWithMarkingDialer(): Promise<{ s: Site; mark: string }> {
  const s = await makeSite();
  site = s;
  const mark = join(s.dir, 'mark');
  const toml = join(s.dir, 'mailbag.toml');
  const dialer = JSON.stringify(['sh', '-c', 'printf "%s" "${MAILBAG_TEST_MARK:-unset}" > "$0"; exit 1', mark]);
  writeFileSync(toml, readFileSync(toml, 'utf8').replace('command = ["true"]', `command = ${dialer}`));
  await s.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
  expect(process.env.MAILBAG_TEST_MARK).toBeUndefined();
  expect(process.env.FAKE_SENDMAIL_DIR).toBeUndefined();
  s.env = { ...s.env, MAILBAG_TEST_MARK: 'from io.env' };
  return { s, mark };
}

/** The dialer saw the command's env, and the run step's sendmail took the job with it. */
async function expectRunWithCommandEnv(s: Site, mark: string): Promise<void> {
  expect(readFileSync(mark, 'utf8')).toBe('from io.env');
  // the fake sendmail found its FAKE_SENDMAIL_DIR in the command's env and took the job
  // (before: it exited 2 without it, the job failed)
  expect(s.sendmailCalls().map((c) => c.argv)).toEqual([['-oi', '-f', 'c!a!b!user', '--', 'r@y.example']]);
  expect(await s.spool.listJobs('in', 'hub')).toEqual([]);
  expect(await s.spool.listJobs('failed', 'hub')).toEqual([]);
}

describe('mailbag dispatch in-process with its own environment', () => {
  it('dials with the command\'s env and runs the waiting jobs with it', async () => {
    const { s, mark } = await siteWithMarkingDialer();
    const r = await cliCommand(dispatchMain, s, []);
    // the session failed (the dialer exits 1): 75, as before
    expect(r.code).toBe(75);
    await expectRunWithCommandEnv(s, mark);
  });
});

describe('mailbag sync in-process with its own environment', () => {
  it('dials with the command\'s env and its run step delivers with it', async () => {
    const { s, mark } = await siteWithMarkingDialer();
    // the session fails (the dialer exits 1): sync throws it for main.ts to turn into 75
    await expect(cliCommand(syncMain, s, ['hub'])).rejects.toThrow(/session with hub broke: sh exited with status 1/);
    await expectRunWithCommandEnv(s, mark);
  });
});
