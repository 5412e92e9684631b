// review10b: the notices for an OUTGOING BSMTP job that fails on its way out (the peer
// refuses it for good, or it expires in out/) — sent by `mailbag run` from failed/PEER/.
// A BSMTP job may hold several transactions with different senders (`mailbag enqueue
// --bsmtp` takes any batch; docs/formats.md 2), each recipient with its own NOTIFY
// (82ced39: "no failure notice for a recipient whose NOTIFY leaves FAILURE out ... ORCPT
// kept on notices sent from failed/ too").
//
// Runner.finishFailedNotices reads the transactions only through transactionsOf(), which
// resolves the job's command against the peer's `accept` list: on the sending side the
// peer we send to accepts nothing from us, so txs is undefined and the whole-job path
// sends ONE notice to job.header.sender (the first transaction's sender) naming every
// recipient of every transaction: the other senders never hear, the first sender is
// told of (and shown) other people's recipients, NOTIFY=NEVER is ignored and ORCPT lost.
// Real Postfix delivers the notices into Maildirs. See /work/brief/req-review10b.md R1.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main as enqueueMain } from '../../lib/cli/enqueue.js';
import { loadConfig, type Config } from '../../lib/config/index.js';
import { listFailed } from '../../lib/runner/failed.js';
import { runJobs } from '../../lib/runner/runner.js';
import { storeFor } from '../../lib/session/index.js';
import { Spool } from '../../lib/spool/index.js';
import { readMaildir, waitMaildir } from '../helpers/maildir.js';
import { havePostfix, startPostfix, type PostfixInstance } from '../helpers/postfix.js';

describe.skipIf(!havePostfix())('review10b: notices of an outgoing BSMTP job failed on its way out', () => {
  let pf: PostfixInstance;
  let dir: string;
  let file: string;
  let config: Config;
  let spool: Spool;

  beforeAll(async () => {
    pf = await startPostfix({ mailboxes: ['a', 'b', 'c'] });
    dir = mkdtempSync(join(tmpdir(), 'mailbag-review10b-outgoing-'));
    file = join(dir, 'mailbag.toml');
    writeFileSync(file, ['site = "home"', `spool = "${join(dir, 'spool')}"`, '[delivery]', 'sendmail = "/usr/sbin/sendmail"', '[peers.hub]', 'transport = "command"', 'command = ["true"]', '', '[peers.leaf]', 'transport = "command"', 'command = ["true"]', 'accept = ["rmail"]', ''].join('\n'));
    config = loadConfig({ path: file, env: {} });
    spool = await Spool.open(config.spool, { create: true });
  }, 120_000);

  afterAll(async () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    await pf?.stop();
  });

  const env = (): NodeJS.ProcessEnv => ({ ...process.env, MAIL_CONFIG: pf.configDir });

  async function enqueueBsmtp(peer: string, batch: string): Promise<void> {
    const stderr = new PassThrough();
    const err: Buffer[] = [];
    stderr.on('data', (b: Buffer) => err.push(b));
    const code = await enqueueMain(['--config', file, peer, '--bsmtp'], { stdin: Readable.from([Buffer.from(batch)]), stdout: new PassThrough(), stderr, env: env(), cwd: dir, isTTY: false });
    expect(code, Buffer.concat(err).toString()).toBe(0);
  }

  const tx = (sender: string, rcpts: string[], subject: string): string =>
    [`MAIL FROM:<${sender}>`, ...rcpts.map((r) => `RCPT TO:${r}`), 'DATA', `From: ${sender}`, `Subject: ${subject}`, `Message-ID: <${subject.replace(/\W/g, '')}@review10b.test>`, '', `body of ${subject}`, '.', ''].join('\n');

  async function failOnTheWayOut(peer: string, subjectTag: string): Promise<{ a: string[]; b: string[]; c: string[]; log: string }> {
    const before = { a: readMaildir(pf.maildir('a')).length, b: readMaildir(pf.maildir('b')).length, c: readMaildir(pf.maildir('c')).length };
    await enqueueBsmtp(peer,
      tx('a@maildir.test', ['<x1@far.test>'], `from a ${subjectTag}`) +
        tx('b@maildir.test', ['<y1@far.test> NOTIFY=FAILURE ORCPT=rfc822;orig-y1@b.test'], `from b ${subjectTag}`) +
        tx('c@maildir.test', ['<z1@far.test> NOTIFY=NEVER'], `from c ${subjectTag}`),
    );
    const [job] = await spool.listJobs('out', peer);
    expect(job).toBeDefined();
    // what the session does when the peer refuses the job for good (lib/session/store.ts)
    const store = storeFor(config, spool, peer, config.peers[peer]);
    await store.open();
    expect(await store.failQueuedJob(job!.id, `${peer} refused it: too big`, '5.3.4')).toBe(true);
    const log: string[] = [];
    await runJobs({ config, spool, env: env(), log: (l) => log.push(l) });
    expect((await listFailed(spool)).filter((f) => f.id === job!.id).map((f) => f.noticeSent)).toEqual([true]);
    await pf.waitQueueEmpty(60_000);
    await waitMaildir(pf.maildir('b'), before.b + 1, 15_000).catch(() => undefined);
    const since = (box: 'a' | 'b' | 'c'): string[] => readMaildir(pf.maildir(box)).slice(before[box]).map((m) => m.raw.toString('latin1'));
    return { a: since('a'), b: since('b'), c: since('c'), log: log.join('\n') };
  }

  function expectPerSender(got: { a: string[]; b: string[]; c: string[]; log: string }): void {
    expect({ a: got.a.length, b: got.b.length, c: got.c.length }, got.log).toEqual({ a: 1, b: 1, c: 0 });
    expect(got.a[0]).toMatch(/^Final-Recipient: rfc822; x1@far\.test\r?$/m);
    expect(got.a[0]).not.toMatch(/y1@far\.test|z1@far\.test/);
    expect(got.b[0]).toMatch(/^Final-Recipient: rfc822; y1@far\.test\r?$/m);
    expect(got.b[0]).toMatch(/^Original-Recipient: rfc822; ?orig-y1@b\.test\r?$/m);
    expect(got.b[0]).not.toMatch(/x1@far\.test|z1@far\.test/);
  }

  it('peer with the default accept: each sender hears about its own recipients only, as their NOTIFY asks, with ORCPT', async () => {
    expectPerSender(await failOnTheWayOut('hub', 'default accept'));
  }, 120_000);

  // R1 in /work/brief/req-review10b.md (failed before the runner read an outgoing job's
  // transactions whatever the peer may send us: accept only restricts what runs here)
  it('peer with accept = ["rmail"] (we take only rmail from it, send it BSMTP): the same notices (R1)', async () => {
    expectPerSender(await failOnTheWayOut('leaf', 'accept rmail'));
  }, 120_000);
});
