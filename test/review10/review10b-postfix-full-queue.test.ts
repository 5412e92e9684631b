// review10b: 572cacb takes Postfix's `sendmail: fatal: …: message file too big` (exit 75) as
// final 5.3.4. Checked here that a far Postfix whose queue file system is FULL — the
// temporary condition Postfix's smtpd answers with 452 4.3.1 / 451 4.3.0 — still leaves
// the job queued for a retry, by every delivery path the runner has into Postfix
// (`sendmail` for an rmail job, `sendmail -bs` for a BSMTP job), and that the message then
// arrives once when room comes back. The full file system is real: a small tmpfs mounted on
// the far Postfix's maildrop/ (which its sendmail and postdrop write into), filled with dd.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../../lib/config/index.js';
import { newJobId, type JobHeader } from '../../lib/job/index.js';
import { listFailed } from '../../lib/runner/failed.js';
import { runJobs } from '../../lib/runner/runner.js';
import { Spool } from '../../lib/spool/index.js';
import { readMaildir, waitMaildir } from '../helpers/maildir.js';
import { havePostfix, startPostfix, type PostfixInstance } from '../helpers/postfix.js';

describe.skipIf(!havePostfix())('review10b: a far Postfix whose queue file system is full', () => {
  let pf: PostfixInstance;
  let dir: string;
  let config: Config;
  let spool: Spool;
  let maildrop: string;
  let mounted = false;

  beforeAll(async () => {
    pf = await startPostfix({ mailboxes: ['user', 'sender'] });
    maildrop = join(pf.queueDir, 'maildrop');
    const st = statSync(maildrop);
    // a real full file system where Postfix's sendmail writes: 512 KiB of tmpfs, its
    // owner and mode as Postfix made the directory, filled to the last block
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=512k,mode=${(st.mode & 0o7777).toString(8)},uid=${st.uid},gid=${st.gid}`, 'review10b-maildrop', maildrop]);
    mounted = true;
    mkdirSync(join(maildrop, '.fill'));
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${join(maildrop, '.fill', 'zeros')}`, 'bs=4k'], { stdio: 'ignore' });
    } catch {
      // dd ends with ENOSPC: the point
    }
    dir = mkdtempSync(join(tmpdir(), 'mailbag-review10b-full-'));
    const file = join(dir, 'mailbag.toml');
    writeFileSync(file, ['site = "home"', `spool = "${join(dir, 'spool')}"`, '[delivery]', 'sendmail = "/usr/sbin/sendmail"', '[peers.hub]', 'transport = "command"', 'command = ["true"]'].join('\n'));
    config = loadConfig({ path: file, env: {} });
    spool = await Spool.open(config.spool, { create: true });
  }, 120_000);

  afterAll(async () => {
    if (mounted) execFileSync('umount', ['-l', maildrop]);
    if (dir) rmSync(dir, { recursive: true, force: true });
    await pf?.stop();
  });

  const env = (): NodeJS.ProcessEnv => ({ ...process.env, MAIL_CONFIG: pf.configDir });
  // 40 KB: far below message_size_limit (default 10240000), far above the room left
  const message = (subject: string): string => `From: sender@maildir.test\nSubject: ${subject}\nMessage-ID: <${subject.replace(/\W/g, '')}@review10b.test>\n\n${`${'y'.repeat(70)}\n`.repeat(570)}`;

  it('rmail (sendmail) and BSMTP (sendmail -bs) jobs are retried, not failed; once room comes back each arrives once', async () => {
    const ids: string[] = [];
    for (const [command, payload] of [
      ['rmail', `From sender@maildir.test  Sun Nov 22 04:10:00 2026\n${message('full rmail')}`],
      ['rsmtp', `MAIL FROM:<sender@maildir.test>\nRCPT TO:<user@maildir.test>\nDATA\n${message('full bsmtp')}.\n`],
    ] as const) {
      const header: JobHeader = { id: newJobId(), from: 'hub', to: 'home', created: new Date().toISOString(), command, args: command === 'rmail' ? ['user@maildir.test'] : [], sender: 'sender@maildir.test', recipients: ['user@maildir.test'] };
      await spool.writeJob('in', 'hub', header, Buffer.from(payload, 'latin1'));
      ids.push(header.id);
    }
    const log: string[] = [];
    const s = await runJobs({ config, spool, env: env(), log: (l) => log.push(l) });
    expect(s, log.join('\n')).toEqual({ done: 0, retry: 2, failed: 0, skipped: 0 });
    expect(await listFailed(spool)).toEqual([]);
    // room again: the retry delivers each once, and nobody was told of a failure
    rmSync(join(maildrop, '.fill'), { recursive: true, force: true });
    const again = await runJobs({ config, spool, env: env(), force: true, log: (l) => log.push(l) });
    expect(again, log.join('\n')).toEqual({ done: 2, retry: 0, failed: 0, skipped: 0 });
    await pf.waitQueueEmpty(60_000);
    const got = await waitMaildir(pf.maildir('user'), 2, 30_000);
    expect(got.map((m) => m.header('subject')).sort()).toEqual(['full bsmtp', 'full rmail']);
    expect(readMaildir(pf.maildir('sender'))).toEqual([]);
  }, 120_000);
});
