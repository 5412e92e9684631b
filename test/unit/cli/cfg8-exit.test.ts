// docs/exit-codes.md's table against lib/exit.ts, the one table of meanings: every error
// code is documented once with its exit status, enhanced status code and whether an MTA
// retries; configuration errors are temporary (75, 4.3.5) so that mail waits in the MTA
// while the admin fixes the file.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MEANINGS, type ErrorCode } from '../../../lib/exit.js';
import { packageRoot } from '../../../lib/config/index.js';

const page = readFileSync(join(packageRoot(), 'docs/exit-codes.md'), 'utf8');

function documented(): Map<string, { exitCode: number; status: string; temporary: boolean }> {
  const table = page.slice(page.indexOf('## The table'));
  const out = new Map<string, { exitCode: number; status: string; temporary: boolean }>();
  for (const line of table.split('\n')) {
    const row = /^\| ((?:`[a-z-]+`(?:, )?)+) \| (\d+) \| ([245]\.\d\.\d) \| (yes|no) \|/.exec(line);
    if (!row) continue;
    for (const code of row[1]!.match(/[a-z-]+/g)!) {
      expect(out.has(code), `${code} twice`).toBe(false);
      out.set(code, { exitCode: Number(row[2]), status: row[3]!, temporary: row[4] === 'yes' });
    }
  }
  return out;
}

describe('docs/exit-codes.md', () => {
  it('documents every error code of lib/exit.ts as it is, and no other', () => {
    const docs = documented();
    expect([...docs.keys()].sort()).toEqual(Object.keys(MEANINGS).sort());
    for (const [code, meaning] of Object.entries(MEANINGS)) expect(docs.get(code), code).toEqual(meaning);
  });

  it('configuration and usage errors are 75 and 4.3.5: the MTA keeps the mail', () => {
    for (const code of ['config', 'unknown-peer', 'usage'] as ErrorCode[]) {
      expect(MEANINGS[code]).toEqual({ exitCode: 75, status: '4.3.5', temporary: true });
    }
  });

  it('every temporary code exits 75 with a 4.x.x status except protocol (76, not MTA-facing), and none exits 73 or 74', () => {
    for (const [code, m] of Object.entries(MEANINGS)) {
      if (m.temporary && code !== 'protocol') expect(m.exitCode, code).toBe(75);
      expect([73, 74], code).not.toContain(m.exitCode);
      if (m.temporary) expect(m.status[0], code).toBe('4');
    }
  });
});
