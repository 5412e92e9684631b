// Our From_ reader against the real sendmail rmail (rmail.c, shipped as /usr/sbin/rmail
// by Debian's postfix package): for hand-picked and generated envelopes, the sender
// (-f) and protocol (-p) that `rmail -T` prints must be ours, and what rmail refuses
// we refuse. rmail execs /usr/lib/sendmail, so it runs in a private mount namespace
// (unshare -rm) where sendmail is a script that swallows the message.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { need, underCI } from '../../helpers/need.js';
import { LIMITS } from '../../../lib/limits.js';
import { parseUucpEnvelope } from '../../../lib/envelope/index.js';

const RMAIL = '/usr/sbin/rmail';
const SENDMAIL = '/usr/sbin/sendmail';

function haveRmail(): boolean {
  if (!need("sendmail's rmail (Debian postfix package)", [RMAIL, SENDMAIL, '/usr/bin/unshare'], 'apt-get install postfix util-linux')) return false;
  const probe = spawnSync('unshare', ['-rm', 'true'], { timeout: 10_000 });
  if (probe.status === 0) return true;
  const line = `a private mount namespace (unshare -rm) is not available: ${probe.stderr?.toString().trim()}`;
  if (underCI) throw new Error(`under CI every test dependency must be installed: ${line}`);
  process.stderr.write(`SKIP ${line}\n`);
  return false;
}

const DATE = 'Tue Nov 22 04:10:00 2025';
const MESSAGE = 'Subject: x\n\nbody\n';

interface RmailResult {
  status: number;
  sender?: string;
  protocol?: string;
  stderr: string;
}

