// The real `mailbag enqueue`, killed with SIGKILL at each step of the commit (mid
// write, after write, after fsync, after rename, after the directory fsync) on real corpus
// messages: the MTA sees a non-zero status (a signal), and the spool holds either no
// job or one whole job that reads back byte for byte, never a partial one; opening the
// spool afterwards removes the dead writer's tmp file. Then a full disk (a 16k tmpfs)
// and a read-only spool through the same front door: exit 75, one `4.3.x` line, nothing
// left behind. docs/spool.md lists these states and their recovery rules.

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { corpusSource, haveCorpus } from '../helpers/corpus.js';
import { mailbagBin } from '../helpers/mta-common.js';
import { need } from '../helpers/need.js';
import { FAULT_POINTS, Spool, type OpenJob } from '../../lib/spool/index.js';
import { canMount, mountTmpfs, remountReadOnly, unmount } from '../unit/spool/mount.js';

const ready = need('the built mailbag (dist/bin/mailbag.js)', [mailbagBin], 'run npm run build first') && haveCorpus();
// the repo's dist/, as the other fault tests run it (mta-common's mailbagBin)
const bin = mailbagBin;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function enqueue(config: string, args: string[], stdin: Buffer, fault?: string): Promise<Run> {
  return new Promise((res, rej) => {
    const env: NodeJS.ProcessEnv = { ...process.env, MAILBAG_CONFIG: config };
    delete env.MAILBAG_FAULT;
    if (fault) env.MAILBAG_FAULT = fault;
    const p = spawn(process.execPath, [bin, 'enqueue', ...args], { env, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('error', rej);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, stderr });
    });
    // a process killed early may close its stdin under us: that is the point
    p.stdin.on('error', () => undefined);
    p.stdin.end(stdin);
  });
}

async function payloadOf(job: OpenJob): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of job.payload()) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** drop the first line (the From_ line carries the time of enqueue) */
function afterFirstLine(b: Buffer): Buffer {
  return b.subarray(b.indexOf(0x0a) + 1);
}

/** Exim's use_bsmtp shape: envelope, DATA, the dot-stuffed message, a lone dot */
function bsmtpOf(message: Buffer): Buffer {
  const text = message.toString('latin1');
  const body = text.endsWith('\n') ? text : `${text}\n`;
  const stuffed = body.replace(/^\./gm, '..');
  return Buffer.from(`MAIL FROM:<sender@example.org>\nRCPT TO:<rcpt@example.net>\nDATA\n${stuffed}.\n`, 'latin1');
}

let dir: string;

function writeConfig(spool: string): string {
  const path = join(dir, `mailbag-${Math.random().toString(36).slice(2)}.toml`);
  writeFileSync(path, `site = "home"\nspool = "${spool}"\n\n[peers.hub]\nhost = "hub.invalid"\n`);
  return path;
}

