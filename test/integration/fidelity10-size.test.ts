// A message bigger than the far Postfix's message_size_limit (default 10240000, while
// mailbag's front doors take up to limits.max_message_size, default 64M): Postfix's
// sendmail refuses it with `sendmail: fatal: SENDER(UID): message file too big` and exit
// 75, which the runner took as temporary: the job was retried at every run for the whole
// queue_lifetime (5 days) before its sender heard. It is final (5.3.4, what Postfix's
// smtpd answers for the same message), the sender is told at once; through `sendmail
// -bs` (a BSMTP job) Postfix's 552 5.3.4 says the same.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig, type Config } from '../../lib/config/index.js';
import { newJobId, type JobHeader } from '../../lib/job/index.js';
import { listFailed } from '../../lib/runner/failed.js';
import { runJobs } from '../../lib/runner/runner.js';
import { Spool } from '../../lib/spool/index.js';
import { readMaildir, waitMaildir } from '../helpers/maildir.js';
import { havePostfix, startPostfix, type PostfixInstance } from '../helpers/postfix.js';

describe.skipIf(!havePostfix())('a message over the far Postfix\'s message_size_limit', () => {
  let pf: PostfixInstance;
  let dir: string;
  let config: Config;
  let spool: Spool;
  const log: string[] = [];

  beforeAll(async () => {
    pf = await startPostfix({ mailboxes: ['user', 'sender'], mainCf: ['message_size_limit = 60000'] });
    dir = mkdtempSync(join(tmpdir(), 'mailbag-fidelity10-size-'));
    const file = join(dir, 'mailbag.toml');
    writeFileSync(file, ['site = "home"', `spool = "${join(dir, 'spool')}"`, '[delivery]', 'sendmail = "/usr/sbin/sendmail"', '[peers.hub]', 'transport = "command"', 'command = ["true"]'].join('\n'));
    config = loadConfig({ path: file, env: {} });
    spool = await Spool.open(config.spool, { create: true });
  }, 120_000);

  afterAll(async () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    await pf?.stop();
  });

  const env = (): NodeJS.ProcessEnv => ({ ...process.env, MAIL_CONFIG: pf.configDir });
  const big = (subject: string): string => `From: sender@maildir.test\nSubject: ${subject}\n\n${`${'x'.repeat(70)}\n`.repeat(1500)}`;

  async function receive(h: Partial<JobHeader> & { command: string }, payload: string): Promise<string> {
    const header: JobHeader = { id: newJobId(), from: 'hub', to: 'home', created: new Date().toISOString(), args: [], sender: 'sender@maildir.test', recipients: ['user@maildir.test'], ...h };
    await spool.writeJob('in', 'hub', header, Buffer.from(payload, 'latin1'));
    return header.id;
  }

  test.each([
    ['an rmail job (sendmail)', 'rmail', (s: string) => `From sender@maildir.test  Sun Nov 22 04:10:00 2026\n${big(s)}`],
    ['a BSMTP job (sendmail -bs)', 'rsmtp', (s: string) => `MAIL FROM:<sender@maildir.test>\nRCPT TO:<user@maildir.test>\nDATA\n${big(s)}.\n`],
  ] as const)('%s fails at once with 5.3.4 and its sender is told', async (_what, command, payload) => {
    const noticesBefore = readMaildir(pf.maildir('sender')).length;
    const id = await receive({ command, args: command === 'rmail' ? ['user@maildir.test'] : [] }, payload(`too big ${command}`));
    const s = await runJobs({ config, spool, env: env(), log: (l) => log.push(l) });
    expect(s, log.join('\n')).toEqual({ done: 0, retry: 0, failed: 1, skipped: 0 });
    const failed = (await listFailed(spool)).find((f) => f.id === id);
    expect(failed?.reason).toMatch(/5\.3\.4|message file too big|size/i);
    await waitMaildir(pf.maildir('sender'), noticesBefore + 1, 30_000);
    const notices = readMaildir(pf.maildir('sender')).filter((m) => m.raw.includes(id));
    expect(notices).toHaveLength(1);
    const notice = notices[0]!.raw.toString('latin1');
    expect(notice).toMatch(/Final-Recipient: rfc822; user@maildir\.test\r?\nAction: failed\r?\nStatus: 5\.3\.4/);
    expect(readMaildir(pf.maildir('user'))).toEqual([]);
  });
});
