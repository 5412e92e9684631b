// review10b: an rmail job into a far Exim whose spool has no room. Exim's sendmail exits 1
// for every error of a local submission (d46dde8 runs it with -oep: the error on stderr),
// a temporary shortage of room too:
//   - `exim: insufficient disk space` when the spool's file system has less free than
//     check_spool_space (10M in Debian's exim4 configuration);
//   - `exim: Spool write error (No space left on device) while receiving message from …`
//     when it fills while the message is written.
// The runner reads exit 1 as permanent (5.3.0): the job fails for good and its sender is
// told it could not be delivered, for a state that passes (Postfix's smtpd answers 452
// 4.3.1 for it; Exim's own -bS answers 451, which the runner retries). Both states are
// real here: check_spool_space above what the file system has, and a small tmpfs mounted
// on Exim's spool/input, filled with dd. The same exit 1 for an Exim whose configuration
// does not read (being edited). See /work/brief/req-review10b.md R3.

import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../../lib/config/index.js';
import { newJobId, type JobHeader } from '../../lib/job/index.js';
import { listFailed } from '../../lib/runner/failed.js';
import { runJobs } from '../../lib/runner/runner.js';
import { Spool } from '../../lib/spool/index.js';
import { eximBinary, haveExim, startExim, type EximInstance } from '../helpers/exim.js';
import { readMaildir } from '../helpers/maildir.js';

interface Far {
  ex: EximInstance;
  dir: string;
  config: Config;
  spool: Spool;
}

const cleanups: Array<() => void> = [];

async function farExim(main: string[]): Promise<Far> {
  const ex = await startExim({ mailboxes: ['user', 'sender'], main });
  const dir = mkdtempSync(join(tmpdir(), 'mailbag-review10b-eximfull-'));
  cleanups.push(() => {
    rmSync(dir, { recursive: true, force: true });
    ex.stop();
  });
  // the "sendmail" an Exim site has, pointed at the private configuration (-odq: see test/helpers/exim.ts)
  const wrapper = join(dir, 'sendmail');
  writeFileSync(wrapper, `#!/bin/sh\nexec ${eximBinary()} -C ${ex.configFile} -odq "$@"\n`);
  chmodSync(wrapper, 0o755);
  const file = join(dir, 'mailbag.toml');
  writeFileSync(file, ['site = "home"', `spool = "${join(dir, 'spool')}"`, '[delivery]', 'method = "sendmail"', `sendmail = "${wrapper}"`, '[peers.hub]', 'transport = "command"', 'command = ["true"]'].join('\n'));
  const config = loadConfig({ path: file, env: {} });
  return { ex, dir, config, spool: await Spool.open(config.spool, { create: true }) };
}

// 40 KB: far above the room left on the filled tmpfs
const message = (subject: string): string =>
  `From sender@maildir.test  Sun Nov 22 04:10:00 2026\nFrom: sender@maildir.test\nSubject: ${subject}\nMessage-ID: <${subject.replace(/\W/g, '')}@review10b.test>\n\n${`${'y'.repeat(70)}\n`.repeat(570)}`;

async function receiveRmail(f: Far, subject: string): Promise<string> {
  const header: JobHeader = { id: newJobId(), from: 'hub', to: 'home', created: new Date().toISOString(), command: 'rmail', args: ['user@maildir.test'], sender: '', recipients: [] };
  await f.spool.writeJob('in', 'hub', header, Buffer.from(message(subject), 'latin1'));
  return header.id;
}

async function expectRetriedNotFailed(f: Far): Promise<string[]> {
  const log: string[] = [];
  const s = await runJobs({ config: f.config, spool: f.spool, env: process.env, log: (l) => log.push(l) });
  expect(s, log.join('\n')).toEqual({ done: 0, retry: 1, failed: 0, skipped: 0 });
  expect(await listFailed(f.spool)).toEqual([]);
  await f.ex.runQueue();
  expect(readMaildir(f.ex.maildir('sender'))).toEqual([]);
  return log;
}

afterAll(() => {
  for (const c of cleanups.reverse()) c();
});

describe.skipIf(!haveExim())('review10b: rmail jobs into a far Exim short of spool room', () => {
  // R3 (failed before the runner read Exim's shortage of room as temporary, lib/deliver/sendmail.ts)
  it('below check_spool_space (`exim: insufficient disk space`): retried, not failed, nobody told (R3)', async () => {
    const f = await farExim(['check_spool_space = 100G']);
    await receiveRmail(f, 'below check_spool_space');
    await expectRetriedNotFailed(f);
  }, 120_000);

  it('a spool that fills while Exim writes the message (`Spool write error (No space left on device)`): retried; once room is back it arrives once (R3)', async () => {
    const f = await farExim([]);
    // Exim makes spool/input at its first message
    const warm = await f.ex.exim(['-odq', '-oi', '-f', 'sender@maildir.test', '--', 'user@maildir.test'], 'Subject: warm\n\nwarm\n');
    expect(warm.code, warm.stderr.toString()).toBe(0);
    const input = join(f.ex.spoolDir, 'input');
    const st = statSync(input);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=256k,mode=${(st.mode & 0o7777).toString(8)},uid=${st.uid},gid=${st.gid}`, 'review10b-exim-input', input]);
    cleanups.push(() => execFileSync('umount', ['-l', input]));
    mkdirSync(join(input, '.fill'));
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${join(input, '.fill', 'zeros')}`, 'bs=4k'], { stdio: 'ignore' });
    } catch {
      // dd ends with ENOSPC: the point
    }
    await receiveRmail(f, 'spool fills');
    const log = await expectRetriedNotFailed(f);
    rmSync(join(input, '.fill'), { recursive: true, force: true });
    const again = await runJobs({ config: f.config, spool: f.spool, env: process.env, force: true, log: (l) => log.push(l) });
    expect(again, log.join('\n')).toEqual({ done: 1, retry: 0, failed: 0, skipped: 0 });
    await f.ex.runQueue();
    expect(readMaildir(f.ex.maildir('user')).filter((m) => m.header('subject') === 'spool fills')).toHaveLength(1);
  }, 120_000);

  // an Exim being reconfigured (a configuration that does not read, for a while): exit 1,
  // `Exim configuration error in line N of FILE`; Postfix's sendmail answers 75 for its
  // main.cf that does not read, and the runner retries that
  it('an Exim whose configuration does not read (`Exim configuration error`): retried, not failed (R3)', async () => {
    const f = await farExim([]);
    const broken = join(f.dir, 'broken.conf');
    writeFileSync(broken, 'nonsense_option = 1\n');
    writeFileSync(join(f.dir, 'sendmail'), `#!/bin/sh\nexec ${eximBinary()} -C ${broken} -odq "$@"\n`);
    await receiveRmail(f, 'config error');
    const log: string[] = [];
    const s = await runJobs({ config: f.config, spool: f.spool, env: process.env, log: (l) => log.push(l) });
    expect(s, log.join('\n')).toEqual({ done: 0, retry: 1, failed: 0, skipped: 0 });
    expect(await listFailed(f.spool)).toEqual([]);
  }, 120_000);
});
