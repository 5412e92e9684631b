// `mailbag demo` end to end, in its own temp dir (never the checkout's spool/): two sites,
// the embedded SSH server, mail both ways, and a report of what crossed.

import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../lib/cli/demo.js';
import { ids, tempDir } from '../unit/session/sites.js';
import { Spool } from '../../lib/spool/spool.js';
import { join } from 'node:path';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe('mailbag demo', () => {
  it('moves a batch each way over the embedded SSH server and says what crossed', async () => {
    const t = tempDir('demo');
    cleanups.push(t.remove);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    stdout.on('data', (c: Buffer) => (out += c.toString()));
    stderr.resume();
    const code = await main(['--dir', t.dir, '--down', '120', '--up', '30'], {
      stdin: new PassThrough(), stdout, stderr, env: { ...process.env }, cwd: t.dir, isTTY: false,
    });
    expect(code, out).toBe(0);
    expect(out).toMatch(/hub -> home {2}120 jobs/);
    expect(out).toMatch(/home -> hub {2}30 jobs/);
    expect(out).toMatch(/on the wire: /);
    expect(out).toMatch(/a second sync: 0 jobs moved/);
    expect(out).toMatch(/every message crossed exactly once/);
    const home = { name: 'home', root: join(t.dir, 'home'), spool: await Spool.open(join(t.dir, 'home')) };
    expect(ids(home, 'in', 'hub')).toHaveLength(120);
  }, 60_000);
});
