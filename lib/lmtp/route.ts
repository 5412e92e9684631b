// Which peer an LMTP recipient goes to, from the configuration: an exact address
// (`peers.NAME.addresses`) wins over a domain (`peers.NAME.domains`, the longest
// match wins; an entry written ".example.org" also covers every subdomain), and the
// domain over `lmtp.default_peer`. Pure: no I/O, the same answer for the same input.

import { ConfigError } from '../errors.js';

export interface RoutingPeer {
  name: string;
  domains: readonly string[];
  addresses: readonly string[];
}

export interface RoutingInput {
  peers: Record<string, RoutingPeer>;
  defaultPeer?: string | undefined;
  /** names the configuration file in conflicts */
  file?: string | undefined;
}

export type Route = { ok: true; peer: string; by: 'address' | 'domain' | 'default' } | { ok: false; reason: string };

export interface Router {
  route(address: string): Route;
}

/** Lower-case the domain (and the local part: routing is not mailbox identity). */
function addressKey(address: string): string {
  return address.toLowerCase();
}

/** Build a router; two peers claiming the same address or domain is a ConfigError. */
export function buildRouter(input: RoutingInput): Router {
  const byAddress = new Map<string, string>();
  const byDomain = new Map<string, string>();
  const names = Object.keys(input.peers).sort();
  for (const name of names) {
    const peer = input.peers[name]!;
    for (const a of peer.addresses) {
      const key = addressKey(a);
      const other = byAddress.get(key);
      if (other !== undefined && other !== name) {
        throw new ConfigError(`address "${a}" is routed to both peers "${other}" and "${name}"`, {
          file: input.file,
          key: `peers.${name}.addresses`,
        });
      }
      byAddress.set(key, name);
    }
    for (const d of peer.domains) {
      const key = d.toLowerCase().replace(/\.$/, '');
      const other = byDomain.get(key);
      if (other !== undefined && other !== name) {
        throw new ConfigError(`domain "${d}" is routed to both peers "${other}" and "${name}"`, {
          file: input.file,
          key: `peers.${name}.domains`,
        });
      }
      byDomain.set(key, name);
    }
  }
  const defaultPeer = input.defaultPeer;
  return {
    route(address: string): Route {
      const at = address.lastIndexOf('@');
      const peerForAddress = byAddress.get(addressKey(address));
      if (peerForAddress !== undefined) return { ok: true, peer: peerForAddress, by: 'address' };
      if (at > 0) {
        const domain = address.slice(at + 1).toLowerCase().replace(/\.$/, '');
        const exact = byDomain.get(domain);
        if (exact !== undefined) return { ok: true, peer: exact, by: 'domain' };
        // ".example.org" entries: try the longest parent first
        let rest = domain;
        for (;;) {
          const dot = rest.indexOf('.');
          if (dot < 0) break;
          rest = rest.slice(dot + 1);
          const parent = byDomain.get(`.${rest}`);
          if (parent !== undefined) return { ok: true, peer: parent, by: 'domain' };
        }
        // a ".example.org" entry also covers example.org itself
        const self = byDomain.get(`.${domain}`);
        if (self !== undefined) return { ok: true, peer: self, by: 'domain' };
      }
      if (defaultPeer !== undefined) return { ok: true, peer: defaultPeer, by: 'default' };
      return {
        ok: false,
        reason: at > 0
          ? `no peer takes mail for ${address.slice(at + 1)} (not in any peers.NAME.domains or addresses, and no lmtp.default_peer)`
          : `no peer takes mail for ${address} (no domain, and no lmtp.default_peer)`,
      };
    },
  };
}
