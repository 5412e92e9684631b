// fidelity10: an rmail job delivered by the SMTP or LMTP method declares an 8-bit body
// (BODY=8BITMIME, RFC 6152) when the server offers 8BITMIME and the message has a byte
// over 127; a 7-bit one is sent without. Before, rmail's transaction had no MAIL
// parameters at all, so 8-bit data went to the server undeclared. Against smtp-server
// (a real SMTP/LMTP implementation), as smtp-client.test does.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SMTPServer } from 'smtp-server';
import { Deliverer } from '../../../lib/deliver/index.js';
import { rmailTransaction } from '../../../lib/deliver/rmail.js';

const dir = mkdtempSync(join(tmpdir(), 'fidelity10-rmail8-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function server(lmtp: boolean, hide8bit = false): Promise<{ port: number; body: Array<unknown>; close: () => Promise<void> }> {
  const body: unknown[] = [];
  const srv = new SMTPServer({
    lmtp,
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    ...(hide8bit ? { hide8BITMIME: true } : {}),
    logger: false,
    onData(stream, session, cb) {
      stream.resume();
      stream.on('end', () => {
        // smtp-server's args: false when MAIL had none
        const args = session.envelope.mailFrom ? (session.envelope.mailFrom.args as Record<string, string> | false) : false;
        body.push(args ? (args.BODY ?? null) : null);
        if (lmtp) (cb as unknown as (e: null, r: string[]) => void)(null, session.envelope.rcptTo.map(() => 'ok'));
        else cb();
      });
    },
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return { port: (srv.server.address() as { port: number }).port, body, close: () => new Promise((r) => srv.close(() => r())) };
}

function job(name: string, text: Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([Buffer.from('From jo@far.example Mon Nov 23 04:00:00 2026 remote from far\n'), text]));
  return path;
}

describe('rmail by SMTP/LMTP: BODY=8BITMIME for an 8-bit body', () => {
  const eight = Buffer.concat([Buffer.from('Subject: caf'), Buffer.from([0xc3, 0xa9]), Buffer.from('\n\nna'), Buffer.from([0xc3, 0xaf]), Buffer.from('ve\n')]);
  const seven = Buffer.from('Subject: plain\n\nplain\n');
  for (const method of ['smtp', 'lmtp'] as const) {
    it(`${method}: declared for 8-bit bytes, not for 7-bit ones`, async () => {
      const s = await server(method === 'lmtp');
      try {
        const endpoint = { host: '127.0.0.1', port: s.port };
        const d = new Deliverer({ delivery: { method, sendmail: '/nonexistent', mta: 'auto', smtp: endpoint, lmtp: endpoint, concurrency: 1 } as never, env: process.env, site: 'home' });
        for (const [name, text] of [['eight', eight], ['seven', seven]] as const) {
          const { tx } = await rmailTransaction(job(`${method}-${name}`, text), 0, ['a@y']);
          const r = await d.deliver(tx, new Set());
          expect(r.map((x) => x.kind)).toEqual(['accepted']);
        }
        await d.close();
        expect(s.body).toEqual(['8BITMIME', null]);
      } finally {
        await s.close();
      }
    });
  }
  it('smtp: not declared to a server that does not offer 8BITMIME', async () => {
    const s = await server(false, true);
    try {
      const endpoint = { host: '127.0.0.1', port: s.port };
      const d = new Deliverer({ delivery: { method: 'smtp', sendmail: '/nonexistent', mta: 'auto', smtp: endpoint, lmtp: undefined, concurrency: 1 } as never, env: process.env, site: 'home' });
      const { tx } = await rmailTransaction(job('hidden', eight), 0, ['a@y']);
      expect((await d.deliver(tx, new Set())).map((x) => x.kind)).toEqual(['accepted']);
      await d.close();
      expect(s.body).toEqual([null]);
    } finally {
      await s.close();
    }
  });
});
