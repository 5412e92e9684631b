// bench/relay.ts's failure reports and its free-space check before the big test (a
// 1,000 MB message on a small file system used to fail after minutes with the first line
// of sync's stderr only), and --no-corpus whatever the order of the options.

import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { bigSpaceNeeded, bigSpaceProblem, diskSpace, exitReport, oneLine, parseArgs } from '../../../bench/relay.js';

describe('bench relay', () => {
  it('--no-corpus leaves out the corpus relays also before --variants', () => {
    expect(parseArgs(['--big', '--no-corpus', '--rounds', '1', '--no-cut', '--variants', 'ssh2'])).toMatchObject({ corpus: false, big: true, cut: false, variants: ['ssh2'] });
    expect(parseArgs(['--variants', 'ssh2', '--no-corpus'])).toMatchObject({ corpus: false, variants: ['ssh2'] });
    expect(parseArgs([])).toMatchObject({ corpus: true });
  });

  it('a failed process is reported with the tail of its stderr, where the cause is, not its first line only', () => {
    const stderr = [
      '12:00:01.123 sync: process started',
      '4.4.2 mailbag: session with hub broke: ssh … "mailbag serve --peer home": remote command exited with status 75:',
      ...Array.from({ length: 50 }, (_, i) => `line ${i}`),
      '4.3.1 mailbag: no space left: ENOSPC: no space left on device, write',
      '',
    ].join('\n');
    const r = exitReport('big sync', { code: 75, signal: null, stderr });
    const lines = r.split('\n');
    expect(lines[0]).toBe('big sync exited 75; its stderr:');
    expect(lines[lines.length - 1]).toBe('    4.3.1 mailbag: no space left: ENOSPC: no space left on device, write');
    expect(r).toContain('(12 earlier stderr lines left out)');
    expect(r).not.toContain('process started');
    expect(lines).toHaveLength(2 + 40);
    expect(oneLine(r)).toBe('big sync exited 75; its stderr: … 4.3.1 mailbag: no space left: ENOSPC: no space left on device, write');
    expect(exitReport('floor', { code: null, signal: 'SIGKILL', stderr: '' })).toBe('floor exited SIGKILL, nothing on stderr');
  });

  it('the big test says before it starts how much space it needs and how much there is', async () => {
    const MB = 1e6;
    // a fresh 3 GB image (/work/brief/freshfs.sh) has 2,983 MB free: 1,000 MB fits, 1,500 MB does not
    expect(bigSpaceProblem('/mnt/x', 1000 * MB, 2983 * MB)).toBeUndefined();
    expect(bigSpaceProblem('/mnt/x', 1500 * MB, 2983 * MB)).toBe(
      'not enough free space for the 1500 MB big test in /mnt/x: it needs about 3509 MB (the job in both spools, its compressed bag, 128 MiB more), 2983 MB are free; give --tmp a larger file system or --big-mb a smaller message',
    );
    expect(bigSpaceNeeded(1000 * MB)).toBeGreaterThan(2290 * MB); // the measured peak of a 1,000 MB run
    const d = await diskSpace(tmpdir());
    expect(d.free).toBeGreaterThan(0);
    expect(d.total).toBeGreaterThanOrEqual(d.free);
    expect(bigSpaceProblem(tmpdir(), d.free, d.free)).toMatch(/^not enough free space for the \d+ MB big test/);
  });
});