/** run `rmail -T r@y` on each payload, all in one namespace */
function runRmail(payloads: Buffer[]): RmailResult[] {
  const dir = mkdtempSync(join(tmpdir(), 'mailbag-rmail-'));
  try {
    const fake = join(dir, 'sendmail');
    writeFileSync(fake, '#!/bin/sh\ncat >/dev/null\nexit 0\n');
    chmodSync(fake, 0o755);
    payloads.forEach((p, i) => writeFileSync(join(dir, `${i}.in`), p));
    const script =
      `mount --bind ${fake} ${SENDMAIL} || exit 99\n` +
      `i=0; while [ $i -lt ${payloads.length} ]; do ` +
      `${RMAIL} -T r@y < ${dir}/$i.in > ${dir}/$i.err 2>&1; echo $? > ${dir}/$i.rc; i=$((i+1)); done\n`;
    const run = spawnSync('unshare', ['-rm', 'sh', '-c', script], { timeout: 60_000 });
    expect(run.status, run.stderr.toString()).toBe(0);
    return payloads.map((_, i) => {
      const stderr = readFileSync(join(dir, `${i}.err`), 'latin1');
      const status = Number(readFileSync(join(dir, `${i}.rc`), 'utf8').trim());
      const args = stderr.split('Sendmail arguments:\n')[1]?.split('\n').map((l) => l.replace(/^\t/, '')) ?? [];
      const p = args.find((a) => a.startsWith('-p'));
      const f = args.find((a) => a.startsWith('-f'));
      return { status, stderr, ...(p ? { protocol: Buffer.from(p.slice(2), 'latin1').toString('utf8') } : {}), ...(f ? { sender: Buffer.from(f.slice(2), 'latin1').toString('utf8') } : {}) };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Lines where we differ from rmail.c on purpose (docs/formats.md §1.2): a sender word
 * beginning with `!` even with `remote from`; a `!` outside the sender word without
 * `remote from` (rmail.c splits the whole line at its last `!`); `remote from` without
 * a system name.
 */
function deliberateDifference(payload: string): boolean {
  for (const line of payload.split('\n')) {
    const rest = line.startsWith('From ') ? line.slice(5) : line.startsWith('>From ') ? line.slice(6) : null;
    if (rest === null) break;
    const word = /^[^ \t\v\f\r]*/.exec(rest)?.[0] ?? '';
    const remote = rest.indexOf('remote from ', 1);
    if (word.startsWith('!')) return true;
    if (remote >= 1 && /^[ \t\v\f\r]|^$/.test(rest.slice(remote + 12))) return true;
    if (remote < 1 && rest.lastIndexOf('!') >= word.length) return true;
  }
  return false;
}

function compare(payloads: string[]): number {
  const buffers = payloads.map((p) => Buffer.from(p, 'utf8'));
  const results = runRmail(buffers);
  let compared = 0;
  results.forEach((r, i) => {
    const payload = payloads[i] as string;
    const ours = parseUucpEnvelope(buffers[i] as Buffer);
    const label = JSON.stringify(payload.slice(0, 200));
    if (deliberateDifference(payload)) return;
    compared++;
    if (r.status === 0) {
      expect(ours.ok, `${label}: rmail took it (${r.sender}), we refused: ${ours.ok ? '' : ours.issue.message}`).toBe(true);
      if (!ours.ok) return;
      expect(ours.value.protocol, label).toBe(r.protocol);
      // rmail writes the null sender as `<>` (or `c!<>` after a path)
      const isNull = r.sender === '<>' || r.sender?.endsWith('!<>');
      expect(ours.value.sender, label).toBe(isNull ? '' : r.sender);
    } else {
      expect(r.status, `${label}: ${r.stderr}`).toBe(65);
      expect(ours.ok, `${label}: rmail refused it (${r.stderr.trim()}), we took it`).toBe(false);
    }
  });
  return compared;
}

describe.runIf(haveRmail())('From_ reader against the real rmail', () => {
  afterAll(() => undefined);

  test('the formats.md table and checklist 1–2, and the edges', () => {
    const long = (n: number): string => `From u ${DATE} ${'x'.repeat(n - `From u ${DATE} `.length - 1)}\n`;
    expect(Buffer.byteLength(long(LIMITS.maxFromLine))).toBe(LIMITS.maxFromLine);
    const cases = [
      `From a!b!user  ${DATE} remote from c\n`,
      `From user  ${DATE} remote from c\n>From x  ${DATE} remote from d\n`,
      `From c!user  ${DATE}\n`,
      `From user@x.example  ${DATE}\n`,
      `From u  ${DATE} remote from gw.example.org\n`,
      `From   ${DATE}\n`,
      `From   ${DATE} remote from c\n`,
      `From <> ${DATE}\n`,
      `From MAILER-DAEMON ${DATE}\n`,
      `From a3 ${DATE} remote from h3\n>From a2 ${DATE} remote from h2\n>From a1 ${DATE} remote from h1\n`,
      `From u ${DATE} remote from c\nFrom v ${DATE} remote from d\n`,
      `From a!b!user ${DATE}\n`,
      `From u\t${DATE} remote from c\r\n`,
      `From a! ${DATE}\n`,
      'From \n',
      `>From u ${DATE}\n`,
      `>From u ${DATE} remote from c\n>From v ${DATE}\n`,
      `from u ${DATE}\n`,
      long(LIMITS.maxFromLine),
      long(LIMITS.maxFromLine + 1),
      `From u ${DATE}\n${long(LIMITS.maxFromLine + 1).replace(/^From/, '>From')}`,
    ].map((env) => `${env}${MESSAGE}`);
    cases.push('Subject: no envelope\n\nbody\n');
    expect(compare(cases)).toBe(cases.length);
  });

  test('generated envelopes (fixed seed)', () => {
    const piece = fc.constantFrom('a', 'b', 'user', 'x.example', '!', '@', '.', '-', 'remote', 'from', '<>', 'ü');
    const word = fc.array(piece, { maxLength: 5 }).map((p) => p.join(''));
    const space = fc.constantFrom(' ', '  ', '\t', ' \t');
    const line = fc
      .record({
        gt: fc.boolean(),
        word,
        space,
        date: fc.constantFrom(DATE, 'Tue Nov  2 04:10:00 2025', '', 'junk date'),
        remote: fc.option(fc.tuple(space, word), { nil: undefined }),
        cr: fc.boolean(),
      })
      .map((l) => `${l.gt ? '>' : ''}From ${l.word}${l.space}${l.date}${l.remote ? `${l.remote[0]}remote from ${l.remote[1]}` : ''}${l.cr ? '\r' : ''}\n`);
    const envelope = fc.array(line, { minLength: 1, maxLength: 4 }).map((lines) => `${lines.join('')}${MESSAGE}`);
    const cases = fc.sample(envelope, { seed: 20261122, numRuns: 300 });
    const compared = compare(cases);
    // most cases are not in the deliberate-difference classes
    expect(compared).toBeGreaterThan(150);
  });
});
