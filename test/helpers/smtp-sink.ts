// An SMTP server on 127.0.0.1 (smtp-server) for the tests of the standalone rmail's SMTP
// delivery: each message taken is recorded with its envelope, and `refuse` may answer a
// recipient with a reply code and text (a 450 that holds until the test lifts it, a 550).
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface SmtpSink {
  port: number;
  /** each message taken: its sender ('' for <>), the recipients accepted for it, and MAIL's BODY= (undefined: none) */
  got: { from: string; to: string[]; body?: string }[];
  close(): Promise<void>;
}

export async function smtpSink(refuse: (rcpt: string, from: string) => [number, string] | undefined = () => undefined): Promise<SmtpSink> {
  const got: SmtpSink['got'] = [];
  const srv = new SMTPServer({
    authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], logger: false,
    onRcptTo(address, session, cb) {
      const answer = refuse(address.address, session.envelope.mailFrom ? session.envelope.mailFrom.address : '');
      if (!answer) return cb();
      const e = new Error(answer[1]) as Error & { responseCode: number };
      e.responseCode = answer[0];
      cb(e);
    },
    onData(stream, session, cb) {
      stream.resume();
      stream.on('end', () => {
        const from = session.envelope.mailFrom || undefined;
        const args = from ? (from.args as Record<string, string> | false) : false;
        got.push({ from: from ? from.address : '', to: session.envelope.rcptTo.map((r) => r.address), ...(args && args.BODY !== undefined ? { body: args.BODY } : {}) });
        cb();
      });
    },
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = ((srv as unknown as { server: { address(): AddressInfo } }).server.address()).port;
  return { port, got, close: () => new Promise<void>((r) => srv.close(() => r())) };
}
