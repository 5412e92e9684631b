// A private Taylor UUCP configuration for the benches that run Debian's `uux` (enqueue,
// lmtp): one system, `hub`, that is never called, so uux only queues (`uux -I CONFIG`).

import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Write it under `dir`. `owner` owns the spool, public and log directories: the user
 * uux writes them as (uucp for the set-uid binary; the calling user when -I drops it).
 */
export function taylorConfig(dir: string, nodename: string, owner?: { uid: number; gid: number }): { config: string; spool: string } {
  const spool = join(dir, 'uucp-spool');
  for (const d of [spool, join(dir, 'uucp-pub'), join(dir, 'uucp-log')]) {
    mkdirSync(d, { recursive: true });
    if (owner) chownSync(d, owner.uid, owner.gid);
  }
  const config = join(dir, 'uucp-config');
  writeFileSync(config, [
    `nodename ${nodename}`,
    `spool ${spool}`,
    `pubdir ${join(dir, 'uucp-pub')}`,
    `logfile ${join(dir, 'uucp-log/Log')}`,
    `statfile ${join(dir, 'uucp-log/Stats')}`,
    `debugfile ${join(dir, 'uucp-log/Debug')}`,
    `sysfile ${join(dir, 'uucp-sys')}`,
    `portfile ${join(dir, 'uucp-port')}`,
    `dialfile ${join(dir, 'uucp-dial')}`,
    '',
  ].join('\n'));
  writeFileSync(join(dir, 'uucp-sys'), 'system hub\ntime never\ncommands rmail rsmtp\n');
  writeFileSync(join(dir, 'uucp-port'), '');
  writeFileSync(join(dir, 'uucp-dial'), '');
  return { config, spool };
}
