// sec11: a peer's words on the admin's terminal. docs/protocol.md: a peer's ERROR/REFUSE
// text is printed "with … any other control character as `?`, so a peer cannot forge a
// line of ours or send a terminal escape sequence to the admin's screen" (peerText,
// lib/session/messages.ts). A job's header is the peer's text too, and the receiver takes
// a header whose sender, recipients and args hold ESC (lib/job/header.ts refuses only
// NUL, CR and LF there). `mailbag status --jobs` and `mailbag failed` print those fields
// raw: seen on 23cf188, a job from hub with sender "s\e[31mRED\e[0m@x.test" and an
// OSC 8 hyperlink in a recipient came out byte for byte (colours, a clickable fake link;
// OSC 0 retitles the window, other sequences clear the screen or, on some terminals,
// answer back into the input).
// req-sec11.md R5 in two parts. The header part (apply11, lib/job/header.ts): a header
// whose sender or a recipient holds a C0 control or DEL (args: other than TAB) is refused,
// so such a job is shown as unreadable and its fields are never printed: the first two
// cases hold. A C1 control (U+0080–U+009F, e.g. U+009B, CSI on some terminals) was taken by
// the header and printed raw by status/failed until the printing part (peerText in
// lib/cli/status.ts and failed.ts) was applied; since sec12 (session 12) the header refuses
// C1 too, so the last two cases now see an unreadable job whose reason is printed clean.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Spool } from '../../lib/spool/index.js';
import { MAILBAG_BIN, makeSite, requireBuild, runBin, type Site } from '../unit/cli/front-door-helpers.js';

const E = '\x1b';
let site: Site;

const C0 = {
  args: [`${E}]0;pwned${E}\\a@y.test`],
  sender: `s${E}[31mRED${E}[0m@x.test`,
  recipients: [`r${E}]8;;http://evil.test${E}\\click${E}]8;;${E}\\@y.test`, `x\u009b2J@y.test`],
};
// C1 only: CSI (U+009B) clears the screen, OSC (U+009D) … ST (U+009C) retitles the window
const C1 = {
  args: ['x\u009b2J@y.test'],
  sender: 's\u009d0;pwned\u009c@x.test',
  recipients: ['x\u009b2J@y.test'],
};

function plantJob(id: string, command: string, fields: typeof C0 = C0): void {
  const dir = join(site.spool, 'in', 'hub');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const header = {
    id,
    from: 'hub',
    to: 'home',
    created: new Date().toISOString(),
    command,
    ...fields,
  };
  writeFileSync(join(dir, id), `mailbag-job 1\n${JSON.stringify(header)}\nFrom s Mon Nov 23 06:35:49 2026\nSubject: t\n\nx\n`, { mode: 0o600 });
}

// eslint-disable-next-line no-control-regex
const CONTROLS = /[\x00-\x09\x0b-\x1f\x7f\u0080-\u009f]/;

beforeAll(async () => {
  requireBuild();
  site = makeSite('[delivery]\nsendmail = "/bin/true"\nmta = "sendmail"\n');
  await Spool.open(site.spool, { create: true });
  plantJob('01a2071e3405aaaaesc1', 'rmail');
});
afterAll(() => site?.cleanup());

describe('sec11: job header fields from a peer, printed for the admin', () => {
  // req-sec11.md R5, the header part: the job is unreadable, its fields not printed
  it('mailbag status --jobs shows no control character of the peer', async () => {
    const r = await runBin(MAILBAG_BIN, ['status', '--jobs', '--config', site.config], '');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('01a2071e3405aaaaesc1');
    expect(r.stdout).not.toMatch(CONTROLS);
  });

  // req-sec11.md R5, the header part
  it('mailbag failed shows no control character of the peer', async () => {
    plantJob('01a2071e3405aaaaesc2', 'evil'); // not in accept: fails for good at the run
    const run = await runBin(MAILBAG_BIN, ['run', '--config', site.config], '');
    expect(run.stdout + run.stderr).toMatch(/01a2071e3405aaaaesc2: failed/);
    const r = await runBin(MAILBAG_BIN, ['failed', '--config', site.config], '');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('01a2071e3405aaaaesc2');
    expect(r.stdout).not.toMatch(CONTROLS);
  });

  // req-sec11.md R5, the printing part (lib/cli/status.ts formatJob: peerText; applied by apply11b)
  it('mailbag status --jobs shows no C1 control of the peer', async () => {
    plantJob('01a2071e3405aaaaesc3', 'rmail', C1);
    const r = await runBin(MAILBAG_BIN, ['status', '--jobs', '--config', site.config], '');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/hub\/01a2071e3405aaaaesc3 {2}unreadable job[^\n]*\n[^\n]*contains a control character \(U\+009B\)/); // sec12: refused by the header
    expect(r.stdout).not.toMatch(CONTROLS);
  });

  // req-sec11.md R5, the printing part (lib/cli/failed.ts: peerText; applied by apply11b)
  it('mailbag failed shows no C1 control of the peer', async () => {
    plantJob('01a2071e3405aaaaesc4', 'evil', C1);
    const run = await runBin(MAILBAG_BIN, ['run', '--config', site.config], '');
    expect(run.stdout + run.stderr).toMatch(/01a2071e3405aaaaesc4: failed/);
    const r = await runBin(MAILBAG_BIN, ['failed', '--config', site.config], '');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/01a2071e3405aaaaesc4[^\n]*\n[^\n]*\n[^\n]*U\+009B/);
    expect(r.stdout).not.toMatch(CONTROLS);
  });
});
