// Several processes creating the same fresh spool at once and writing jobs into the
// same queue: every job arrives whole, none is lost or replaced, nothing stays in tmp/.

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { builtLib, haveBuild, removeBuiltLib } from './built.js';
import { Spool } from '../../../lib/spool/index.js';


let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-spool-conc-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function run(script: string): Promise<number | null> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'inherit'] });
    const timer = setTimeout(() => p.kill('SIGKILL'), 90_000);
    p.on('error', rej);
    p.on('exit', (code) => {
      clearTimeout(timer);
      res(code);
    });
  });
}

describe.runIf(haveBuild())('concurrent writers', () => {
  const dist = builtLib();
  afterAll(removeBuiltLib);
  it('four processes make one fresh spool and write 25 jobs each into one queue', async () => {
    const root = join(dir, 'spool');
    const startAt = Date.now() + 1000;
    const child = (n: number): string => `
      import { Spool } from ${JSON.stringify(join(dist, 'spool', 'index.js'))};
      import { newJobId } from ${JSON.stringify(join(dist, 'job', 'index.js'))};
      while (Date.now() < ${startAt}) {}
      const spool = await Spool.open(${JSON.stringify(root)}, { create: true });
      for (let i = 0; i < 25; i++) {
        const h = { id: newJobId(), from: 'home', to: 'hub', created: new Date().toISOString(), command: 'rmail',
          args: ['r${n}@x'], sender: 's@y', recipients: ['r${n}@x'] };
        await spool.writeJob('out', 'hub', h, Buffer.from('child ${n} job ' + i + '\\n'));
      }
    `;
    const codes = await Promise.all([0, 1, 2, 3].map((n) => run(child(n))));
    expect(codes).toEqual([0, 0, 0, 0]);
    const spool = await Spool.open(root);
    const refs = await spool.listJobs('out', 'hub');
    expect(refs.length).toBe(100);
    const seen = new Set<string>();
    for (const ref of refs) {
      const job = await spool.readJob(ref);
      const parts: Buffer[] = [];
      for await (const c of job.payload()) parts.push(c as Buffer);
      const text = Buffer.concat(parts).toString();
      expect(text).toMatch(/^child [0-3] job \d+\n$/);
      expect(job.header.recipients[0]).toBe(`r${text[6]}@x`);
      seen.add(text);
    }
    expect(seen.size).toBe(100);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
  });
});
