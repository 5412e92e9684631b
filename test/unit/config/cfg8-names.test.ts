// Site and peer names name spool directories (out/PEER, in/PEER, bags/PEER.last): a name
// that could leave the spool, hide, or differ only in case is refused at load, naming the
// key. These pass today; they pin what the loader must keep refusing.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../lib/config/index.js';
import { errorOf as refusal } from './error-of.js';


const BAD = ['', '.', '..', '../etc', 'a/b', 'a\\\\b', '.hidden', '-hub', 'Hub', 'HUB', 'hub home', 'hub\\u0000', 'héb', 'a'.repeat(65)];

describe('names', () => {
  it.each(BAD)('peer %j is refused', (n) => {
    const e = refusal(`[peers."${n}"]\n`);
    expect(e.key).toBe(`peers.${JSON.parse(`"${n}"`) as string}`);
    expect(e.message).toMatch(/is not a valid peer name: use lower-case letters, digits, dots and dashes \(at most 64\), starting with a letter or digit$/);
    expect(e.exitCode).toBe(75);
  });

  it.each(BAD)('site %j is refused', (n) => {
    const e = refusal(`site = "${n}"\n`);
    expect(e.key).toBe('site');
    expect(e.message).toMatch(/is not a valid site name|must not contain a NUL byte/);
  });

  it('the same peer twice is a TOML error naming the line', () => {
    expect(refusal('[peers.hub]\nhost = "a"\n[peers.hub]\nhost = "b"\n').message).toMatch(/^\/etc\/x\/m\.toml: not valid TOML: line 3, column \d+: /);
  });

  it.each(['hub', 'home-2', 'mx.example', '0', 'a'.repeat(64)])('%j is a name', (n) => {
    expect(Object.keys(parseConfig(`site = "${n}"\n[peers."${n}"]\n`, '/m.toml').peers)).toEqual([n]);
  });
});
