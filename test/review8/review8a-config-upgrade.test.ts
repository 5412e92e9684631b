// review8a: session 8's new refusals in lib/config, read as an admin who upgrades with a
// configuration file that worked before. The front doors (enqueue, mailbag-uux), serve
// and lmtpd all load the whole file, so a refusal at load makes each exit 75 and mail
// waits in the MTA's queue (Postfix bounces it after maximal_queue_lifetime, 5 days) until
// the file is edited. Each case here is one where the loader can do better than that.
// Requested in /work/brief/req-review8a.md (owner: cfg8).
import { describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import { ConfigError } from '../../lib/errors.js';
import { parseConfig } from '../../lib/config/index.js';
import { errorOf } from '../unit/config/error-of.js';

const DAY = 86_400_000;


describe('review8a: refusals an upgrade meets', () => {
  it('queue_lifetime longer than 14d with no ledger_retention loads: the default ledger follows queue_lifetime (09b290c refused it)', () => {
    // a file that worked before session 8; nothing in it is wrong, only the default was short
    const c = parseConfig('queue_lifetime = "30d"\n[peers.hub]\nhost = "hub.example.org"\n', '/etc/mailbag/mailbag.toml');
    expect(c.queueLifetimeMs).toBe(30 * DAY);
    expect(c.ledgerRetentionMs).toBeGreaterThanOrEqual(30 * DAY);
    // the default is unchanged where queue_lifetime is shorter
    expect(parseConfig('', '/m.toml').ledgerRetentionMs).toBe(14 * DAY);
  });

  it('a command peer that still has a key of the SSH client loads (796c518 refused it at every front door)', () => {
    // the keys were ignored and mail flowed; refusing them at load stops enqueue, serve and
    // lmtpd for every peer over a leftover line
    const text = '[peers.hub]\ncommand = ["ssh", "hub", "mailbag", "serve", "--peer", "home"]\nport = 2222\nidentity = "/etc/mailbag/id_ed25519"\n';
    expect(() => parseConfig(text, '/etc/mailbag/mailbag.toml')).not.toThrow();
    expect(parseConfig(text, '/etc/mailbag/mailbag.toml').peers.hub!.transport).toBe('command');
  });

  it('spool = "~/spool" is refused naming where it was read until now (its queued jobs and ledger are there)', () => {
    // before 34b856d this spool was /etc/mailbag/~/spool and held the jobs; the advice alone
    // ("/home/mailbag/spool") points the admin at an empty spool and strands them
    const e = errorOf('spool = "~/spool"\n', '/etc/mailbag/mailbag.toml');
    expect(e.key).toBe('spool');
    expect(e.message).toContain(resolve('/etc/mailbag', '~/spool'));
  });

  it('an lmtp.socket set longer than a unix socket path is refused where it is read (lmtpd), not by every command', () => {
    // 0d31ede made the default socket under a deep spool a lazy refusal so that enqueue
    // still loads; a socket set in the file is refused at load, stopping enqueue and serve
    const long = `/run/${'x'.repeat(120)}/lmtp.sock`;
    const text = `spool = "/var/spool/mailbag"\n[lmtp]\nsocket = "${long}"\n`;
    let c: ReturnType<typeof parseConfig> | undefined;
    expect(() => {
      c = parseConfig(text, '/etc/mailbag/mailbag.toml');
    }).not.toThrow();
    expect(() => c!.lmtp.socket).toThrow(ConfigError);
  });
});
