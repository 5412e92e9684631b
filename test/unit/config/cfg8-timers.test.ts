// What a mail admin setting mailbag up on a new server gets wrong, and what the loader
// must say about it: one ConfigError naming the file and the key, never a value that
// is accepted and then does something else than the admin wrote.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../lib/config/index.js';
import { errorOf } from './error-of.js';


describe('durations that become timers fit in one', () => {
  // Node's timers hold at most 2^31 - 1 ms (24.8 days); a longer one fires after 1 ms
  // (TimeoutOverflowWarning): connect_timeout = "30d" made every sync fail at once with
  // "no answer within 2592000000 ms", keepalive = "30d" sent a keepalive every millisecond
  it.each(['connect_timeout', 'keepalive'])('peers.hub.%s over 24 days is refused', (key) => {
    for (const v of ['25d', '30d', '4w', '100000w']) {
      const e = errorOf(`[peers.hub]\n${key} = "${v}"\n`);
      expect(e.key).toBe(`peers.hub.${key}`);
      expect(e.message).toContain(`/etc/x/m.toml: peers.hub.${key}: `);
      expect(e.message).toMatch(/at most "24d"/);
      expect(e.exitCode).toBe(75);
    }
  });

  it.each(['connect_timeout', 'keepalive'])('peers.hub.%s of 24 days is taken', (key) => {
    const p = parseConfig(`[peers.hub]\n${key} = "24d"\n`, '/m.toml').peers.hub!;
    expect(key === 'keepalive' ? p.keepaliveMs : p.connectTimeoutMs).toBe(24 * 86_400_000);
  });

  // ssh2 cuts a link whose keepalive goes unanswered 3 times: "1ms" cut every session
  // (exit 75 at every try until the mail bounced), so it is refused at load
  it('peers.hub.keepalive under a second is refused; "1s" is taken', () => {
    for (const v of ['1ms', '10ms', '999ms']) {
      const e = errorOf(`[peers.hub]\nkeepalive = "${v}"\n`);
      expect(e.key).toBe('peers.hub.keepalive');
      expect(e.message).toMatch(/must be at least "1s"/);
      expect(e.exitCode).toBe(75);
    }
    expect(parseConfig('[peers.hub]\nkeepalive = "1s"\n', '/m.toml').peers.hub!.keepaliveMs).toBe(1000);
  });

  it('durations that are only compared keep no such cap', () => {
    const c = parseConfig('queue_lifetime = "52w"\nledger_retention = "100w"\n[peers.hub]\npoll = "8w"\n', '/m.toml');
    expect(c.queueLifetimeMs).toBe(52 * 604_800_000);
    expect(c.peers.hub!.pollMs).toBe(8 * 604_800_000);
  });
});
