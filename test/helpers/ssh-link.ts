// What the ssh transport tests share, against the embedded server (test/unit/transport/
// ssh.test.ts) and against a real OpenSSH sshd (test/integration/ssh-sshd.test.ts): files
// only their owner may read, a round trip over a link, and a connection that must fail.
// Their SshOptions stay in each file: the key, known_hosts and timeouts differ on purpose.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { SessionError } from '../../lib/errors.js';
import { sshTransport, type Link, type SshOptions } from '../../lib/transport/index.js';

/** A writer of mode-0600 files (keys, known_hosts) in dir: (name, text) → the file's path. */
export function privateFileIn(dir: string): (name: string, text: string) => string {
  return (name, text) => {
    const p = join(dir, name);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
}

/** Send data on the link, close its output, and return everything that came back. */
export async function roundTrip(link: Link, data: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const reading = (async () => {
    for await (const c of link.input) chunks.push(c as Buffer);
  })();
  link.output.end(data);
  await reading;
  return Buffer.concat(chunks);
}

/** Connect with o, which must fail with a SessionError; returns it. */
export async function refused(o: SshOptions): Promise<SessionError> {
  try {
    const link = await sshTransport(o).connect();
    await link.close();
  } catch (err) {
    expect(err).toBeInstanceOf(SessionError);
    return err as SessionError;
  }
  throw new Error('connected');
}
