// review8b: 730939a refuses an rmail sender ending in `!<>` (the peer's rmail reads the
// user `<>` as the null sender). Its only test run from the sources is a fast-check
// property that finds `a!<>` in about half of its runs (test/unit/cli/front-doors runs
// the built bins); these examples fail every time without the check.

import { mkdtempSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { enqueueMessage } from '../../lib/cli/front-door.js';
import { parseConfig } from '../../lib/config/index.js';
import { checkSender, formatFromLine } from '../../lib/envelope/index.js';
import { InputError } from '../../lib/errors.js';
import { Spool } from '../../lib/spool/spool.js';

it('formatFromLine and the rmail check refuse a sender ending in !<>', () => {
  expect(checkSender('gw!<>', 'rmail').ok).toBe(false);
  expect(() => formatFromLine({ sender: 'gw!<>', date: new Date(0) })).toThrow(InputError);
});

it('enqueue -f gw!<>: 65, nothing queued (rmail cannot carry it, BSMTP refuses "<")', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'review8b-bang-'));
  try {
    const config = parseConfig(`site = "home"\nspool = "spool"\n[peers.hub]\nhost = "hub.example.org"\n`, join(dir, 'mailbag.toml'));
    const spool = await Spool.open(config.spool, { create: true });
    const run = enqueueMessage(spool, config, 'hub', { sender: 'gw!<>', recipients: ['b@example.net'], stripFromLine: true }, (async function* () {
      yield Buffer.from('Subject: x\n\nbody\n');
    })());
    await expect(run).rejects.toMatchObject({ exitCode: 65 });
    const out = join(config.spool, 'out', 'hub');
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
