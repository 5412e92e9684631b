// The real front doors (package.json's four bins, run through npm-style links in
// /usr/local/bin, and the ES module entries mailbag.js and mailbag-uux.js) on a machine
// where node is not in PATH nor in the fixed places (a private mount namespace:
// launcher-helpers.ts), then with node in one fallback place only. Without node each
// exits 75 with its one line and writes nothing (no job, no sendmail run); with node in
// /usr/local/bin, /usr/bin/nodejs or only the caller's PATH each does exactly what
// `node FILE` does: the same arguments and stdin (byte for byte: the job or what
// sendmail got), the same exit status. bin/launcher.ts; the sh line's own cases (order,
// signals, odd arguments) are test/unit/launcher/launcher.test.ts's.

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { makeSharedTempDir, removeTempDir, repoRoot, run } from '../helpers/mta-common.js';
import { readJobs } from '../helpers/spool-jobs.js';
import { Spool } from '../../lib/spool/index.js';
import { docSnippet } from './docs-snippet.js';
import { haveNamespaces, installedNodes, inWorld, type World } from './launcher-helpers.js';

const bins = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin;
const PROGRAMS = ['mailbag', 'mailbag-uux', 'rmail', 'rsmtp'] as const;
type Program = (typeof PROGRAMS)[number];
const ready = haveNamespaces() && PROGRAMS.every((p) => existsSync(join(repoRoot, bins[p]!)));

/** npm's global links, as in the namespace's /usr/local/bin */
const LINKS = Object.fromEntries(PROGRAMS.map((p) => [p, join(repoRoot, bins[p]!)]));
const HIDDEN: World = { localBin: LINKS, hide: installedNodes() };

const SENDER = 'alice@elsewhere.test';
// one argument each, quotes and shell characters kept (an rmail job refuses spaces in a
// recipient: the spaces are in the configuration file's name, see CALLS)
const RCPTS = ['"john..smith"@example.org', "o'brien@example.org", 'bob+$x*@example.org'];
// 8-bit, CR LF, a tab, a `From ` line and a last line without its newline
const MESSAGE = Buffer.concat([Buffer.from('Subject: caf'), Buffer.from([0xe9]), Buffer.from('\r\nX-Tab:\tx\n\nFrom the start\nbody\u00fc\nend')]);
const FROM_LINE = `From ${SENDER}  Sun Nov 22 04:10:00 2026\n`;
const BSMTP = `MAIL FROM:<${SENDER}>\nRCPT TO:<bob@example.org>\nDATA\nSubject: b\n\n..dot\nbody\n.\nQUIT\n`;

/** the configuration file, named with spaces and quotes: each program is given it as --config */
const CONFIG_NAME = `my "mailbag" config's.toml`;

/** each program's command line (after --config FILE) and stdin */
const CALLS: Record<Program, { args: string[]; input: Buffer | string }> = {
  mailbag: { args: ['enqueue', 'hub', '-f', SENDER, '--', ...RCPTS], input: MESSAGE },
  'mailbag-uux': { args: ['-r', '-n', '-z', `-a${SENDER}`, '-', 'hub!rmail', ...RCPTS.map((r) => `(${r})`)], input: MESSAGE },
  rmail: { args: ['--', ...RCPTS], input: Buffer.concat([Buffer.from(FROM_LINE), MESSAGE]) },
  rsmtp: { args: [], input: BSMTP },
};

const argsOf = (program: Program, config: string): string[] => ['--config', config, ...CALLS[program].args];

/** Run argv with its input and env (test/helpers/mta-common.ts's run), stdout as text. */
async function spawnRun(argv: string[], input: Buffer | string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const r = await run(argv[0]!, argv.slice(1), { input, env });
  return { ...r, stdout: r.stdout.toString('utf8') };
}

