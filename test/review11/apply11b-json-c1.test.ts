// apply11b: `--json` of `mailbag status --jobs` and `mailbag failed` is read on a terminal
// too. req-sec11.md R5 left it as it was ("JSON escapes them"), but JSON.stringify escapes
// only U+0000–U+001F: DEL and the C1 controls (U+0080–U+009F; U+009B is CSI, U+009D OSC on
// terminals that take them), which a job header may hold (lib/job/header.ts refuses C0 and
// DEL only in sender and recipients; args keep DEL out too, C1 in), came out raw. They are
// written as \u escapes now: the same JSON value, no control byte on the screen. Since
// sec12 (session 12) the header refuses C1 as well, so these planted jobs are unreadable:
// the cases check that their reason, not their fields, is printed clean.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Spool } from '../../lib/spool/index.js';
import { MAILBAG_BIN, makeSite, requireBuild, runBin, type Site } from '../unit/cli/front-door-helpers.js';

let site: Site;

const SENDER = 's\u009d0;pwned\u009c@x.test';
const RECIPIENT = 'x\u009b2J@y.test';

function plantJob(id: string, command: string): void {
  const dir = join(site.spool, 'in', 'hub');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const header = { id, from: 'hub', to: 'home', created: new Date().toISOString(), command, args: [RECIPIENT], sender: SENDER, recipients: [RECIPIENT] };
  writeFileSync(join(dir, id), `mailbag-job 1\n${JSON.stringify(header)}\nFrom s Mon Nov 23 06:35:49 2026\nSubject: t\n\nx\n`, { mode: 0o600 });
}

// eslint-disable-next-line no-control-regex
const CONTROLS = /[\x00-\x09\x0b-\x1f\x7f\u0080-\u009f]/;

beforeAll(async () => {
  requireBuild();
  site = makeSite('[delivery]\nsendmail = "/bin/true"\nmta = "sendmail"\n');
  await Spool.open(site.spool, { create: true });
});
afterAll(() => site?.cleanup());

// req-apply11b.md B1 (lib/runner/runner.ts, runner11's): mailbag run's lines quote a
// recipient raw, `hub/ID: failed: <x\u009b2J@y.test>: …` (seen on 943903e). Applied:
// the runner's log passes its lines through peerText.
describe('apply11b: mailbag run prints no control character of a peer', () => {
  it('mailbag run, a job that fails for a recipient', async () => {
    plantJob('01a2071e3405aaaajsn3', 'rmail');
    const cfg = join(site.dir, 'false.toml');
    writeFileSync(cfg, `site = "home"\nspool = ${JSON.stringify(site.spool)}\n[delivery]\nsendmail = "/bin/false"\nmta = "sendmail"\n[peers.hub]\nhost = "hub.example.org"\n`);
    const r = await runBin(MAILBAG_BIN, ['run', '--config', cfg], '');
    expect(r.stdout + r.stderr).toMatch(/01a2071e3405aaaajsn3: failed: [^\n]*bad job header: args\[0\] contains a control character \(U\+009B\)/);
    expect(r.stdout + r.stderr).not.toMatch(CONTROLS);
  });
});

describe('apply11b: --json output holds no control character of a peer, and the same values', () => {
  it('mailbag status --jobs --json', async () => {
    plantJob('01a2071e3405aaaajsn1', 'rmail');
    const r = await runBin(MAILBAG_BIN, ['status', '--jobs', '--json', '--config', site.config], '');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(CONTROLS);
    const job = (JSON.parse(r.stdout) as { jobs: { id: string; sender: string; recipients: string[] }[] }).jobs.find((j) => j.id === '01a2071e3405aaaajsn1');
    expect(job?.sender).toBeNull();
    expect((job as unknown as { problem: string }).problem).toMatch(/contains a control character \(U\+009B\)/);
  });

  it('mailbag failed --json', async () => {
    plantJob('01a2071e3405aaaajsn2', 'evil'); // not in accept: fails for good at the run
    const run = await runBin(MAILBAG_BIN, ['run', '--config', site.config], '');
    expect(run.stdout + run.stderr).toMatch(/01a2071e3405aaaajsn2: failed/);
    const r = await runBin(MAILBAG_BIN, ['failed', '--json', '--config', site.config], '');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(CONTROLS);
    const job = (JSON.parse(r.stdout) as { id: string; sender: string; recipients: string[] }[]).find((j) => j.id === '01a2071e3405aaaajsn2');
    expect(job?.recipients).toEqual([]);
    expect((job as unknown as { reason: string }).reason).toMatch(/contains a control character \(U\+009B\)/);
  });
});
