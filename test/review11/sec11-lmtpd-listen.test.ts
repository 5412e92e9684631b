// sec11: lmtpd's TCP listener is unauthenticated (no AUTH, no STARTTLS) and queues mail
// with any envelope for the peers, which relay it to the world. docs/mailbag-lmtpd.md
// says "it listens only on a local socket and on loopback", but lmtp.listen and --listen
// take any address: "0.0.0.0:2424" (or a host name) binds every interface and makes the
// site an open relay through its hub. Seen on main at 23cf188: `mailbag lmtpd --no-socket
// --listen 0.0.0.0:0` logs "listening on 0.0.0.0:42605 … ready" (ss -ltn: 0.0.0.0:42605).
// req-sec11.md R1 (refuse a listen address that is not loopback): the configuration part
// applied by apply11 (lib/config/index.ts isLoopbackHost), the --listen part by apply11b
// (lib/cli/lmtpd.ts parseHostPort).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isLoopbackHost, parseConfig } from '../../lib/config/index.js';
import { ConfigError } from '../../lib/errors.js';
import { mailbagBin } from '../unit/lmtp/lmtpd-process.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-sec11-listen-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config = (listen: string): string => `site = "home"\nspool = "${dir}/spool"\n[lmtp]\nlisten = "${listen}"\n[peers.hub]\ndomains = ["a.test"]\n`;

function refusal(listen: string): unknown {
  try {
    parseConfig(config(listen), join(dir, 'm.toml'));
    return undefined;
  } catch (err) {
    return err;
  }
}

describe('isLoopbackHost: by the text alone, no DNS', () => {
  it.each([
    ['localhost', true],
    ['LocalHost', true],
    ['127.0.0.1', true],
    ['127.255.255.254', true],
    ['::1', true],
    ['0:0:0:0:0:0:0:1', true],
    ['0::1', true],
    ['::0:1', true],
    ['::ffff:127.0.0.1', true],
    ['::FFFF:7f00:1', true],
    ['0:0:0:0:0:ffff:127.1.2.3', true],
    ['127.0.0.01', false], // not a literal node takes: a name, resolved by listen(2)
    ['128.0.0.1', false],
    ['0.0.0.0', false],
    ['::', false],
    ['::ffff:128.0.0.1', false],
    ['::127.0.0.1', false],
    ['1::1', false],
    ['::1:1', false],
    ['fe80::1', false],
    ['192.0.2.1', false],
    ['127.0.0.1.example.org', false],
    ['localhost.example.org', false],
    ['mail.example.org', false],
    ['::1::', false],
    ['0:0:0:0:0:0:0:0:1', false],
    ['0:0:0:0:0:0:1', false],
  ])('%s: %s', (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });
});

describe('sec11: lmtpd listens on loopback only', () => {
  it('loopback addresses are taken', () => {
    for (const l of ['127.0.0.1:2424', '[::1]:2424', '127.0.0.2:2424', 'localhost:2424']) expect(refusal(l), l).toBeUndefined();
  });

  // req-sec11.md R1, the configuration part (applied by apply11)
  it('lmtp.listen on every interface or a public name is a configuration error', () => {
    for (const l of ['0.0.0.0:2424', '[::]:2424', '192.0.2.1:2424', 'mail.example.org:2424']) {
      const err = refusal(l);
      expect(err, l).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).message, l).toMatch(/loopback/);
    }
  });

  // req-sec11.md R1, the --listen part: lib/cli/lmtpd.ts parseHostPort (applied by apply11b)
  it('--listen 0.0.0.0:0 is refused at once, nothing listens', () => {
    const cfg = join(dir, 'plain.toml');
    writeFileSync(cfg, `site = "home"\nspool = "${dir}/spool2"\n[peers.hub]\ndomains = ["a.test"]\n`);
    // before R1 lmtpd started and served until the timeout's SIGKILL (spawnSync kills its own child)
    const r = spawnSync(process.execPath, [mailbagBin, 'lmtpd', '--config', cfg, '--no-socket', '--listen', '0.0.0.0:0'], { encoding: 'utf8', timeout: 8_000, killSignal: 'SIGKILL' });
    expect(r.stderr).not.toMatch(/listening on 0\.0\.0\.0/);
    expect(r.signal).toBeNull();
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/loopback/);
  });
});
