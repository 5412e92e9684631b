// mailbag sync and dispatch answer an operator (a shell, cron, a timer), not an MTA: issue
// 3's contract is 0 when drained, 75 when the peer could not be reached or the link broke,
// and another code with a message for configuration errors. A command line or a
// configuration to fix used to exit 75 like a peer that is down (proto9): a cron'd sync
// retried it for ever and its timer showed a temporary failure. Now 64 (usage) and 78
// (configuration); the real bins, as cron runs them.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeSite, MAILBAG_BIN, requireBuild, runBin, type Site } from './front-door-helpers.js';

let site: Site | undefined;
beforeAll(() => requireBuild());
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

function lineOf(stderr: string): string {
  return stderr.trim().split('\n').at(-1) ?? '';
}

describe('mailbag sync', () => {
  it('no peer named: 64 and the usage', async () => {
    site = makeSite();
    const r = await runBin(MAILBAG_BIN, ['sync', '--config', site.config], '');
    expect(r.code).toBe(64);
    expect(lineOf(r.stderr)).toMatch(/^4\.3\.5 mailbag sync: which peer\? \(usage: mailbag sync PEER/);
  });

  it('an unknown option: 64', async () => {
    site = makeSite();
    const r = await runBin(MAILBAG_BIN, ['sync', '--config', site.config, '--frobnicate', 'hub'], '');
    expect(r.code, r.stderr).toBe(64);
    expect(r.stderr).toMatch(/--frobnicate/);
  });

  it('a peer not in the configuration: 78, and how to add it', async () => {
    site = makeSite();
    const r = await runBin(MAILBAG_BIN, ['sync', '--config', site.config, 'nosuch'], '');
    expect(r.code).toBe(78);
    expect(lineOf(r.stderr)).toBe(`4.3.5 mailbag: unknown peer "nosuch": add a [peers.nosuch] section to ${site.config} (configured peers: hub)`);
  });

  it('a configuration file that does not load: 78, naming the file and key', async () => {
    site = makeSite();
    writeFileSync(site.config, 'site = "home"\nspool = "spool"\n[peers.hub]\nhost = "hub.example.org"\nport = "many"\n');
    const r = await runBin(MAILBAG_BIN, ['sync', '--config', site.config, 'hub'], '');
    expect(r.code).toBe(78);
    expect(lineOf(r.stderr)).toMatch(new RegExp(`^4\\.3\\.5 mailbag: ${site.config.replace(/[.]/g, '\\.')}: peers\\.hub\\.port`));
  });

  it('a transport command that is not there: 78 (a peer that is down stays 75)', async () => {
    site = makeSite('');
    writeFileSync(site.config, `site = "home"\nspool = "spool"\n[peers.hub]\ncommand = ["${join(site.dir, 'no-such-ssh')}", "hub"]\n[peers.down]\ncommand = ["/bin/sh", "-c", "echo 'ssh: connect to host down port 22: Connection refused' >&2; exit 255"]\n`);
    const missing = await runBin(MAILBAG_BIN, ['sync', '--config', site.config, 'hub'], '');
    expect(missing.code, missing.stderr).toBe(78);
    expect(lineOf(missing.stderr)).toMatch(/^4\.3\.5 .*cannot run the transport command .*no-such-ssh not found/);
    const down = await runBin(MAILBAG_BIN, ['sync', '--config', site.config, 'down'], '');
    expect(down.code, down.stderr).toBe(75);
  });
});

describe('mailbag dispatch', () => {
  it('a configuration file that does not load: 78; an unknown option: 64', async () => {
    site = makeSite();
    writeFileSync(site.config, 'site = "home"\nspool = "spool"\n[peers.hub]\nhost = "hub.example.org"\npoll = "sometimes"\n');
    const bad = await runBin(MAILBAG_BIN, ['dispatch', '--config', site.config], '');
    expect(bad.code, bad.stderr).toBe(78);
    expect(lineOf(bad.stderr)).toMatch(/^4\.3\.5 mailbag: .*peers\.hub\.poll/);
    const opt = await runBin(MAILBAG_BIN, ['dispatch', '--config', site.config, '--frobnicate'], '');
    expect(opt.code, opt.stderr).toBe(64);
  });
});
