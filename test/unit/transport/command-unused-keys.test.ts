// A transport = "command" peer that still has keys of the built-in SSH client (port,
// identity, … left from an ssh peer) loads — refusing them stopped every front door on
// upgrade — and mailbag sync / dispatch say at each dial that they are not used, on the
// command's informational lines (silent with --quiet, as those are).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../lib/config/index.js';
import { syncPeer } from '../../../lib/session/index.js';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('a command peer with keys of the SSH client', () => {
  it('is dialled, and the dial says which keys are not used', async () => {
    dir = mkdtempSync(join(tmpdir(), 'mb-unused-'));
    const text = `site = "home"\nspool = ${JSON.stringify(join(dir, 'spool'))}\n[peers.hub]\ncommand = ["/bin/false"]\nport = 2222\nidentity = "/etc/mailbag/id_ed25519"\n`;
    const config = parseConfig(text, join(dir, 'mailbag.toml'));
    const lines: string[] = [];
    // /bin/false ends at once: the session fails (the peer could not be reached), after the line
    await expect(syncPeer({ config, peer: 'hub', log: (l) => lines.push(l) })).rejects.toThrow();
    expect(lines).toContain('hub: not used with transport = "command": port, identity (put them in the command\'s argv or in ssh_config, and remove them from [peers.hub])');
  });

  it('without such keys nothing is said', async () => {
    dir = mkdtempSync(join(tmpdir(), 'mb-unused-'));
    const config = parseConfig(`site = "home"\nspool = ${JSON.stringify(join(dir, 'spool'))}\n[peers.hub]\ncommand = ["/bin/false"]\n`, join(dir, 'mailbag.toml'));
    const lines: string[] = [];
    await expect(syncPeer({ config, peer: 'hub', log: (l) => lines.push(l) })).rejects.toThrow();
    expect(lines.filter((l) => l.includes('not used'))).toEqual([]);
  });
});
