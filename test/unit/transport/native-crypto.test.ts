// ssh2 is fast only with its native crypto binding (AES-GCM and chacha20-poly1305 in
// C); without it every byte of every bag goes through slower JavaScript paths. npm
// builds it on install (package.json allowScripts); this fails when it was not built.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { expect, it } from 'vitest';

const require = createRequire(import.meta.url);

it("ssh2's native crypto binding is built and loaded", () => {
  const root = require.resolve('ssh2/package.json').replace(/package\.json$/, '');
  expect(existsSync(`${root}lib/protocol/crypto/build/Release/sshcrypto.node`)).toBe(true);
  const crypto = require('ssh2/lib/protocol/crypto.js') as { bindingAvailable: boolean };
  expect(crypto.bindingAvailable).toBe(true);
});
