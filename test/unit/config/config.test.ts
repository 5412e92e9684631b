import { mkdtempSync, mkdirSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../lib/errors.js';
import {
  defaultConfig, loadConfig, packageRoot, parseConfig, requirePeer, type Config,
} from '../../../lib/config/index.js';
import { errorOf } from './error-of.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}


describe('the example configuration', () => {
  const file = join(packageRoot(), 'docs/examples/mailbag.toml');
  const c: Config = loadConfig({ path: file, env: {} });

  it('loads every key with its type', () => {
    expect(c.file).toBe(file);
    expect(c.site).toBe('home');
    expect(c.spool).toBe('/var/spool/mailbag');
    expect(c.queueLifetimeMs).toBe(5 * 86_400_000);
    expect(c.ledgerRetentionMs).toBe(14 * 86_400_000);
    expect(c.limits).toEqual({
      maxMessageSize: 64 * 1024 ** 2, maxRecipients: 1000, maxBagSize: 256 * 1024 ** 2,
      maxBagExpanded: 1024 ** 3, maxJobsPerBag: 10000,
    });
    expect(c.delivery).toEqual({
      method: 'sendmail', sendmail: '/usr/sbin/sendmail', mta: 'auto',
      smtp: { host: '127.0.0.1', port: 25 }, lmtp: undefined, concurrency: 4,
    });
    expect(c.lmtp).toEqual({
      socket: '/var/spool/mailbag/lmtp.sock', socketMode: 0o660, listen: undefined,
      maxRecipients: 100, maxConnections: 20, defaultPeer: 'hub',
    });
    expect(Object.keys(c.peers)).toEqual(['hub']);
    expect(c.peers.hub).toEqual({
      name: 'hub', transport: 'ssh', host: 'hub.example.org', port: 22, user: 'mailbag',
      identity: '/etc/mailbag/id_ed25519', agent: false, knownHosts: '/etc/mailbag/known_hosts',
      remoteCommand: 'mailbag serve --peer home', command: undefined,
      connectTimeoutMs: 30_000, keepaliveMs: 15_000, pollMs: 15 * 60_000, codec: 'zstd',
      accept: ['rmail', 'rsmtp', 'rnews'], domains: ['example.org'], addresses: ['me@example.net'],
      actions: { rnews: ['/usr/bin/rnews'] },
    });
  });
});

describe('defaults', () => {
  it('without a file: the checkout spool, the host name, every default', () => {
    const c = defaultConfig();
    expect(c.file).toBeUndefined();
    expect(c.spool).toBe(join(packageRoot(), 'spool'));
    expect(c.site).toMatch(/^[a-z0-9][a-z0-9-]*$/);
    expect(c.limits.maxMessageSize).toBe(64 * 1024 ** 2);
    expect(c.delivery.method).toBe('sendmail');
    expect(c.lmtp.socket).toBe(join(packageRoot(), 'spool', 'lmtp.sock'));
    expect(Object.keys(c.peers)).toEqual([]);
  });

  it('a minimal peer gets every default', () => {
    const c = parseConfig('site = "home"\n[peers.hub]\nhost = "h.example"\n', '/etc/m/m.toml');
    const p = c.peers.hub!;
    expect(p).toMatchObject({
      transport: 'ssh', port: 22, user: 'mailbag', agent: false, identity: undefined,
      remoteCommand: 'mailbag serve --peer home', codec: 'zstd', accept: ['rmail', 'rsmtp'],
      domains: [], addresses: [], pollMs: 900_000, connectTimeoutMs: 30_000, keepaliveMs: 15_000,
    });
    expect(p.knownHosts).toMatch(/\.ssh\/known_hosts$/);
  });

  it('a peer with only a command has transport command', () => {
    const c = parseConfig('[peers.hub]\ncommand = ["ssh", "hub", "mailbag", "serve"]\n', '/m.toml');
    expect(c.peers.hub!.transport).toBe('command');
    expect(c.peers.hub!.command).toEqual(['ssh', 'hub', 'mailbag', 'serve']);
  });

  it('peers is a null-prototype map: inherited names are not peers', () => {
    const c = parseConfig('', '/m.toml');
    expect(c.peers.constructor).toBeUndefined();
    expect(() => requirePeer(c, 'constructor')).toThrow(/unknown peer "constructor"/);
  });
});

describe('relative paths', () => {
  it('resolve against the file\'s directory; the LMTP socket against the spool', () => {
    const c = parseConfig([
      'spool = "q"',
      '[delivery]', 'sendmail = "bin/sendmail"', 'method = "lmtp"', 'lmtp = "run/lmtp"',
      '[lmtp]', 'socket = "s/l.sock"', 'socket_mode = 0o600', 'listen = "[::1]:2424"',
      '[peers.hub]', 'identity = "id"', 'known_hosts = "kh"',
    ].join('\n'), '/etc/mb/mailbag.toml');
    expect(c.spool).toBe('/etc/mb/q');
    expect(c.delivery.sendmail).toBe('/etc/mb/bin/sendmail');
    expect(c.delivery.lmtp).toEqual({ path: '/etc/mb/run/lmtp' });
    expect(c.lmtp.socket).toBe('/etc/mb/q/s/l.sock');
    expect(c.lmtp.socketMode).toBe(0o600);
    expect(c.lmtp.listen).toEqual({ host: '::1', port: 2424 });
    expect(c.peers.hub!.identity).toBe('/etc/mb/id');
    expect(c.peers.hub!.knownHosts).toBe('/etc/mb/kh');
  });

  it('an LMTP host:port stays a TCP endpoint', () => {
    const c = parseConfig('[delivery]\nmethod = "lmtp"\nlmtp = "localhost:24"\n', '/m.toml');
    expect(c.delivery.lmtp).toEqual({ host: 'localhost', port: 24 });
  });
});

describe('durations and sizes', () => {
  it.each([
    ['queue_lifetime = "90s"', (c: Config) => c.queueLifetimeMs, 90_000],
    ['queue_lifetime = "1.5h"', (c: Config) => c.queueLifetimeMs, 5_400_000],
    ['queue_lifetime = "2w"', (c: Config) => c.queueLifetimeMs, 14 * 86_400_000],
    ['queue_lifetime = "250ms"', (c: Config) => c.queueLifetimeMs, 250],
    ['[limits]\nmax_message_size = 1000', (c: Config) => c.limits.maxMessageSize, 1000],
    ['[limits]\nmax_message_size = "10K"', (c: Config) => c.limits.maxMessageSize, 10240],
    ['[limits]\nmax_message_size = "2MiB"', (c: Config) => c.limits.maxMessageSize, 2 * 1024 ** 2],
    ['[limits]\nmax_bag_expanded = "2g"', (c: Config) => c.limits.maxBagExpanded, 2 * 1024 ** 3],
  ])('%s', (text, get, want) => {
    expect(get(parseConfig(text, '/m.toml'))).toBe(want);
  });
});

describe('every error names the file, the key and what is wrong', () => {
  it.each([
    ['site = 3', 'site', /must be a string, not an integer/],
    ['site = "Home"', 'site', /not a valid site name/],
    ['sitex = "a"', 'sitex', /unknown key \(known here: .*site/],
    ['spool = ""', 'spool', /must not be empty/],
    ['queue_lifetime = 5', 'queue_lifetime', /duration string/],
    ['queue_lifetime = "5 days"', 'queue_lifetime', /not a duration/],
    ['queue_lifetime = "0s"', 'queue_lifetime', /longer than zero/],
    ['ledger_retention = "x"', 'ledger_retention', /not a duration/],
    ['limits = 3', 'limits', /must be a table/],
    ['[limits]\nmax_message_size = "5Q"', 'limits.max_message_size', /not a size/],
    ['[limits]\nmax_message_size = true', 'limits.max_message_size', /must be a size/],
    ['[limits]\nmax_message_size = "8T"', 'limits.max_message_size', /at most/],
    ['[limits]\nmax_recipients = 0', 'limits.max_recipients', /between 1 and/],
    ['[limits]\nmax_recipients = 1.5', 'limits.max_recipients', /must be an integer, not a float/],
    ['[limits]\nmax_recipients = 1001', 'limits.max_recipients', /between 1 and 1000/],
    ['[limits]\nmax_bag_size = "0"', 'limits.max_bag_size', /larger than zero/],
    ['[limits]\nmax_jobs_per_bag = "10"', 'limits.max_jobs_per_bag', /must be an integer, not a string/],
    ['[limits]\nmax_jobs = 1', 'limits.max_jobs', /unknown key/],
    ['[delivery]\nmethod = "pigeon"', 'delivery.method', /one of "sendmail", "smtp", "lmtp"/],
    ['[delivery]\nmta = "qmail"', 'delivery.mta', /one of/],
    ['[delivery]\nsmtp = "localhost"', 'delivery.smtp', /not host:port/],
    ['[delivery]\nsmtp = "h:99999"', 'delivery.smtp', /not host:port/],
    ['[delivery]\nmethod = "lmtp"', 'delivery.lmtp', /required when method = "lmtp"/],
    ['[delivery]\nconcurrency = 0', 'delivery.concurrency', /between 1 and 256/],
    ['[delivery]\nsendmail = ["x"]', 'delivery.sendmail', /must be a string, not an array/],
    ['[lmtp]\nsocket_mode = "rw"', 'lmtp.socket_mode', /octal mode/],
    ['[lmtp]\nsocket_mode = 4095', 'lmtp.socket_mode', /octal mode/],
    ['[lmtp]\nlisten = "2424"', 'lmtp.listen', /not host:port/],
    ['[lmtp]\nmax_connections = -1', 'lmtp.max_connections', /between/],
    ['[lmtp]\ndefault_peer = "hub"', 'lmtp.default_peer', /no \[peers.hub\]/],
    ['[lmtp]\nsock = "x"', 'lmtp.sock', /unknown key/],
    ['peers = 1', 'peers', /must be a table/],
    ['[peers.Hub]', 'peers.Hub', /not a valid peer name/],
    ['[peers]\nhub = "x"', 'peers.hub', /must be a table/],
    ['[peers.hub]\nport = "x"', 'peers.hub.port', /must be an integer, not a string/],
    ['[peers.hub]\nport = 70000', 'peers.hub.port', /between 1 and 65535/],
    ['[peers.hub]\nhost = ""', 'peers.hub.host', /must not be empty/],
    ['[peers.hub]\nhost = "a b"', 'peers.hub.host', /not a host name/],
    ['[peers.hub]\nuser = ""', 'peers.hub.user', /not a user name/],
    ['[peers.hub]\nagent = "yes"', 'peers.hub.agent', /true or false/],
    ['[peers.hub]\ntransport = "uucp"', 'peers.hub.transport', /one of "ssh", "command"/],
    ['[peers.hub]\ntransport = "command"', 'peers.hub.command', /required when transport = "command"/],
    ['[peers.hub]\ntransport = "ssh"\ncommand = ["ssh"]', 'peers.hub.command', /only with transport = "command"/],
    ['[peers.hub]\ncommand = []', 'peers.hub.command', /must name a program/],
    ['[peers.hub]\ncommand = ["ssh", 3]', 'peers.hub.command', /item 2 is an integer/],
    ['[peers.hub]\ncommand = "ssh hub"', 'peers.hub.command', /array of strings, not a string/],
    ['[peers.hub]\nremote_command = " "', 'peers.hub.remote_command', /must not be empty/],
    ['[peers.hub]\npoll = "often"', 'peers.hub.poll', /not a duration/],
    ['[peers.hub]\nconnect_timeout = 30', 'peers.hub.connect_timeout', /duration string/],
    ['[peers.hub]\nkeepalive = "-1s"', 'peers.hub.keepalive', /not a duration/],
    ['[peers.hub]\ncodec = "zip"', 'peers.hub.codec', /one of "zstd", "br", "gzip", "none"/],
    ['[peers.hub]\naccept = ["rnews"]', 'peers.hub.accept', /neither rmail, rsmtp nor defined in \[peers.hub.actions\]/],
    ['[peers.hub]\ndomains = ["a b"]', 'peers.hub.domains', /not a domain/],
    ['[peers.hub]\naddresses = ["nobody"]', 'peers.hub.addresses', /not an address/],
    ['[peers.hub]\nidentity = 1', 'peers.hub.identity', /must be a string/],
    ['[peers.hub]\nhots = "x"', 'peers.hub.hots', /unknown key \(known here: .*host/],
    ['[peers.hub.actions]\nrnews = []', 'peers.hub.actions.rnews', /non-empty argv/],
    ['[peers.hub.actions]\nrnews = "/usr/bin/rnews"', 'peers.hub.actions.rnews', /array of strings/],
    ['[peers.hub.actions]\n"Bad Name" = ["/bin/true"]', 'peers.hub.actions.Bad Name', /not a valid command name/],
  ])('%s → %s', (text, key, what) => {
    const e = errorOf(text);
    expect(e.file).toBe('/etc/x/m.toml');
    expect(e.key).toBe(key);
    expect(e.message).toMatch(/^\/etc\/x\/m\.toml: /);
    expect(e.message).toContain(`: ${key}: `);
    expect(e.message).toMatch(what);
    expect(e.code).toBe('config');
    expect(e.exitCode).toBe(75);
  });

  it('a TOML syntax error names the file, the line and the column', () => {
    const e = errorOf('site = "a"\nx = [\n');
    expect(e.file).toBe('/etc/x/m.toml');
    expect(e.message).toMatch(/^\/etc\/x\/m\.toml: not valid TOML: line \d+, column \d+: /);
    expect(e.message).not.toContain('\n');
  });
});

describe('search order', () => {
  const a = write('a.toml', 'site = "from-flag"\n');
  const b = write('b.toml', 'site = "from-env"\n');
  const sys = write('sys.toml', 'site = "from-system"\n');
  const missing = join(dir, 'missing.toml');

  it('--config beats $MAILBAG_CONFIG beats the system file', () => {
    expect(loadConfig({ path: a, env: { MAILBAG_CONFIG: b }, systemFile: sys }).site).toBe('from-flag');
    expect(loadConfig({ env: { MAILBAG_CONFIG: b }, systemFile: sys }).site).toBe('from-env');
    expect(loadConfig({ env: {}, systemFile: sys }).site).toBe('from-system');
    expect(loadConfig({ env: { MAILBAG_CONFIG: '' }, systemFile: sys }).site).toBe('from-system');
  });

  it('without any file: built-in defaults', () => {
    const c = loadConfig({ env: {}, systemFile: missing });
    expect(c.file).toBeUndefined();
    expect(c.spool).toBe(join(packageRoot(), 'spool'));
  });

  it('a relative --config or $MAILBAG_CONFIG is relative to cwd', () => {
    expect(loadConfig({ path: 'a.toml', cwd: dir, env: {}, systemFile: missing }).file).toBe(a);
    expect(loadConfig({ env: { MAILBAG_CONFIG: 'b.toml' }, cwd: dir, systemFile: missing }).file).toBe(b);
  });

  it('a named file that is missing is an error, never a silent fallback', () => {
    for (const opts of [{ path: missing, env: {} }, { env: { MAILBAG_CONFIG: missing } }]) {
      expect(() => loadConfig({ ...opts, systemFile: sys })).toThrow(`${missing}: cannot read the configuration file: no such file`);
    }
  });

  it('a system file that exists but cannot be read is an error', () => {
    const sub = join(dir, 'unreadable');
    mkdirSync(sub);
    const f = write('unreadable/m.toml', 'site = "x"\n');
    chmodSync(sub, 0o000);
    try {
      if (process.getuid?.() === 0) {
        // root reads anything: a directory in the file's place gives the same refusal
        expect(() => loadConfig({ env: {}, systemFile: dir })).toThrow(new RegExp(`^${dir}: cannot read the configuration file: it is a directory$`));
      } else {
        expect(() => loadConfig({ env: {}, systemFile: f })).toThrow(/permission denied/);
      }
    } finally {
      chmodSync(sub, 0o700);
    }
  });
});

describe('requirePeer', () => {
  it('an unknown peer says which file to add [peers.NAME] to, and is temporary', () => {
    const c = parseConfig('[peers.hub]\n', '/etc/mailbag/mailbag.toml');
    expect(requirePeer(c, 'hub').name).toBe('hub');
    try {
      requirePeer(c, 'backup');
      throw new Error('no error');
    } catch (err) {
      const e = err as ConfigError;
      expect(e.code).toBe('unknown-peer');
      expect(e.exitCode).toBe(75);
      expect(e.message).toBe('unknown peer "backup": add a [peers.backup] section to /etc/mailbag/mailbag.toml (configured peers: hub)');
    }
  });

  it('without a file it says where a file is looked for', () => {
    expect(() => requirePeer(defaultConfig(), 'hub')).toThrow(/no configuration file was found \(--config, \$MAILBAG_CONFIG, \/etc\/mailbag\/mailbag.toml\); create one with a \[peers.hub\] section/);
  });
});