describe.skipIf(!ready)('the front doors find node themselves, or exit 75 with one line', () => {
  let dir: string;
  let spool: string;
  let config: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    dir = makeSharedTempDir('launcher-entries');
    spool = join(dir, 'spool');
    config = join(dir, CONFIG_NAME);
    // a stand-in sendmail for rmail and rsmtp: records its arguments (NUL after each)
    // and stdin, one pair of files per run; exits with the number in sendmail.exit
    const sendmail = join(dir, 'sendmail');
    writeFileSync(
      sendmail,
      `#!/bin/sh\nd=${dir}/sent; mkdir -p "$d"; n=$(ls "$d" | wc -l)\nprintf '%s\\0' "$@" > "$d/$n.args"\ncat > "$d/$n.stdin"\n` +
        `[ -f ${dir}/sendmail.exit ] && exit "$(cat ${dir}/sendmail.exit)"\nexit 0\n`,
      { mode: 0o755 },
    );
    writeFileSync(config, `site = "home"\nspool = "${spool}"\n\n[peers.hub]\nhost = "hub.invalid"\n\n[delivery]\nsendmail = "${sendmail}"\nmta = "sendmail"\n`);
    await Spool.open(spool, { create: true });
    // what Postfix's pipe(8) gives: PATH=/usr/bin:/bin (the configuration comes as --config)
    env = { PATH: '/usr/bin:/bin', LANG: 'C' };
  });

  afterAll(() => {
    if (dir) removeTempDir(dir);
  });

  beforeEach(() => {
    rmSync(join(dir, 'sent'), { recursive: true, force: true });
    rmSync(join(dir, 'sendmail.exit'), { force: true });
  });

  /** what a run left: the jobs for hub (sender, recipients, payload) and each sendmail run (argv, stdin) */
  async function effects(): Promise<{ jobs: Array<[string, string[], Buffer]>; sent: Array<[string[], Buffer]> }> {
    const jobs = (await readJobs(spool, 'hub')).map((j) => [j.header.sender, [...j.header.recipients], j.payload] as [string, string[], Buffer]);
    for (const j of await readJobs(spool, 'hub')) rmSync(join(spool, 'out', 'hub', j.id), { force: true });
    const sentDir = join(dir, 'sent');
    const sent: Array<[string[], Buffer]> = [];
    for (let n = 0; existsSync(join(sentDir, `${n}.args`)); n++) {
      sent.push([readFileSync(join(sentDir, `${n}.args`), 'latin1').split('\0').slice(0, -1), readFileSync(join(sentDir, `${n}.stdin`))]);
    }
    rmSync(sentDir, { recursive: true, force: true });
    return { jobs, sent };
  }

  /** a job's payload without its From_ line's date, which differs run to run */
  const undated = (e: Awaited<ReturnType<typeof effects>>) => ({
    jobs: e.jobs.map(([s, r, p]) => [s, r, p.toString('latin1').replace(/^(From \S+ {2})[^\n]*\n/, '$1DATE\n')]),
    sent: e.sent.map(([a, s]) => [a, s.toString('latin1')]),
  });

  test('no node in PATH nor in any fixed place: every front door exits 75 with its line and writes nothing', async () => {
    const entries: Array<[string, Program]> = [
      ...PROGRAMS.map((p) => [`/usr/local/bin/${p}`, p] as [string, Program]),
      [join(repoRoot, 'dist/bin/mailbag.js'), 'mailbag'],
      [join(repoRoot, 'dist/bin/mailbag-uux.js'), 'mailbag-uux'],
    ];
    for (const [path, program] of entries) {
      const r = await spawnRun(inWorld(dir, HIDDEN, [path, ...argsOf(program, config)]), CALLS[program].input, env);
      expect(r.code, `${path}: ${r.stderr}`).toBe(75);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(
        new RegExp(`^4\\.3\\.5 ${program}: cannot start: no node in PATH \\(/usr/bin:/bin\\) nor at /usr/local/bin/node, /usr/bin/node, /usr/bin/nodejs(, /[^ ;]+)?; install Node\\.js 20 or later there, or link yours to /usr/local/bin/node \\(docs/setup\\.md\\)\\n$`),
      );
      expect(await effects()).toEqual({ jobs: [], sent: [] });
      // docs/setup.md shows the line as it is
      if (path === '/usr/local/bin/mailbag') expect(r.stderr).toBe(docSnippet('setup.md', 'launcher-line'));
    }
  });

  // each fallback alone, and the caller's PATH alone (node in a directory of its own)
  const FOUND: Array<[string, (d: string) => { world: World; path: string }]> = [
    ['/usr/local/bin/node', () => ({ world: { ...HIDDEN, nodeAt: ['/usr/local/bin/node'] }, path: '/usr/bin:/bin' })],
    ['/usr/bin/nodejs', () => ({ world: { ...HIDDEN, nodeAt: ['/usr/bin/nodejs'] }, path: '/usr/bin:/bin' })],
    ['only the caller\'s PATH', (d) => ({ world: { ...HIDDEN, nodeAt: [join(d, 'own-bin', 'node')] }, path: `/usr/bin:/bin:${join(d, 'own-bin')}` })],
  ];

  for (const [where, make] of FOUND) {
    test(`node at ${where} only: each front door does what \`node FILE\` does, with the same arguments, stdin and exit status`, async () => {
      mkdirSync(join(dir, 'own-bin'), { recursive: true });
      rmSync(join(dir, 'own-bin', 'node'), { force: true });
      const { world, path } = make(dir);
      for (const program of PROGRAMS) {
        const { input } = CALLS[program];
        const args = argsOf(program, config);
        const launched = await spawnRun(inWorld(dir, world, [`/usr/local/bin/${program}`, ...args]), input, { ...env, PATH: path });
        rmSync(join(dir, 'own-bin', 'node'), { force: true });
        expect(launched.code, `${program}: ${launched.stderr}`).toBe(0);
        const got = await effects();
        const direct = await spawnRun([process.execPath, LINKS[program]!, ...args], input, env);
        expect(direct.code, direct.stderr).toBe(0);
        const want = await effects();
        expect(undated(got)).toEqual(undated(want));
        expect([launched.stdout, launched.stderr]).toEqual([direct.stdout, direct.stderr]);
        // and what was given arrived: the recipients as arguments, the message's bytes
        if (program === 'mailbag' || program === 'mailbag-uux') {
          expect(got.jobs).toHaveLength(1);
          expect(got.jobs[0]!.slice(0, 2)).toEqual([SENDER, RCPTS]);
          expect(got.jobs[0]![2].subarray(got.jobs[0]![2].indexOf(0x0a) + 1)).toEqual(MESSAGE);
        } else if (program === 'rmail') {
          expect(got.sent).toEqual([[['-oi', '-f', SENDER, '--', ...RCPTS], MESSAGE]]);
        } else {
          expect(got.sent.map(([a]) => a)).toEqual([['-oi', '-f', SENDER, '--', 'bob@example.org']]);
        }
      }
      // node's exit status comes through unchanged: sendmail refuses for good (67)
      writeFileSync(join(dir, 'sendmail.exit'), '67');
      const launched = await spawnRun(inWorld(dir, world, ['/usr/local/bin/rmail', ...argsOf('rmail', config)]), CALLS.rmail.input, { ...env, PATH: path });
      const direct = await spawnRun([process.execPath, LINKS.rmail!, ...argsOf('rmail', config)], CALLS.rmail.input, env);
      expect(direct.code).toBe(67);
      expect([launched.code, launched.stderr]).toEqual([direct.code, direct.stderr]);
      rmSync(join(dir, 'own-bin', 'node'), { force: true });
    });
  }
});
