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

describe('mailbag dispatch in-process with its own environment', () => {
  it('dials with the command\'s env and runs the waiting jobs with it', async () => {
    site = await makeSite();
    const mark = join(site.dir, 'mark');
    // the "peer": a transport command that writes what it finds in its env, then fails
    const toml = join(site.dir, 'mailbag.toml');
    const dialer = JSON.stringify(['sh', '-c', 'printf "%s" "${MAILBAG_TEST_MARK:-unset}" > "$0"; exit 1', mark]);
    writeFileSync(toml, readFileSync(toml, 'utf8').replace('command = ["true"]', `command = ${dialer}`));
    await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    expect(process.env.MAILBAG_TEST_MARK).toBeUndefined();
    expect(process.env.FAKE_SENDMAIL_DIR).toBeUndefined();
    site.env = { ...site.env, MAILBAG_TEST_MARK: 'from io.env' };
    const r = await cliCommand(dispatchMain, site, []);
    // the session failed (the dialer exits 1): 75, as before
    expect(r.code).toBe(75);
    expect(readFileSync(mark, 'utf8')).toBe('from io.env');
    // the run step after the failed session: the fake sendmail found its FAKE_SENDMAIL_DIR
    // in the command's env and took the job (before: it exited 2 without it, the job failed)
    expect(site.sendmailCalls().map((c) => c.argv)).toEqual([['-oi', '-f', 'c!a!b!user', '--', 'r@y.example']]);
    expect(await site.spool.listJobs('in', 'hub')).toEqual([]);
    expect(await site.spool.listJobs('failed', 'hub')).toEqual([]);
  });
});

describe('mailbag sync in-process with its own environment', () => {
  it('dials with the command\'s env and its run step delivers with it', async () => {
    site = await makeSite();
    const mark = join(site.dir, 'mark');
    const toml = join(site.dir, 'mailbag.toml');
    const dialer = JSON.stringify(['sh', '-c', 'printf "%s" "${MAILBAG_TEST_MARK:-unset}" > "$0"; exit 1', mark]);
    writeFileSync(toml, readFileSync(toml, 'utf8').replace('command = ["true"]', `command = ${dialer}`));
    await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    expect(process.env.MAILBAG_TEST_MARK).toBeUndefined();
    expect(process.env.FAKE_SENDMAIL_DIR).toBeUndefined();
    site.env = { ...site.env, MAILBAG_TEST_MARK: 'from io.env' };
    // the session fails (the dialer exits 1): sync throws it for main.ts to turn into 75
    await expect(cliCommand(syncMain, site, ['hub'])).rejects.toThrow(/session with hub broke: sh exited with status 1/);
    expect(readFileSync(mark, 'utf8')).toBe('from io.env');
    // sync's run step after the failed session: sendmail ran with the command's env
    // (before: runReceivedJobs had none, the fake sendmail exited 2, the job failed)
    expect(site.sendmailCalls().map((c) => c.argv)).toEqual([['-oi', '-f', 'c!a!b!user', '--', 'r@y.example']]);
    expect(await site.spool.listJobs('in', 'hub')).toEqual([]);
    expect(await site.spool.listJobs('failed', 'hub')).toEqual([]);
  });
});
