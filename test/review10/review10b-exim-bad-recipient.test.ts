// review10b: d46dde8 (an rmail job with one recipient Exim cannot parse reaches the others)
// matches Exim's `exim: bad recipient address "X": …` lines against the recipients given,
// byte for byte. Exim prints X through string_printing(): a byte outside printable ASCII
// comes out as an octal escape (real Exim 4.96: `jörg@@x.test` is printed
// `j\303\266rg@@x.test`). Such a line matches no recipient, so every recipient of the call
// fails with Exim's exit 1, as before d46dde8: the good ones never get the message and the
// sender is told they failed. See /work/brief/req-review10b.md R2.

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../../lib/config/index.js';
import { newJobId, type JobHeader } from '../../lib/job/index.js';
import { listFailed } from '../../lib/runner/failed.js';
import { runJobs } from '../../lib/runner/runner.js';
import { Spool } from '../../lib/spool/index.js';
import { eximBinary, haveExim, startExim, type EximInstance } from '../helpers/exim.js';
import { readMaildir } from '../helpers/maildir.js';

describe.skipIf(!haveExim())('review10b: an rmail job into a real Exim with a malformed recipient', () => {
  let ex: EximInstance;
  let dir: string;
  let config: Config;
  let spool: Spool;

  beforeAll(async () => {
    ex = await startExim({ mailboxes: ['user', 'other', 'sender'] });
    dir = mkdtempSync(join(tmpdir(), 'mailbag-review10b-exim-'));
    // the "sendmail" an Exim site has, pointed at the private configuration (-odq: see test/helpers/exim.ts)
    const wrapper = join(dir, 'sendmail');
    writeFileSync(wrapper, `#!/bin/sh\nexec ${eximBinary()} -C ${ex.configFile} -odq "$@"\n`);
    chmodSync(wrapper, 0o755);
    const file = join(dir, 'mailbag.toml');
    writeFileSync(file, ['site = "home"', `spool = "${join(dir, 'spool')}"`, '[delivery]', 'method = "sendmail"', `sendmail = "${wrapper}"`, '[peers.hub]', 'transport = "command"', 'command = ["true"]'].join('\n'));
    config = loadConfig({ path: file, env: {} });
    spool = await Spool.open(config.spool, { create: true });
  }, 120_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    ex?.stop();
  });

  async function deliverRmail(bad: string, tag: string): Promise<{ id: string; user: number; other: number; notices: string[]; log: string }> {
    const seen = (box: string): Set<string> => new Set(readMaildir(ex.maildir(box)).map((m) => m.path));
    const before = { user: seen('user'), other: seen('other'), sender: seen('sender') };
    const header: JobHeader = { id: newJobId(), from: 'hub', to: 'home', created: new Date().toISOString(), command: 'rmail', args: ['user@maildir.test', bad, 'other@maildir.test'], sender: '', recipients: [] };
    const message = `From sender@maildir.test  Sun Nov 22 04:10:00 2026\nFrom: sender@maildir.test\nSubject: ${tag}\nMessage-ID: <${tag}@review10b.test>\n\nbody ${tag}\n`;
    await spool.writeJob('in', 'hub', header, Buffer.from(message, 'utf8'));
    const log: string[] = [];
    await runJobs({ config, spool, env: process.env, log: (l) => log.push(l) });
    await ex.runQueue();
    const fresh = (box: 'user' | 'other' | 'sender') => readMaildir(ex.maildir(box)).filter((m) => !before[box].has(m.path));
    return {
      id: header.id,
      user: fresh('user').filter((m) => m.header('subject') === tag).length,
      other: fresh('other').filter((m) => m.header('subject') === tag).length,
      notices: fresh('sender').map((m) => m.raw.toString('latin1')).filter((t) => t.includes(header.id)),
      log: log.join('\n'),
    };
  }

  it('an ASCII malformed recipient fails alone (d46dde8, as committed)', async () => {
    const r = await deliverRmail('bad@@x.test', 'ascii-bad');
    expect({ user: r.user, other: r.other, notices: r.notices.length }, r.log).toEqual({ user: 1, other: 1, notices: 1 });
    expect(r.notices[0]).toMatch(/Final-Recipient: rfc822; bad@@x\.test\r?\nAction: failed\r?\nStatus: 5\.1\.3/);
  });

  // R2 (failed before eximBadRecipients read Exim's escapes, lib/deliver/sendmail.ts)
  it('a malformed recipient with 8-bit bytes (UTF-8) fails alone too; the others get the message once (R2)', async () => {
    const r = await deliverRmail('jörg@@x.test', 'utf8-bad');
    expect({ user: r.user, other: r.other, notices: r.notices.length }, r.log).toEqual({ user: 1, other: 1, notices: 1 });
    expect(r.notices[0]).not.toMatch(/Final-Recipient: rfc822; (user|other)@maildir\.test/);
    expect((await listFailed(spool)).find((f) => f.id === r.id)?.reason).toMatch(/bad recipient address/);
  });
});
