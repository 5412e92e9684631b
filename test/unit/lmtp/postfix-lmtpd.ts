// The describe-level set-up of the fault tests that kill `mailbag lmtpd` under a real
// Postfix (test/fault/lmtp-kill.test.ts, lmtp-journal.test.ts): one shared directory, a
// Postfix delivering a.test and b.test over LMTP to lmtpd's socket there (a broken
// connection retried on the next queue run, which flush() starts), peers hub (a.test)
// and mx2 (b.test); every lmtpd started through it is killed at the end if still alive,
// then Postfix is stopped and the directory removed. Call inside a describe().

import { afterAll, beforeAll } from 'vitest';
import { startPostfix, type PostfixInstance } from '../../helpers/postfix.js';
import { makeSharedTempDir, removeTempDir } from '../../helpers/mta-common.js';
import { startLmtpd, type Lmtpd, type LmtpdOptions } from './lmtpd-process.js';

export interface PostfixLmtpd {
  /** the shared directory (lmtpd's spool is `dir/spool`) */
  readonly dir: string;
  readonly pf: PostfixInstance;
  /** lmtpd's socket, which Postfix's transport map names */
  readonly socket: string;
  readonly peers: { hub: string[]; mx2: string[] };
  /** start lmtpd on the shared socket (mode 0666: Postfix's lmtp client runs as postfix); `o` overrides any option */
  start(o?: Partial<LmtpdOptions>): Promise<Lmtpd>;
}

export function usePostfixLmtpd(name: string): PostfixLmtpd {
  let dir = '';
  let pf: PostfixInstance | undefined;
  const started: Lmtpd[] = [];
  const peers = { hub: ['a.test'], mx2: ['b.test'] };

  beforeAll(async () => {
    dir = makeSharedTempDir(name);
    pf = await startPostfix({
      transports: { 'a.test': `lmtp:unix:${dir}/lmtp.sock`, 'b.test': `lmtp:unix:${dir}/lmtp.sock` },
      // a broken connection is retried on the next queue run, which flush() starts
      mainCf: ['lmtp_connection_cache_on_demand = no'],
    });
  });

  afterAll(async () => {
    for (const l of started) await l.kill();
    await pf?.stop();
    if (dir) removeTempDir(dir);
  });

  return {
    get dir() {
      return dir;
    },
    get pf() {
      if (!pf) throw new Error('Postfix is not started yet (usePostfixLmtpd: use it inside the tests)');
      return pf;
    },
    get socket() {
      return `${dir}/lmtp.sock`;
    },
    peers,
    async start(o = {}) {
      const l = await startLmtpd({ dir, peers, socket: `${dir}/lmtp.sock`, socketMode: '0666', ...o });
      started.push(l);
      return l;
    },
  };
}
