// delivery.method = "lmtp": an LMTP server that answers the first recipient after the
// data and then loses the connection (Dovecot's lmtp killed, a restart) has delivered to
// that recipient. The client threw its answer away with the link: every recipient of the
// transaction was "temporary", and the retry delivered the message to the first one
// again (DESIGN.md promise 2). A raw LMTP server on a unix socket, in this process.
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { runJobs } from '../../../lib/runner/runner.js';
import { makeSite, MESSAGE, type Site } from './helpers.js';

const RMAIL_PAYLOAD = `From user@x.example  Sun Nov 22 04:10:00 2026\n${MESSAGE}`;

let site: Site | undefined;
let srv: Server | undefined;
const open = new Set<Socket>();
afterEach(async () => {
  for (const s of open) s.destroy();
  await new Promise<void>((r) => (srv ? srv.close(() => r()) : r()));
  site?.cleanup();
  site = srv = undefined;
});

/** An LMTP server; `cut`: after the data, answer only the first recipient, then close. Returns the deliveries (recipients answered 250). */
function lmtpServer(sock: string, cut: () => boolean): Promise<string[]> {
  const delivered: string[] = [];
  srv = createServer((c) => {
    open.add(c);
    c.on('close', () => open.delete(c));
    c.on('error', () => undefined);
    let buf = '';
    let inData = false;
    let rcpts: string[] = [];
    c.write('220 test LMTP\r\n');
    c.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) return;
          buf = buf.slice(end + 5);
          inData = false;
          if (cut()) {
            delivered.push(rcpts[0]!);
            c.end(`250 2.0.0 <${rcpts[0]}> delivered\r\n`);
            c.destroy();
            return;
          }
          for (const r of rcpts) {
            delivered.push(r);
            c.write(`250 2.0.0 <${r}> delivered\r\n`);
          }
          rcpts = [];
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'LHLO') c.write('250 test\r\n');
        else if (verb === 'MAIL') {
          rcpts = [];
          c.write('250 2.1.0 ok\r\n');
        } else if (verb === 'RCPT') {
          rcpts.push(/<([^>]*)>/.exec(line)![1]!);
          c.write('250 2.1.5 ok\r\n');
        } else if (verb === 'DATA') {
          inData = true;
          c.write('354 go on\r\n');
        } else if (verb === 'QUIT') c.end('221 bye\r\n');
        else if (verb === 'RSET') c.write('250 ok\r\n');
        else c.write('500 what\r\n');
      }
    });
  });
  return new Promise((r) => srv!.listen(sock, () => r(delivered)));
}

it('a connection lost after the first recipient\'s 250: that recipient is delivered to once, the other at the retry', async () => {
  site = await makeSite();
  const sock = join(site.dir, 'lmtp.sock');
  let first = true;
  const delivered = await lmtpServer(sock, () => {
    const c = first;
    first = false;
    return c;
  });
  site.config.delivery.method = 'lmtp';
  site.config.delivery.lmtp = { path: sock };
  site.config.delivery.concurrency = 1;
  await site.receive({ command: 'rmail', args: ['r1@y.example', 'r2@y.example'] }, RMAIL_PAYLOAD);
  const lines: string[] = [];
  const one = await runJobs({ config: site.config, spool: site.spool, env: site.env, log: (l) => lines.push(l) });
  expect(one.retry, lines.join('\n')).toBe(1);
  expect(delivered).toEqual(['r1@y.example']);
  await runJobs({ config: site.config, spool: site.spool, env: site.env, force: true, log: (l) => lines.push(l) });
  expect(await site.spool.listJobs('in', 'hub'), lines.join('\n')).toEqual([]);
  // r1 once (before: twice, the retry sent it again), r2 at the retry
  expect(delivered).toEqual(['r1@y.example', 'r2@y.example']);
});
