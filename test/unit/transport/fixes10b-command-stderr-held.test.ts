// A transport command that leaves a process behind holding its stderr (ssh's
// ControlPersist master on an older OpenSSH, a wrapper that starts an agent in the
// background): once the command has exited, the link settles with its exit status and
// the stderr it wrote, instead of waiting for the pipe to close and ending every session
// with close()'s grace ('did not close within 10000 ms').
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { commandTransport } from '../../../lib/transport/index.js';

let dir: string | undefined;
afterEach(() => {
  if (!dir) return;
  // the process the command left: stopped by its PID
  try {
    process.kill(Number(readFileSync(join(dir, 'pid'), 'utf8').trim()), 'SIGKILL');
  } catch {
    // gone already
  }
  rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

it('a command whose leftover process holds stderr: the link settles once the command exits, its stderr kept', async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-f10b-stderr-'));
  const pid = join(dir, 'pid');
  const link = await commandTransport({ argv: ['sh', '-c', `sleep 60 </dev/null >/dev/null & echo $! > '${pid}'; echo 'far side: hello' >&2; exec cat`] }).connect();
  link.input.resume();
  const t0 = performance.now();
  const end = await link.close();
  const ms = performance.now() - t0;
  expect(end.ok).toBe(true);
  expect(end.exitCode).toBe(0);
  expect(end.stderr).toContain('far side: hello');
  // not close()'s grace of 10 s (1 s of stderr after the exit, and room for a loaded machine)
  expect(ms).toBeLessThan(8000);
});
