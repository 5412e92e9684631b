// The SMTP/LMTP client against smtp-server (a real protocol implementation): per
// recipient results, PIPELINING, parameters passed only when advertised, LMTP's reply
// per recipient, and many messages over one connection.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { filterParams, SmtpSession } from '../../../lib/deliver/smtp-client.js';
import type { Transaction } from '../../../lib/deliver/message.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-smtpc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Got { from: string; to: string[]; body: string; mailArgs: unknown; rcptArgs: unknown[] }

async function server(opts: Partial<SMTPServerOptions>, rcptCode: (addr: string) => number | undefined, dataCode?: (to: string) => number | undefined): Promise<{ port: number; got: Got[]; close: () => Promise<void> }> {
  const got: Got[] = [];
  const srv = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    ...opts,
    onRcptTo(address, _session, cb) {
      const code = rcptCode(address.address);
      if (code) {
        const e = new Error(`${code === 450 ? '4.2.0 busy' : '5.1.1 unknown'} ${address.address}`) as Error & { responseCode: number };
        e.responseCode = code;
        cb(e);
        return;
      }
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const to = session.envelope.rcptTo.map((r) => r.address);
        got.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to, body: Buffer.concat(chunks).toString(), mailArgs: session.envelope.mailFrom ? session.envelope.mailFrom.args : undefined, rcptArgs: session.envelope.rcptTo.map((r) => r.args) });
        if (opts.lmtp && dataCode) {
          // per-recipient replies: an array of results for LMTP
          (cb as unknown as (e: null, r: (string | Error)[]) => void)(null, to.map((t) => {
            const c = dataCode(t);
            if (!c) return 'ok';
            const e = new Error('5.2.2 mailbox full') as Error & { responseCode: number };
            e.responseCode = c;
            return e;
          }));
          return;
        }
        cb();
      });
    },
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.server.address() as { port: number }).port;
  return { port, got, close: () => new Promise((r) => srv.close(() => r())) };
}

function tx(index: number, sender: string, rcpts: Array<[string, string[]]>, body: string, mailParams: string[] = []): Transaction {
  const p = join(dir, `b${index}-${Math.random()}`);
  writeFileSync(p, body);
  return { index, sender, mailParams, line: 0, recipients: rcpts.map(([address, params]) => ({ address, params })), body: { path: p, start: 0, end: undefined, stuffed: false } };
}

describe('SmtpSession', () => {
  it('answers per recipient, keeps the connection for the next message, stuffs dots and ends lines in CRLF', async () => {
    const s = await server({}, (a) => (a.startsWith('bad') ? 550 : a.startsWith('busy') ? 450 : undefined));
    try {
      const c = await SmtpSession.connect({ host: '127.0.0.1', port: s.port }, { lmtp: false, heloName: 'home' });
      expect(c.extensions.has('PIPELINING')).toBe(true);
      const r1 = await c.send(tx(0, 's@x', [['ok@y', []], ['bad@y', []], ['busy@y', []]], 'Subject: a\n\n.dot\nend'), new Set());
      expect(r1.map((r) => [r.address, r.kind, r.status])).toEqual([['ok@y', 'accepted', '2.0.0'], ['bad@y', 'permanent', '5.1.1'], ['busy@y', 'temporary', '4.2.0']]);
      const r2 = await c.send(tx(1, '', [['ok@y', []], ['ok2@y', []]], 'second\n'), new Set(['ok@y']));
      expect(r2.map((r) => r.address)).toEqual(['ok2@y']);
      const r3 = await c.send(tx(2, 's@x', [['bad@y', []]], 'third\n'), new Set());
      expect(r3[0]!.kind).toBe('permanent');
      await c.quit();
      expect(s.got.map((g) => [g.from, g.to, g.body])).toEqual([
        ['s@x', ['ok@y'], 'Subject: a\r\n\r\n.dot\r\nend\r\n'],
        ['', ['ok2@y'], 'second\r\n'],
      ]);
    } finally {
      await s.close();
    }
  });

  it('passes DSN parameters only to a server that offers DSN', async () => {
    const withDsn = await server({ hideDSN: false }, () => undefined);
    const without = await server({ hideDSN: true }, () => undefined);
    try {
      for (const srv of [withDsn, without]) {
        const c = await SmtpSession.connect({ host: '127.0.0.1', port: srv.port }, { lmtp: false, heloName: 'home' });
        const res = await c.send(tx(0, 's@x', [['a@y', ['NOTIFY=SUCCESS,FAILURE', 'ORCPT=rfc822;a@y']]], 'x\n', ['RET=HDRS', 'ENVID=e+2B1', 'AUTH=<>']), new Set());
        expect(res[0]!.kind).toBe('accepted');
        await c.quit();
      }
      expect(withDsn.got[0]!.mailArgs).toMatchObject({ RET: 'HDRS', ENVID: 'e+1' }) // smtp-server decodes the xtext we passed on;
      expect(withDsn.got[0]!.mailArgs).not.toHaveProperty('AUTH');
      expect(withDsn.got[0]!.rcptArgs[0]).toMatchObject({ NOTIFY: 'SUCCESS,FAILURE', ORCPT: 'rfc822;a@y' });
      expect(without.got[0]!.mailArgs).toBeFalsy();
    } finally {
      await withDsn.close();
      await without.close();
    }
    expect(filterParams(['SIZE=10', 'BODY=BINARYMIME', 'BODY=8BITMIME', 'X=1'], new Set(['SIZE', '8BITMIME']))).toEqual(['SIZE=10', 'BODY=8BITMIME']);
  });

  it('LMTP: one reply per accepted recipient after the data', async () => {
    const s = await server({ lmtp: true }, (a) => (a.startsWith('bad') ? 550 : undefined), (t) => (t.startsWith('full') ? 552 : undefined));
    try {
      const c = await SmtpSession.connect({ host: '127.0.0.1', port: s.port }, { lmtp: true, heloName: 'home' });
      const r = await c.send(tx(0, 's@x', [['ok@y', []], ['full@y', []], ['bad@y', []]], 'x\n'), new Set());
      expect(r.map((x) => [x.address, x.kind])).toEqual([['ok@y', 'accepted'], ['full@y', 'permanent'], ['bad@y', 'permanent']]);
      await c.quit();
    } finally {
      await s.close();
    }
  });

  it('a refused connection is a link error (temporary for the caller)', async () => {
    await expect(SmtpSession.connect({ host: '127.0.0.1', port: 1 }, { lmtp: false, heloName: 'home', commandTimeoutMs: 5000 })).rejects.toThrow(/cannot connect/);
  });
});