describe.runIf(ready)('enqueue killed at each commit step', () => {
  const odd = (name: string): Buffer => readFileSync(join(corpusSource(), 'odd', name));
  const cases = [
    // an rmail job: From_ line + the message, byte for byte
    { what: 'rmail', args: ['hub', '-f', 'sender@example.org', '--', 'rcpt@example.net', 'other@example.net'], message: odd('08-from-line-format-patch.eml') },
    // the null sender becomes a BSMTP job
    { what: 'bsmtp (null sender)', args: ['hub', '-f', '<>', '--', 'postmaster@example.net'], message: odd('11-lone-dot-line.eml') },
    // a BSMTP stream as Exim's use_bsmtp writes it (staged in tmp/ while it is checked)
    { what: 'bsmtp (--bsmtp)', args: ['hub', '--bsmtp'], message: bsmtpOf(odd('12-leading-dots.eml')) },
  ];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailbag-fault-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  for (const c of cases) {
    for (const point of FAULT_POINTS) {
      it(`${c.what}: SIGKILL ${point} leaves no job or one whole job, and no tmp file after cleanup`, async () => {
        // what an undisturbed enqueue of the same message writes
        const goodRoot = join(dir, 'good');
        const good = await enqueue(writeConfig(goodRoot), c.args, c.message);
        expect(good, good.stderr).toMatchObject({ code: 0, signal: null });
        const goodSpool = await Spool.open(goodRoot);
        const [goodRef] = await goodSpool.listJobs('out', 'hub');
        const goodJob = await goodSpool.readJob(goodRef!);
        const goodPayload = await payloadOf(goodJob);

        // an installed site: the spool exists, so the fault hits the job's commit
        // (not the first commit of a new spool, its marker file)
        const root = join(dir, 'spool');
        await Spool.open(root, { create: true });
        const run = await enqueue(writeConfig(root), c.args, c.message, point);
        // the MTA sees a process killed by a signal: never exit 0
        expect(run.signal).toBe('SIGKILL');
        expect(run.code).toBe(null);

        const leftovers = readdirSync(join(root, 'tmp'));
        const jobs = readdirSync(join(root, 'out', 'hub'));
        if (point === 'mid-write' || point === 'after-write' || point === 'after-fsync') {
          // killed before the rename: the job never existed; its tmp file (partial after
          // mid-write) is there
          expect(jobs).toEqual([]);
          expect(leftovers.length).toBeGreaterThanOrEqual(1);
        } else {
          // killed after the rename: the one job is whole
          expect(jobs.length).toBe(1);
        }
        const tmpJobs = leftovers.filter((l) => l.endsWith('.job'));
        if (point === 'mid-write') {
          // a partial job: the header and less than the whole payload
          expect(tmpJobs.length).toBe(1);
          expect(statSync(join(root, 'tmp', tmpJobs[0]!)).size).toBeLessThan(goodJob.size);
        }
        // tmp names carry the writer's pid: that is how cleanup knows the writer is dead
        for (const l of leftovers) expect(l).toMatch(/^\d+\./);

        // opening the spool (as the next enqueue, session or runner does) cleans up
        const spool = await Spool.open(root);
        expect(readdirSync(join(root, 'tmp'))).toEqual([]);
        expect(spool.cleanup.removed.sort()).toEqual(leftovers.sort());
        for (const ref of await spool.listJobs('out', 'hub')) {
          const job = await spool.readJob(ref);
          expect(job.header).toEqual({ ...goodJob.header, id: ref.id, created: job.header.created });
          expect(job.payloadSize).toBe(goodJob.payloadSize);
          const payload = await payloadOf(job);
          if (c.what === 'rmail') {
            expect(payload.subarray(0, 24).toString()).toMatch(/^From sender@example\.org /);
            expect(afterFirstLine(payload).equals(c.message)).toBe(true);
            expect(afterFirstLine(payload).equals(afterFirstLine(goodPayload))).toBe(true);
          } else {
            expect(payload.equals(goodPayload)).toBe(true);
          }
        }

        // the MTA retries: the next attempt succeeds and adds exactly one job
        const again = await enqueue(writeConfig(root), c.args, c.message);
        expect(again, again.stderr).toMatchObject({ code: 0, signal: null });
        expect(readdirSync(join(root, 'out', 'hub')).length).toBe(jobs.length + 1);
        expect(readdirSync(join(root, 'tmp'))).toEqual([]);
      });
    }
  }
});

describe.runIf(ready && canMount('enqueue on a full or read-only spool'))('enqueue on a full or read-only spool', () => {
  const mounted: string[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailbag-fault-fs-'));
  });
  afterAll(() => {
    while (mounted.length) unmount(mounted.pop()!);
    rmSync(dir, { recursive: true, force: true });
  });
  const message = (): Buffer => readFileSync(join(corpusSource(), 'odd', '25-crlf-8bit-enron.eml')); // 36 KB

  it('a full disk: exit 75, a 4.3.1 line, nothing left behind', async () => {
    const root = join(dir, 'full');
    mountTmpfs(root, '16k');
    mounted.push(root);
    await Spool.open(root, { create: true });
    const run = await enqueue(writeConfig(root), ['hub', '-f', 'sender@example.org', '--', 'rcpt@example.net'], message());
    expect(run.code, run.stderr).toBe(75);
    expect(run.stderr).toMatch(/^4\.3\.1 .*spool full/);
    expect(run.stderr.trim().split('\n').length).toBe(1);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
    expect(readdirSync(join(root, 'out')).flatMap((p) => readdirSync(join(root, 'out', p)))).toEqual([]);
  });

  it('a read-only spool: exit 75, a 4.3.0 line, nothing left behind', async () => {
    const root = join(dir, 'ro');
    mountTmpfs(root, '1m');
    mounted.push(root);
    await Spool.open(root, { create: true });
    remountReadOnly(root);
    for (const args of [
      ['hub', '-f', 'sender@example.org', '--', 'rcpt@example.net'],
      ['hub', '-f', '', '--', 'rcpt@example.net'],
    ]) {
      const run = await enqueue(writeConfig(root), args, message());
      expect(run.code, run.stderr).toBe(75);
      expect(run.stderr).toMatch(/^4\.3\.0 .*spool not writable/);
      expect(run.stderr.trim().split('\n').length).toBe(1);
      expect(readdirSync(join(root, 'tmp'))).toEqual([]);
      expect(readdirSync(join(root, 'out'))).toEqual([]);
    }
  });
});
