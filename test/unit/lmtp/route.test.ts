import { describe, expect, it } from 'vitest';
import { buildRouter } from '../../../lib/lmtp/route.js';
import { ConfigError } from '../../../lib/errors.js';

const peers = {
  hub: { name: 'hub', domains: ['example.org', '.corp.example'], addresses: ['boss@example.net'] },
  backup: { name: 'backup', domains: ['example.net', 'mail.corp.example'], addresses: ['ops@example.org'] },
};

describe('LMTP routing', () => {
  const r = buildRouter({ peers });
  it('routes by address first, then domain, case-insensitively', () => {
    expect(r.route('ops@example.org')).toEqual({ ok: true, peer: 'backup', by: 'address' });
    expect(r.route('OPS@Example.ORG')).toEqual({ ok: true, peer: 'backup', by: 'address' });
    expect(r.route('boss@EXAMPLE.net')).toEqual({ ok: true, peer: 'hub', by: 'address' });
    expect(r.route('anyone@example.org')).toEqual({ ok: true, peer: 'hub', by: 'domain' });
    expect(r.route('anyone@example.net.')).toEqual({ ok: true, peer: 'backup', by: 'domain' });
  });
  it('a ".domain" entry covers the domain and its subdomains; an exact entry wins over it', () => {
    expect(r.route('a@corp.example')).toMatchObject({ peer: 'hub' });
    expect(r.route('a@x.y.corp.example')).toMatchObject({ peer: 'hub' });
    expect(r.route('a@mail.corp.example')).toMatchObject({ peer: 'backup' });
    expect(r.route('a@sub.example.org').ok).toBe(false); // "example.org" is exact only
  });
  it('refuses with a reason, or uses the default peer', () => {
    const no = r.route('x@elsewhere.test');
    expect(no.ok).toBe(false);
    if (!no.ok) expect(no.reason).toMatch(/no peer takes mail for elsewhere\.test/);
    expect(r.route('postmaster').ok).toBe(false);
    const d = buildRouter({ peers, defaultPeer: 'hub' });
    expect(d.route('x@elsewhere.test')).toEqual({ ok: true, peer: 'hub', by: 'default' });
    expect(d.route('postmaster')).toEqual({ ok: true, peer: 'hub', by: 'default' });
  });
  it('two peers claiming one domain or address is a configuration error naming the key', () => {
    expect(() => buildRouter({
      peers: { a: { name: 'a', domains: ['x.test'], addresses: [] }, b: { name: 'b', domains: ['X.test'], addresses: [] } },
      file: '/etc/mailbag/mailbag.toml',
    })).toThrow(ConfigError);
    expect(() => buildRouter({
      peers: { a: { name: 'a', domains: [], addresses: ['u@x.test'] }, b: { name: 'b', domains: [], addresses: ['U@x.test'] } },
    })).toThrow(/peers\.b\.addresses: address "U@x.test" is routed to both peers "a" and "b"/);
  });
});
