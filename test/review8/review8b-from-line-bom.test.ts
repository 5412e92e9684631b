// review8b: 730939a made formatFromLine take only a sender that reads back as itself (its
// property test found `a!<>`). A wider alphabet finds another: a sender or system that
// begins with U+FEFF. The reader decoded each word with a TextDecoder that strips a
// leading byte-order mark, so `From \uFEFFa@x  …` read back as `a@x`: the job's header
// said one sender, the peer's runner (lib/deliver/rmail.ts, the same reader) handed
// sendmail another; a From_ line on stdin lost it in the front door the same way.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { enqueueMessage } from '../../lib/cli/front-door.js';
import { parseConfig, type Config } from '../../lib/config/index.js';
import { formatFromLine, parseUucpEnvelope } from '../../lib/envelope/index.js';
import { readJobFile, Spool } from '../../lib/spool/spool.js';

const BOM = '\uFEFF';
const DATE = 'Sun Nov 22 04:10:00 2026';

describe('a byte-order mark at the start of an envelope word is kept', () => {
  it('formatFromLine: the sender reads back as itself', () => {
    const line = formatFromLine({ sender: `${BOM}a@example.org`, date: new Date(0) });
    const e = parseUucpEnvelope(Buffer.from(`${line}Subject: x\n`));
    expect(e.ok && e.value.sender).toBe(`${BOM}a@example.org`);
  });

  it('the reader keeps it in the user and in a remote-from system', () => {
    const e = parseUucpEnvelope(Buffer.from(`From ${BOM}u  ${DATE} remote from ${BOM}gw\nSubject: x\n`));
    expect(e.ok && e.value.user).toBe(`${BOM}u`);
    expect(e.ok && e.value.systems).toEqual([`${BOM}gw`]);
    expect(e.ok && e.value.sender).toBe(`${BOM}gw!${BOM}u`);
  });
});

describe('enqueue: the peer reads the sender the job header names', () => {
  let dir: string;
  let spool: Spool;
  let config: Config;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'review8b-bom-'));
    config = parseConfig(`site = "home"\nspool = "spool"\n[peers.hub]\nhost = "hub.example.org"\n`, join(dir, 'mailbag.toml'));
    spool = await Spool.open(config.spool, { create: true });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  for (const [how, sender, stdin] of [
    ['-f', `${BOM}a@example.org`, 'Subject: x\n\nbody\n'],
    ['a From_ line on stdin', undefined, `From ${BOM}a@example.org  ${DATE}\nSubject: x\n\nbody\n`],
  ] as const) {
    it(`sender by ${how}`, async () => {
      const done = await enqueueMessage(spool, config, 'hub', { sender, recipients: ['b@example.net'], stripFromLine: true }, (async function* () {
        yield Buffer.from(stdin);
      })());
      expect(done.header).toMatchObject({ command: 'rmail', sender: `${BOM}a@example.org` });
      const job = await readJobFile(done.ref.path);
      const payload = readFileSync(done.ref.path).subarray(job.payloadOffset);
      const e = parseUucpEnvelope(payload);
      expect(e.ok && e.value.sender).toBe(done.header.sender);
    });
  }
});
