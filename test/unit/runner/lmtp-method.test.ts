// The runner with delivery.method = "lmtp" over a unix socket (smtp-server in LMTP mode
// as the server): one connection for all jobs, an LMTP reply per recipient after the
// data; a recipient refused after DATA gets a notice (sent over LMTP too, from <>),
// the accepted one is never sent the message again.

import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SMTPServer } from 'smtp-server';
import { runJobs } from '../../../lib/runner/runner.js';
import { makeSite, MESSAGE, type Site } from './helpers.js';

// smtp-server insists on an @ in MAIL FROM, so no bang path here
const RMAIL_PAYLOAD = `From user@x.example  Sun Nov 22 04:10:00 2026\n${MESSAGE}`;

let site: Site | undefined;
let srv: SMTPServer | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (srv ? srv.close(() => r()) : r()));
  site?.cleanup();
  site = srv = undefined;
});

interface Got { from: string; to: string[]; body: string; session: string }

describe('runner, lmtp method', () => {
  it('delivers over one LMTP connection and answers per recipient', async () => {
    site = await makeSite();
    const sock = join(site.dir, 'lmtp.sock');
    const got: Got[] = [];
    const sessions = new Set<string>();
    srv = new SMTPServer({
      lmtp: true, authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], logger: false,
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const to = session.envelope.rcptTo.map((r) => r.address);
          sessions.add(session.id);
          got.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to, body: Buffer.concat(chunks).toString(), session: session.id });
          (cb as unknown as (e: null, r: (string | Error)[]) => void)(null, to.map((t) => {
            if (!t.startsWith('full')) return 'ok';
            const e = new Error('5.2.2 mailbox full') as Error & { responseCode: number };
            e.responseCode = 552;
            return e;
          }));
        });
      },
    });
    await new Promise<void>((r) => srv!.listen(sock, () => r()));
    site.config.delivery.method = 'lmtp';
    site.config.delivery.lmtp = { path: sock };
    site.config.delivery.concurrency = 1;
    for (let i = 0; i < 5; i++) await site.receive({ command: 'rmail', args: [`u${i}@y.example`] }, RMAIL_PAYLOAD);
    await site.receive({ command: 'rmail', args: ['ok@y.example', 'full@y.example'] }, RMAIL_PAYLOAD);
    const s = await runJobs({ config: site.config, spool: site.spool, env: site.env });
    expect(s).toEqual({ done: 5, retry: 0, failed: 1, skipped: 0 });
    expect(site.sendmailCalls()).toEqual([]); // no sendmail process at all
    const mails = got.filter((g) => g.from === 'user@x.example');
    expect(mails.map((g) => g.to)).toEqual([['u0@y.example'], ['u1@y.example'], ['u2@y.example'], ['u3@y.example'], ['u4@y.example'], ['ok@y.example', 'full@y.example']]);
    expect(mails[0]!.body).toBe(MESSAGE.replace(/\n/g, '\r\n'));
    const notices = got.filter((g) => g.from === '');
    expect(notices.map((n) => n.to)).toEqual([['user@x.example']]);
    expect(notices[0]!.body).toMatch(/Final-Recipient: rfc822; full@y\.example\r\nAction: failed\r\nStatus: 5\.2\.2/);
    // the worker kept one connection for all its jobs (the notice goes through the same one)
    expect(new Set(mails.map((m) => m.session)).size).toBe(1);
    // no retry, nothing twice
    await runJobs({ config: site.config, spool: site.spool, env: site.env, force: true });
    expect(got.filter((g) => g.to.includes('ok@y.example'))).toHaveLength(1);
  });
});
