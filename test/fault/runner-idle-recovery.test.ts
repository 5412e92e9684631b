// A session killed after its commit (or its ACK) leaves committed jobs in the receiver's
// bags/in/PEER/HASH.d/ (docs/spool.md S7), and a sender killed after the ACK leaves
// acknowledged jobs in out/PEER/ (S4). `mailbag run` alone finishes both when no session
// with that peer runs, and delivers: through a real Postfix, every job exactly once, also
// after the next sync (the sender's re-offer is answered `have`). A session lock held by
// a live process is respected: run leaves HASH.d/ as it is until the lock is let go.
// Both session ends are real processes from dist/ (the dialer spawns `mailbag serve`
// over its stdio, as in test/fault/session-kill.test.ts); SIGKILL at the named points of
// lib/spool/fault.ts.

import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { newJobId } from '../../lib/job/id.js';
import { inspectUnfinished } from '../../lib/session/idle-recovery.js';
import { haveCorpus } from '../helpers/corpus.js';
import { readMaildir, waitMaildir, bodyOf } from '../helpers/maildir.js';
import { mailbagBin, repoRoot, run } from '../helpers/mta-common.js';
import { need } from '../helpers/need.js';
import { writeSyncDriver } from '../helpers/sync-driver.js';
import { havePostfix, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { plainCorpus } from '../integration/deliver-helpers.js';
import { FAKE_SENDMAIL } from '../unit/runner/helpers.js';
import { Spool } from '../../lib/spool/spool.js';

const dist = join(repoRoot, 'dist');
const built = need('the built mailbag', [mailbagBin, join(dist, 'lib', 'session', 'index.js')], 'run npm run build first (npm test does)');

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

interface Site {
  name: string;
  root: string;
  spool: Spool;
}

function tempDir(label: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `mailbag-${label}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

async function makeSite(dir: string, name: string): Promise<Site> {
  const root = join(dir, name);
  return { name, root, spool: await Spool.open(root, { create: true }) };
}

interface World {
  dir: string;
  hub: Site;
  home: Site;
  hubToml: string;
  /** one sync from home; the hub's `mailbag serve --no-run` killed at `point` when given */
  sync(point?: string): { status: number | null; out: string; err: string };
  /** `mailbag run --now` on the hub */
  run(env?: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

async function world(delivery: string[], env: NodeJS.ProcessEnv): Promise<World> {
  const t = tempDir('idle-recovery');
  cleanups.push(t.remove);
  const hub = await makeSite(t.dir, 'hub');
  const home = await makeSite(t.dir, 'home');
  const hubToml = join(t.dir, 'hub.toml');
  writeFileSync(hubToml, [`site = "hub"`, `spool = ${JSON.stringify(hub.root)}`, '[delivery]', ...delivery, 'concurrency = 2', '[peers.home]', 'accept = ["rmail"]', ''].join('\n'));
  writeFileSync(join(t.dir, 'home.toml'), `site = "home"\nspool = ${JSON.stringify(home.root)}\n[peers.hub]\nkeepalive = "2s"\n`);
  const script = writeSyncDriver(t.dir);
  return {
    dir: t.dir,
    hub,
    home,
    hubToml,
    sync(point) {
      const serve = [process.execPath, mailbagBin, 'serve', '--peer', 'home', '--no-run', '--config', hubToml];
      const far = point ? ['env', `MAILBAG_FAULT=${point}`, ...serve] : ['env', '-u', 'MAILBAG_FAULT', ...serve];
      const e = { ...process.env };
      delete e.MAILBAG_FAULT;
      const r = spawnSync(process.execPath, [script, join(t.dir, 'home.toml'), 'hub', ...far], { env: e, encoding: 'utf8', timeout: 60_000 });
      return { status: r.status, out: r.stdout, err: r.stderr };
    },
    async run(extra = {}) {
      const r = await run(process.execPath, [mailbagBin, 'run', '--config', hubToml, '--now'], { env: { ...process.env, ...env, ...extra, MAILBAG_FAULT: '' }, timeoutMs: 60_000 });
      return { code: r.code, stdout: r.stdout.toString('utf8'), stderr: r.stderr };
    },
  };
}

/** rmail jobs queued on `from` for `to`: the payload a From_ line and the message. */
async function queue(from: Site, to: string, messages: Buffer[], rcpt: string): Promise<Map<string, string>> {
  const senders = new Map<string, string>();
  for (let i = 0; i < messages.length; i++) {
    const id = newJobId();
    const sender = `s${i}-${id.slice(-6)}@corpus.test`;
    const payload = Buffer.concat([Buffer.from(`From ${sender}  Sun Nov 22 04:10:00 2026\n`), messages[i]!]);
    await from.spool.writeJob('out', to, { id, from: from.name, to, created: new Date().toISOString(), command: 'rmail', args: [rcpt], sender, recipients: [rcpt] }, payload);
    senders.set(id, sender);
  }
  return senders;
}

function jobs(site: Site, queue: string, peer: string): string[] {
  const dir = join(site.root, queue, peer);
  return existsSync(dir) ? readdirSync(dir).filter((n) => /^[0-9a-f]{12}/.test(n)).sort() : [];
}

/** job ids in every HASH.d/ of bags/in/PEER/ */
function staged(site: Site, peer: string): string[] {
  const dir = join(site.root, 'bags', 'in', peer);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => n.endsWith('.d')).flatMap((d) => readdirSync(join(dir, d))).sort();
}

function ledgerJobs(site: Site, peer: string): string[] {
  const file = join(site.root, 'ledger', peer);
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').slice(1).filter(Boolean).flatMap((l) => (l.split(' ')[2] ?? '').split(',').filter(Boolean)).sort();
}

/** every file below `dir`, with its size: what "untouched" means */
function snapshot(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name), `${rel}${e.name}/`);
      else out.push(`${rel}${e.name} ${readFileSync(join(d, e.name)).length}`);
    }
  };
  walk(dir, '');
  return out.sort();
}

/** where the fake sendmail records its calls */
function callsDir(): string {
  const t = tempDir('idle-calls');
  cleanups.push(t.remove);
  mkdirSync(join(t.dir, 'calls'));
  return join(t.dir, 'calls');
}

const postfixReady = built && havePostfix() && haveCorpus();

describe.skipIf(!postfixReady)('a receiver killed after its commit: mailbag run alone delivers through Postfix', () => {
  let pf: PostfixInstance;
  const points = ['session-after-commit', 'session-before-ack', 'session-after-ack'];

  beforeAll(async () => {
    pf = await startPostfix({ mailboxes: points.map((_, i) => `box${i}`) });
  }, 120_000);
  afterAll(async () => {
    await pf?.stop();
  });

  points.forEach((point, i) => {
    it(`killed at ${point}: run delivers every committed job once; the next sync stores and delivers nothing again`, async () => {
      const box = `box${i}`;
      const w = await world(['method = "sendmail"', 'sendmail = "/usr/sbin/sendmail"'], { MAIL_CONFIG: pf.configDir });
      const msgs = plainCorpus(12);
      expect(msgs.length).toBe(12);
      const up = await queue(w.home, 'hub', msgs, `${box}@maildir.test`);
      const ids = [...up.keys()].sort();

      const first = w.sync(point);
      expect(first.status, first.out + first.err).toBe(75);
      // committed (every job in the ledger, once), not delivered: the jobs wait in HASH.d/
      expect(ledgerJobs(w.hub, 'home'), first.out + first.err).toEqual(ids);
      const waiting = staged(w.hub, 'home');
      if (point !== 'session-after-ack') expect(waiting).toEqual(ids);
      // after the ACK the moves were under way: some may be in in/home/ already, never in both
      expect([...waiting, ...jobs(w.hub, 'in', 'home')].sort()).toEqual(ids);
      // what `mailbag status` is to show: these jobs received (IN), not yet moved
      const u = await inspectUnfinished(w.hub.root, 'home');
      expect(u.unmoved).toMatchObject({ jobs: waiting.length, bags: waiting.length > 0 ? 1 : 0, oldest: waiting[0] });
      expect(u.acked.jobs).toBe(0);

      // no session: `mailbag run` alone takes the dead serve's lock, moves, delivers
      const r = await w.run();
      expect(r.code, r.stderr + r.stdout).toBe(0);
      if (waiting.length > 0) expect(r.stdout).toContain(`home: finished an earlier session: ${waiting.length} received job(s) moved into in/home/`);
      expect(r.stdout).toContain('run: 12 done, 0 to retry, 0 failed, 0 skipped');
      expect(staged(w.hub, 'home')).toEqual([]);
      expect(readdirSync(join(w.hub.root, 'bags', 'in', 'home'))).toEqual([]);
      expect(jobs(w.hub, 'in', 'home')).toEqual([]);
      const got = await waitMaildir(pf.maildir(box), 12, 60_000);
      expect(got.map((m) => m.returnPath).sort()).toEqual([...up.values()].sort());
      for (let k = 0; k < msgs.length; k++) {
        const sender = [...up.values()][k]!;
        expect(got.find((m) => m.returnPath === sender)!.body.equals(bodyOf(msgs[k]!))).toBe(true);
      }

      // the sender's re-offer (its ACK may be lost) is answered `have`: stored and run never again
      const again = w.sync();
      expect(again.status, again.err).toBe(0);
      expect(jobs(w.home, 'out', 'hub')).toEqual([]);
      expect(ledgerJobs(w.hub, 'home')).toEqual(ids);
      expect(jobs(w.hub, 'in', 'home')).toEqual([]);
      const last = await w.run();
      expect(last.stdout).toContain('run: 0 done');
      expect(readMaildir(pf.maildir(box)).length).toBe(12);
    }, 180_000);
  });
});

describe.skipIf(!built)('mailbag run and a session lock held by a live process', () => {
  it('leaves HASH.d/ untouched while the lock is held; once it is let go, moves and delivers every job once', async () => {
    const calls = callsDir();
    const w = await world([`sendmail = "${FAKE_SENDMAIL}"`, 'mta = "sendmail"'], { FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0' });
    const up = await queue(w.home, 'hub', Array.from({ length: 6 }, (_, i) => Buffer.from(`Subject: lock ${i}\n\nbody ${i}\n`)), 'r@y.example');
    const first = w.sync('session-after-commit');
    expect(first.status, first.out + first.err).toBe(75);
    const bags = join(w.hub.root, 'bags', 'in', 'home');
    expect(staged(w.hub, 'home'), first.out + first.err).toEqual([...up.keys()].sort());

    // a live holder (this test process) takes the lock the killed serve left (its holder is dead)
    const lock = await w.hub.spool.lock('session-home');
    let held = true;
    cleanups.push(() => void (held && lock.release()));
    const before = { bags: snapshot(bags), in: snapshot(join(w.hub.root, 'in')), ledger: readFileSync(join(w.hub.root, 'ledger', 'home'), 'utf8') };
    const r = await w.run();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`home: a session is running (lock session-home is held by pid ${process.pid}`);
    expect(r.stdout).toContain('run: 0 done');
    expect({ bags: snapshot(bags), in: snapshot(join(w.hub.root, 'in')), ledger: readFileSync(join(w.hub.root, 'ledger', 'home'), 'utf8') }).toEqual(before);
    expect(readdirSync(calls)).toEqual([]);

    await lock.release();
    held = false;
    const after = await w.run();
    expect(after.code, after.stderr).toBe(0);
    expect(after.stdout).toContain('home: finished an earlier session: 6 received job(s) moved into in/home/, 0 acknowledged job(s) removed from out/home/');
    expect(after.stdout).toContain('run: 6 done');
    expect(staged(w.hub, 'home')).toEqual([]);
    // one sendmail call per job, each job once
    const argvs = readdirSync(calls).filter((f) => f.endsWith('.argv'));
    expect(argvs.length).toBe(6);
    const senders = argvs.map((f) => readFileSync(join(calls, f), 'utf8').split('\n')[2]).sort();
    expect(senders).toEqual([...up.values()].sort());
  }, 120_000);
});

describe.skipIf(!built)('a sender killed after the ACK (S4)', () => {
  it('leaves acknowledged jobs in out/PEER/; mailbag run removes them without a session, and nothing crosses twice', async () => {
    const calls = callsDir();
    const w = await world([`sendmail = "${FAKE_SENDMAIL}"`, 'mta = "sendmail"'], { FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0' });
    const down = await queue(w.hub, 'home', Array.from({ length: 5 }, (_, i) => Buffer.from(`Subject: down ${i}\n\nbody ${i}\n`)), 'r@y.example');
    const ids = [...down.keys()].sort();
    const first = w.sync('session-sender-after-ack');
    // the hub sends BYE once its bags are acknowledged (docs/protocol.md §4): home may
    // have ended its session before the hub was killed
    expect([0, 75], first.out + first.err).toContain(first.status);
    // home committed them (once); the hub still lists them, under an .acked marker
    expect(ledgerJobs(w.home, 'hub'), first.out + first.err).toEqual(ids);
    expect(jobs(w.hub, 'out', 'home')).toEqual(ids);
    expect(readdirSync(join(w.hub.root, 'bags', 'out', 'home')).some((n) => n.endsWith('.acked'))).toBe(true);
    expect((await inspectUnfinished(w.hub.root, 'home')).acked).toMatchObject({ jobs: 5, bags: 1, oldest: ids[0] });

    const r = await w.run();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('home: finished an earlier session: 0 received job(s) moved into in/home/, 5 acknowledged job(s) removed from out/home/');
    expect(jobs(w.hub, 'out', 'home')).toEqual([]);
    expect(readdirSync(join(w.hub.root, 'bags', 'out', 'home'))).toEqual([]);
    expect((await inspectUnfinished(w.hub.root, 'home')).acked.jobs).toBe(0);

    const again = w.sync();
    expect(again.status, again.err).toBe(0);
    expect(JSON.parse(again.out)).toMatchObject({ received: 0 });
    expect(ledgerJobs(w.home, 'hub')).toEqual(ids);
    expect(jobs(w.home, 'in', 'hub')).toEqual(ids);
  }, 120_000);
});

describe.skipIf(!built)('mailbag dispatch and a peer it does not dial', () => {
  it('runs the runner for a peer a killed session left committed jobs for: moved and delivered once', async () => {
    const calls = callsDir();
    const w = await world([`sendmail = "${FAKE_SENDMAIL}"`, 'mta = "sendmail"'], { FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0' });
    const up = await queue(w.home, 'hub', Array.from({ length: 4 }, (_, i) => Buffer.from(`Subject: dispatch ${i}\n\nbody ${i}\n`)), 'r@y.example');
    const first = w.sync('session-after-commit');
    expect(first.status, first.out + first.err).toBe(75);
    expect(staged(w.hub, 'home'), first.out + first.err).toEqual([...up.keys()].sort());
    // the hub cannot dial home (no host): no session, only the runner
    const r = await run(process.execPath, [mailbagBin, 'dispatch', '--config', w.hubToml], {
      env: { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0', MAILBAG_FAULT: '' },
      timeoutMs: 60_000,
    });
    const out = r.stdout.toString('utf8');
    expect(r.code, r.stderr + out).toBe(0);
    expect(out).toContain('no peer has work queued or is due');
    expect(out).toContain('home: finished an earlier session: 4 received job(s) moved into in/home/');
    expect(staged(w.hub, 'home')).toEqual([]);
    expect(jobs(w.hub, 'in', 'home')).toEqual([]);
    expect(readdirSync(calls).filter((f) => f.endsWith('.argv')).length).toBe(4);
    // nothing left: a second dispatch runs nothing
    const again = await run(process.execPath, [mailbagBin, 'dispatch', '--config', w.hubToml], { env: { ...process.env, FAKE_SENDMAIL_DIR: calls, MAILBAG_FAULT: '' }, timeoutMs: 60_000 });
    expect(again.stdout.toString('utf8')).not.toContain('finished an earlier session');
    expect(readdirSync(calls).filter((f) => f.endsWith('.argv')).length).toBe(4);
  }, 120_000);
});

describe.skipIf(!built)('a recovery that fails (a ledger that does not read)', () => {
  it('run still delivers what is in in/PEER/, leaves HASH.d/ as it is, says on stderr what failed and exits 75 (also with --quiet)', async () => {
    const calls = callsDir();
    const w = await world([`sendmail = "${FAKE_SENDMAIL}"`, 'mta = "sendmail"'], { FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0' });
    // a first session lands three jobs in in/home/ (serve runs with --no-run)
    const early = await queue(w.home, 'hub', Array.from({ length: 3 }, (_, i) => Buffer.from(`Subject: early ${i}\n\nbody ${i}\n`)), 'r@y.example');
    const ok = w.sync();
    expect(ok.status, ok.err).toBe(0);
    expect(jobs(w.hub, 'in', 'home')).toEqual([...early.keys()].sort());
    // a second one is killed after its commit: two jobs left in HASH.d/
    const late = await queue(w.home, 'hub', Array.from({ length: 2 }, (_, i) => Buffer.from(`Subject: late ${i}\n\nbody ${i}\n`)), 'r@y.example');
    const killed = w.sync('session-after-commit');
    expect(killed.status, killed.out + killed.err).toBe(75);
    expect(staged(w.hub, 'home'), killed.out + killed.err).toEqual([...late.keys()].sort());
    // the ledger's first line damaged (a disk error, a future version): no session and no
    // recovery can read it
    const ledger = join(w.hub.root, 'ledger', 'home');
    writeFileSync(ledger, readFileSync(ledger, 'utf8').replace(/^mailbag-ledger 1\n/, 'mailbag-ledger 9\n'));
    const bags = snapshot(join(w.hub.root, 'bags'));

    for (const quiet of [true, false]) {
      const r = await run(process.execPath, [mailbagBin, 'run', '--config', w.hubToml, '--now', ...(quiet ? ['--quiet'] : [])], {
        env: { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0', MAILBAG_FAULT: '' },
        timeoutMs: 60_000,
      });
      const out = r.stdout.toString('utf8');
      // what is in in/home/ is delivered, once (the second run finds nothing more)
      expect(readdirSync(calls).filter((f) => f.endsWith('.argv')).length).toBe(3);
      expect(jobs(w.hub, 'in', 'home')).toEqual([]);
      expect(out).toContain(quiet ? 'run: 3 done' : 'run: 0 done');
      // the committed jobs stay where they are, and the run says so, as a failure
      expect(snapshot(join(w.hub.root, 'bags'))).toEqual(bags);
      expect(r.code, out + r.stderr).toBe(75);
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^4\.3\.0 mailbag: home: /);
      expect(lines[0]).toContain('ledger');
      expect(lines[0]).toContain('unknown version 9');
      expect(lines[0]).toContain('2 committed job(s)');
    }
  }, 120_000);
});

describe.skipIf(!built)('mailbag dispatch and a recovery that fails', () => {
  it('a peer it does not dial whose killed session cannot be finished: one 4.3.0 line on stderr, exit 75', async () => {
    const calls = callsDir();
    const w = await world([`sendmail = "${FAKE_SENDMAIL}"`, 'mta = "sendmail"'], { FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0' });
    const up = await queue(w.home, 'hub', Array.from({ length: 2 }, (_, i) => Buffer.from(`Subject: d ${i}\n\nbody ${i}\n`)), 'r@y.example');
    const killed = w.sync('session-after-commit');
    expect(killed.status, killed.out + killed.err).toBe(75);
    expect(staged(w.hub, 'home'), killed.out + killed.err).toEqual([...up.keys()].sort());
    const ledger = join(w.hub.root, 'ledger', 'home');
    writeFileSync(ledger, readFileSync(ledger, 'utf8').replace(/^mailbag-ledger 1\n/, 'mailbag-ledger 9\n'));
    for (const quiet of [true, false]) {
      const r = await run(process.execPath, [mailbagBin, 'dispatch', '--config', w.hubToml, ...(quiet ? ['--quiet'] : [])], {
        env: { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0', MAILBAG_FAULT: '' },
        timeoutMs: 60_000,
      });
      const out = r.stdout.toString('utf8');
      expect(r.code, out + r.stderr).toBe(75);
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^4\.3\.0 mailbag: home: cannot finish an earlier session \(2 committed job\(s\) wait in bags\/in\/home\/.*unknown version 9/);
      expect(staged(w.hub, 'home')).toEqual([...up.keys()].sort());
      expect(readdirSync(calls)).toEqual([]);
    }
  }, 120_000);
});

describe.skipIf(!built)('mailbag dispatch and a peer whose bags it cannot read', () => {
  it('still dials the other peers; the unreadable one is one 4.3.0 line on stderr, exit 75', async () => {
    const t = tempDir('idle-eacces');
    cleanups.push(t.remove);
    chmodSync(t.dir, 0o755);
    const hub = await makeSite(t.dir, 'hub');
    const other = await makeSite(t.dir, 'other');
    const hubToml = join(t.dir, 'hub.toml');
    const otherToml = join(t.dir, 'other.toml');
    writeFileSync(otherToml, `site = "other"\nspool = ${JSON.stringify(other.root)}\n[peers.hub]\naccept = ["rmail"]\n`);
    const serve = [process.execPath, mailbagBin, 'serve', '--peer', 'hub', '--no-run', '--config', otherToml];
    writeFileSync(
      hubToml,
      [`site = "hub"`, `spool = ${JSON.stringify(hub.root)}`, '[delivery]', `sendmail = "${FAKE_SENDMAIL}"`, 'mta = "sendmail"', '[peers.home]', 'accept = ["rmail"]', '[peers.other]', 'transport = "command"', `command = ${JSON.stringify(serve)}`, ''].join('\n'),
    );
    for (const f of [hubToml, otherToml]) chmodSync(f, 0o644);
    const down = await queue(hub, 'other', [Buffer.from('Subject: to other\n\nbody\n')], 'r@y.example');
    // a killed session's staging directory for home that this user cannot read (left by
    // a session someone ran as another user): as root, dispatch runs as nobody and the
    // directory stays root's; else its mode is taken away
    const bagsHome = join(hub.root, 'bags', 'in', 'home');
    mkdirSync(join(bagsHome, `${'ab'.repeat(32)}.d`), { recursive: true });
    const asRoot = process.getuid?.() === 0;
    if (asRoot) {
      for (const site of [hub, other]) {
        const own = (p: string): void => {
          chownSync(p, 65534, 65534);
          for (const e of readdirSync(p, { withFileTypes: true })) {
            if (e.isDirectory()) own(join(p, e.name));
            else chownSync(join(p, e.name), 65534, 65534);
          }
        };
        own(site.root);
      }
      chownSync(bagsHome, 0, 0);
      chmodSync(bagsHome, 0o700);
    } else {
      chmodSync(bagsHome, 0o000);
      cleanups.push(() => chmodSync(bagsHome, 0o700));
    }
    const r = await run(process.execPath, [mailbagBin, 'dispatch', '--config', hubToml], {
      env: { ...process.env, MAILBAG_FAULT: '' },
      timeoutMs: 60_000,
      ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
    });
    const out = r.stdout.toString('utf8');
    // other was dialled: its job crossed
    expect(jobs(hub, 'out', 'other'), out + r.stderr).toEqual([]);
    expect(ledgerJobs(other, 'hub')).toEqual([...down.keys()]);
    expect(out).toContain('other: sent 1');
    // home: said, as a failure
    expect(r.code, out + r.stderr).toBe(75);
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^4\.3\.0 mailbag: home: cannot finish an earlier session.*EACCES/);
  }, 120_000);
});

describe.skipIf(!built)('mailbag run killed during its recovery', () => {
  // after-lock: nothing done yet, and a session comes next; before-release: the moves are
  // done, and a run delivers them. The dead run's lock never refuses what comes next
  for (const [point, next] of [['run-idle-after-lock', 'session'], ['run-idle-before-release', 'run']] as const) {
    it(`killed at ${point}: its lock is a dead holder's, the next ${next === 'run' ? 'run and session are' : 'session is'} not refused, and every job is delivered once`, async () => {
      const calls = callsDir();
      const w = await world([`sendmail = "${FAKE_SENDMAIL}"`, 'mta = "sendmail"'], { FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0' });
      const up = await queue(w.home, 'hub', Array.from({ length: 4 }, (_, i) => Buffer.from(`Subject: k ${i}\n\nbody ${i}\n`)), 'r@y.example');
      const ids = [...up.keys()].sort();
      const killedSync = w.sync('session-after-commit');
      expect(killedSync.status, killedSync.out + killedSync.err).toBe(75);
      expect(staged(w.hub, 'home'), killedSync.out + killedSync.err).toEqual(ids);
      const env = { ...process.env, FAKE_SENDMAIL_DIR: calls, FAKE_SENDMAIL_EXITS: '0' };
      const killed = await run(process.execPath, [mailbagBin, 'run', '--config', w.hubToml, '--now'], { env: { ...env, MAILBAG_FAULT: point }, timeoutMs: 60_000 });
      expect(killed.signal, killed.stderr).toBe('SIGKILL');
      // the dead run's lock is there; nothing was delivered
      expect(existsSync(join(w.hub.root, 'locks', 'session-home.lock'))).toBe(true);
      expect(readdirSync(calls)).toEqual([]);
      if (point === 'run-idle-after-lock') expect(staged(w.hub, 'home')).toEqual(ids);
      else expect([staged(w.hub, 'home'), jobs(w.hub, 'in', 'home')]).toEqual([[], ids]);
      if (next === 'session') {
        // home re-offers the bag (its ACK was lost): answered `have`, stored nothing again
        const again = w.sync();
        expect(again.status, again.err).toBe(0);
        expect(JSON.parse(again.out)).toMatchObject({ received: 0 });
        expect(jobs(w.home, 'out', 'hub')).toEqual([]);
        expect(staged(w.hub, 'home')).toEqual([]);
        expect(jobs(w.hub, 'in', 'home')).toEqual(ids);
      }
      const r = await run(process.execPath, [mailbagBin, 'run', '--config', w.hubToml, '--now'], { env: { ...env, MAILBAG_FAULT: '' }, timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.toString('utf8')).not.toContain('a session is running');
      expect(r.stdout.toString('utf8')).toContain('run: 4 done');
      expect(ledgerJobs(w.hub, 'home')).toEqual(ids);
      const argvs = readdirSync(calls).filter((f) => f.endsWith('.argv'));
      expect(argvs.map((f) => readFileSync(join(calls, f), 'utf8').split('\n')[2]).sort()).toEqual([...up.values()].sort());
      if (next === 'run') {
        // nothing was left to finish: the run took no lock, and the dead one is broken by
        // the next session, which is not refused
        const later = w.sync();
        expect(later.status, later.err).toBe(0);
      }
      expect(readdirSync(join(w.hub.root, 'locks'))).toEqual([]);
    }, 120_000);
  }
});

describe.skipIf(!built)("the next session's run step after a killed receiver", () => {
  it('serve delivers the jobs its start moved in although this session received none', async () => {
    const calls = callsDir();
    const w = await world([`sendmail = "${FAKE_SENDMAIL}"`, 'mta = "sendmail"'], {});
    const up = await queue(w.home, 'hub', Array.from({ length: 4 }, (_, i) => Buffer.from(`Subject: next ${i}\n\nbody ${i}\n`)), 'r@y.example');
    const first = w.sync('session-after-commit');
    expect(first.status, first.out + first.err).toBe(75);
    expect(staged(w.hub, 'home'), first.out + first.err).toEqual([...up.keys()].sort());

    // the next session, with serve's run step on (no --no-run): the re-offer is answered
    // `have`, so it receives nothing; its start moved the killed session's jobs in
    const script = join(w.dir, 'sync-driver.mjs');
    const serve = ['env', '-u', 'MAILBAG_FAULT', `FAKE_SENDMAIL_DIR=${calls}`, 'FAKE_SENDMAIL_EXITS=0', process.execPath, mailbagBin, 'serve', '--peer', 'home', '--config', w.hubToml];
    const r = spawnSync(process.execPath, [script, join(w.dir, 'home.toml'), 'hub', ...serve], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ received: 0 });
    // serve runs its run step after the link closed: wait for it, bounded
    const deadline = Date.now() + 30_000;
    const argvs = (): string[] => readdirSync(calls).filter((f) => f.endsWith('.argv'));
    while (argvs().length < up.size && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    expect(argvs().length).toBe(up.size);
    const senders = argvs().map((f) => readFileSync(join(calls, f), 'utf8').split('\n')[2]).sort();
    expect(senders).toEqual([...up.values()].sort());
    expect(staged(w.hub, 'home')).toEqual([]);
  }, 120_000);
});
