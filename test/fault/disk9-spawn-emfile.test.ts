// runChild (the sendmail hand-over) when the process is out of file descriptors (EMFILE:
// `ulimit -n` low, delivery.concurrency high): spawn makes no pipes and the child's
// stdin/stdout/stderr are undefined. runChild used them at once, so the hand-over threw a
// TypeError ("Cannot read properties of undefined (reading 'on')") and the child's later
// 'error' event, with no listener left, ended the whole `mailbag run` ("internal error:
// spawn … EMFILE", every worker's jobs with it); the message file's own failed open
// (EMFILE) had no listener either. Now the spawn error is the outcome of that one
// hand-over (a temporary failure, retried). Run in a child process with a low
// `ulimit -n`, against the repo's dist/lib (CI builds once before the tests). Seen
// failing before the fix (the TypeError, then an uncaught `spawn /bin/cat EMFILE`).

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { need } from '../helpers/need.js';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const lib = join(repo, 'dist', 'lib');
const sendmailJs = join(lib, 'deliver', 'sendmail.js');
const ready = need('the built library (dist/lib)', [sendmailJs], 'run npm run build first');
const dir = mkdtempSync(join(tmpdir(), 'mailbag-disk9-emfile-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

it.skipIf(!ready)('a spawn without descriptors left resolves with its EMFILE, not a TypeError nor an unlistened stream error', () => {
  const script = join(dir, 'emfile.mjs');
  writeFileSync(script, `
import { closeSync, createReadStream, openSync } from 'node:fs';
const { runChild } = await import(${JSON.stringify(sendmailJs)});
const fds = [];
try { for (;;) fds.push(openSync('/dev/null', 'r')); } catch {}
closeSync(fds.pop()); closeSync(fds.pop()); // two left: fewer than three pipes need
process.on('uncaughtException', (err) => { console.log(JSON.stringify({ uncaught: String(err) })); process.exit(0); });
const out = [];
// a message given as bytes, and one given as a file stream (its open fails too)
for (const input of [Buffer.from('x'), createReadStream(${JSON.stringify(script)})]) {
  try {
    const o = await runChild('/bin/cat', [], input, process.env, 10000);
    out.push({ code: o.code, spawnError: o.spawnError && o.spawnError.code });
  } catch (err) {
    out.push({ threw: String(err) });
  }
}
// let a late stream error surface (it would be uncaught) before the answer is given
await new Promise((r) => setTimeout(r, 100));
console.log(JSON.stringify(out));
for (const fd of fds) closeSync(fd);
`);
  const r = spawnSync('/bin/sh', ['-c', `ulimit -n 64 && exec "${process.execPath}" "${script}"`], { encoding: 'utf8', timeout: 30_000 });
  expect(r.stderr).toBe('');
  expect(r.stdout.trim().split('\n')).toEqual([JSON.stringify([{ code: null, spawnError: 'EMFILE' }, { code: null, spawnError: 'EMFILE' }])]);
});

it.skipIf(!ready)('Postfix sendmail -bs without descriptors left: every recipient temporary, not a TypeError ending the process', () => {
  const script = join(dir, 'emfile-bs.mjs');
  const config = join(dir, 'mailbag.toml');
  const message = join(dir, 'message');
  writeFileSync(config, `site = "home"\nspool = "${join(dir, 'spool')}"\n[delivery]\nsendmail = "/bin/cat"\nmta = "postfix"\n`);
  writeFileSync(message, 'Subject: t\n\nbody\n');
  writeFileSync(script, `
import { closeSync, openSync } from 'node:fs';
const { loadConfig } = await import(${JSON.stringify(join(lib, 'config', 'index.js'))});
const { Deliverer } = await import(${JSON.stringify(join(lib, 'deliver', 'index.js'))});
const config = loadConfig({ path: ${JSON.stringify(config)}, env: process.env, cwd: ${JSON.stringify(dir)} });
const d = new Deliverer({ delivery: config.delivery, env: process.env, site: 'home' });
const tx = { index: 0, sender: 's@x.example', mailParams: [], recipients: [{ address: 'a@y.example', params: [] }], body: { path: ${JSON.stringify(message)}, start: 0, end: undefined, stuffed: false }, line: 1 };
process.on('uncaughtException', (err) => { console.log(JSON.stringify({ uncaught: String(err) })); process.exit(0); });
const fds = [];
try { for (;;) fds.push(openSync('/dev/null', 'r')); } catch {}
closeSync(fds.pop()); closeSync(fds.pop());
const out = [];
try {
  await d.deliverBatch([tx], () => new Set(), async (_tx, results) => { out.push(...results.map((r) => r.kind + ' ' + r.diagnostic)); });
} catch (err) {
  out.push('threw ' + String(err));
}
for (const fd of fds) closeSync(fd);
console.log(JSON.stringify(out));
`);
  const r = spawnSync('/bin/sh', ['-c', `ulimit -n 64 && exec "${process.execPath}" "${script}"`], { encoding: 'utf8', timeout: 30_000 });
  expect(r.stderr).toBe('');
  const lines = r.stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  const out = JSON.parse(lines[0]!) as string[];
  expect(out).toHaveLength(1);
  expect(out[0]).toMatch(/^temporary .*cannot run \/bin\/cat -bs: .*EMFILE/);
});
