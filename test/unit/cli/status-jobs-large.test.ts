// `mailbag status --jobs` on a spool with many received jobs waiting: each job is written
// out as it is read, not gathered first (DESIGN.md promise 7, bounded memory), so what it
// holds does not grow with in/ but for the list of names. Shown with the built command
// under a small V8 heap and 20,000 jobs, text and --json (the JSON the same document
// JSON.stringify gave, parsed whole here).

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
  for (const d of dirs.splice(0)) if (!process.env.F9KEEP) rmSync(d, { recursive: true, force: true });
});

describe.skipIf(!built)('mailbag status --jobs on a large in/ queue', () => {
  it('lists 20,000 waiting jobs within a 12 MiB heap, text and --json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailbag-status-large-'));
    dirs.push(dir);
    const root = join(dir, 'spool');
    await Spool.open(root, { create: true });
    // written directly (no fsync each): the listing only reads them
    const inq = join(root, 'in', 'hub');
    mkdirSync(inq, { recursive: true, mode: 0o700 });
    const t0 = Date.now() - 86_400_000;
    const n = 20_000;
    const first = newJobId(t0);
    const rcpts = (i: number): string[] => Array.from({ length: 4 }, (_, k) => `recipient-${k}-${i}@y.example`);
    for (let i = 0; i < n; i++) {
      const id = i === 0 ? first : newJobId(t0 + i);
      const head = encodeJobHeader({ id, from: 'hub', to: 'home', created: new Date(t0 + i).toISOString(), command: 'rmail', args: rcpts(i), sender: 'sender@x.example', recipients: rcpts(i) });
      writeFileSync(join(inq, id), Buffer.concat([head, Buffer.from('From s  Sun Nov 22 04:10:00 2026\nSubject: x\n\nbody\n')]), { mode: 0o600 });
    }
    const toml = join(dir, 'mailbag.toml');
    writeFileSync(toml, `site = "home"\nspool = ${JSON.stringify(root)}\n[peers.hub]\naccept = ["rmail"]\n`);
    const env = { ...process.env, MAILBAG_FAULT: '' };

    const text = await run(process.execPath, ['--max-old-space-size=12', mailbagBin, 'status', '--jobs', '--config', toml], { env, timeoutMs: 180_000 });
    expect(text.signal, String(text.stderr).slice(-300)).toBeNull();
    expect(text.code, String(text.stderr).slice(-300)).toBe(0);
    const lines = text.stdout.toString('utf8').split('\n');
    expect(lines.length).toBe(2 * n + 2);
    expect(lines[1]).toMatch(new RegExp(`^hub/${first}  rmail  from <sender@x\\.example>  to <recipient-0-0@y\\.example> `));

    const json = await run(process.execPath, ['--max-old-space-size=12', mailbagBin, 'status', '--jobs', '--json', '--config', toml], { env, timeoutMs: 180_000 });
    expect(json.signal, String(json.stderr).slice(-300)).toBeNull();
    expect(json.code, String(json.stderr).slice(-300)).toBe(0);
    const parsed = JSON.parse(json.stdout.toString('utf8')) as { version: number; jobs: Array<{ id: string; recipients: string[] }>; unmoved: object };
    expect(parsed.version).toBe(1);
    expect(parsed.jobs).toHaveLength(n);
    expect(parsed.jobs[0]).toMatchObject({ id: first, recipients: rcpts(0) });
    expect(parsed.unmoved).toEqual({});
  }, 400_000);
});
