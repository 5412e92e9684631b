// mailbag run / failed / retry as commands: argv parsed, output for the admin, the job
// really moves between the queues.

import { afterEach, describe, expect, it } from 'vitest';
import { main as failedMain } from '../../../lib/cli/failed.js';
import { main as retryMain } from '../../../lib/cli/retry.js';
import { main as runMain } from '../../../lib/cli/run-jobs.js';
import { cliCommand as cmd, makeSite, RMAIL_PAYLOAD, type Site } from './helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

describe('mailbag run, failed, retry', () => {
  it('run fails a refused job, failed lists it with its reason, retry puts it back, run delivers it', async () => {
    site = await makeSite({ exits: '67,0' });
    const id = await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
    const r1 = await cmd(runMain, site, ['--peer', 'hub']);
    expect(r1.code).toBe(0);
    expect(r1.out).toMatch(/run: 0 done, 0 to retry, 1 failed, 0 skipped/);
    const f = await cmd(failedMain, site, ['hub']);
    expect(f.out).toContain(`hub/${id}  rmail  from <>  to <r@y.example>`);
    expect(f.out).toMatch(/notice sent/);
    expect(f.out).toMatch(/<r@y\.example>: x-unix; \S+ exited 67/);
    const json = JSON.parse((await cmd(failedMain, site, ['--json'])).out) as Array<{ id: string }>;
    expect(json.map((j) => j.id)).toEqual([id]);
    const r = await cmd(retryMain, site, [id]);
    expect(r.out).toContain(`hub/${id} is back in in/hub`);
    expect((await cmd(failedMain, site, [])).out).toBe('no failed jobs\n');
    const r2 = await cmd(runMain, site, ['--quiet']);
    expect(r2.out).toBe('run: 1 done, 0 to retry, 0 failed, 0 skipped\n');
    await expect(cmd(retryMain, site, ['nope'])).rejects.toThrow(/not a job id/);
    await expect(cmd(runMain, site, ['--bogus'])).rejects.toThrow(/unknown argument/);
  });
});
