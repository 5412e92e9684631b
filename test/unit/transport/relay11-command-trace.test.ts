// The command transport's MAILBAG_TRACE lines, which the relay bench's timeline reads
// (bench/relay.ts traceEnds): the child's spawn, said by the time connect() resolves (no
// longer a turn of the event loop later, at 'spawn'), and its exit with its status.

import { describe, expect, it } from 'vitest';
import { commandTransport } from '../../../lib/transport/index.js';

describe('command transport trace', () => {
  it('says the spawn (with its pid) before connect() resolves, and the exit with its status', async () => {
    const lines: string[] = [];
    const link = await commandTransport({ argv: ['sh', '-c', 'cat >/dev/null; exit 3'], trace: (l) => lines.push(l) }).connect();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^command: sh spawned \(pid \d+\)$/);
    link.output.end();
    const end = await link.done;
    expect(end.exitCode).toBe(3);
    expect(lines[1]).toBe('command: sh exited (status 3)');
  });

  it('a child killed by a signal: its exit says the signal', async () => {
    const lines: string[] = [];
    const link = await commandTransport({ argv: ['sh', '-c', 'kill -9 $$'], trace: (l) => lines.push(l) }).connect();
    link.output.end();
    await link.done;
    expect(lines[1]).toBe('command: sh exited (SIGKILL)');
  });

  it('a program that is not there: no spawn line, the configuration error', async () => {
    const lines: string[] = [];
    await expect(commandTransport({ argv: ['/nonexistent/relay11-ssh'], trace: (l) => lines.push(l) }).connect()).rejects.toThrow(/not found/);
    expect(lines).toEqual([]);
  });
});
