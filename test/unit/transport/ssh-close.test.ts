// close() must not depend on the session having read the far side's last bytes.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateKeyPair, sshTransport, startSshServer, type SshServerHandle } from '../../../lib/transport/index.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-ssh-close-'));
const key = generateKeyPair('home');
let server: SshServerHandle;

beforeAll(async () => {
  server = await startSshServer({
    authorizedKeys: [{ key: key.publicKey, peer: 'home' }],
    onExec: async ({ link }) => {
      // a last word the client never reads, then wait for the client's EOF
      link.output.write(Buffer.alloc(300_000, 0x42));
      link.input.resume();
      await new Promise((r) => link.input.once('end', r));
      return 0;
    },
  });
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

it('close() finishes promptly even when the far side wrote bytes nobody read', async () => {
  const known = join(dir, 'known_hosts');
  writeFileSync(known, `${server.knownHostsLine}\n`);
  const link = await sshTransport({ host: '127.0.0.1', port: server.port, user: 'u', privateKey: key.privateKey, knownHosts: known, remoteCommand: 'serve' }).connect();
  const end = await link.close();
  // ok: the link ended by itself; a link torn down after close()'s grace period is not ok
  expect(end).toMatchObject({ ok: true, exitCode: 0, error: undefined });
});
