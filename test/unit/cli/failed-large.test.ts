// `mailbag failed` on a spool with many failed jobs: each job is written out as it is read,
// not gathered first (DESIGN.md promise 7, bounded memory), so what it holds does not grow
// with the failed queue but for the list of names. Shown with the built command under a
// small V8 heap (12 MiB) and 8,000 failed jobs: before, it gathered every job's record
// (about 1 KiB each) and died of it (out of memory, signal 6; at 24 MiB it spent a minute
// collecting garbage).

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeJobHeader, newJobId } from '../../../lib/job/index.js';
import { Spool } from '../../../lib/spool/index.js';
import { mailbagBin, run } from '../../helpers/mta-common.js';
import { need } from '../../helpers/need.js';

const built = need('the built mailbag', [mailbagBin], 'run npm run build first (npm test does)');

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe.skipIf(!built)('mailbag failed on a large failed queue', () => {
  it('lists 8,000 failed jobs within a 12 MiB heap, text and --json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailbag-failed-large-'));
    dirs.push(dir);
    const root = join(dir, 'spool');
    await Spool.open(root, { create: true });
    // written directly (no fsync each): the listing only reads them
    const failed = join(root, 'failed', 'hub');
    mkdirSync(failed, { recursive: true, mode: 0o700 });
    const t0 = Date.now() - 86_400_000;
    const n = 8_000;
    const first = newJobId(t0);
    for (let i = 0; i < n; i++) {
      const id = i === 0 ? first : newJobId(t0 + i);
      const head = encodeJobHeader({ id, from: 'hub', to: 'home', created: new Date(t0 + i).toISOString(), command: 'rmail', args: [`r${i}@y.example`], sender: 's@x.example', recipients: [`r${i}@y.example`] });
      writeFileSync(join(failed, id), Buffer.concat([head, Buffer.from('From s  Sun Nov 22 04:10:00 2026\nSubject: x\n\nbody\n')]), { mode: 0o600 });
    }
    const toml = join(dir, 'mailbag.toml');
    writeFileSync(toml, `site = "home"\nspool = ${JSON.stringify(root)}\n[peers.hub]\naccept = ["rmail"]\n`);
    const env = { ...process.env, MAILBAG_FAULT: '' };

    const text = await run(process.execPath, ['--max-old-space-size=12', mailbagBin, 'failed', '--config', toml], { env, timeoutMs: 120_000 });
    expect(text.signal, String(text.stderr).slice(-300)).toBeNull();
    expect(text.code).toBe(0);
    const lines = text.stdout.toString('utf8').split('\n');
    expect(lines.length).toBe(3 * n + 1);
    expect(lines[0]).toBe(`hub/${first}  rmail  from <s@x.example>  to <r0@y.example>`);

    const json = await run(process.execPath, ['--max-old-space-size=12', mailbagBin, 'failed', '--json', '--config', toml], { env, timeoutMs: 120_000 });
    expect(json.signal, String(json.stderr).slice(-300)).toBeNull();
    const parsed = JSON.parse(json.stdout.toString('utf8')) as Array<{ id: string; recipients: string[] }>;
    expect(parsed).toHaveLength(n);
    expect(parsed[0]).toMatchObject({ id: first, recipients: ['r0@y.example'] });
  }, 300_000);
});
