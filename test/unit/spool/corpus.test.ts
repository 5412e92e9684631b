// Real messages through the spool: every message of the corpus's odd and large parts
// becomes a job (streamed in uneven chunks) and reads back byte for byte with its
// header. Exercises the commit and the bounded reader on 8-bit, CRLF and
// multi-megabyte payloads.

import { createReadStream, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { corpusFiles, haveCorpus } from '../../helpers/corpus.js';
import { newJobId, type JobHeader } from '../../../lib/job/index.js';
import { Spool } from '../../../lib/spool/index.js';

describe.runIf(haveCorpus())('corpus messages through the spool', () => {
  let dir: string;
  let spool: Spool;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mailbag-spool-corpus-'));
    spool = await Spool.open(join(dir, 'spool'), { create: true });
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  for (const part of ['odd', 'large'] as const) {
    it(`${part}: every message is written and read back byte for byte`, async () => {
      const files = corpusFiles(part);
      expect(files.length).toBeGreaterThan(40);
      const written = new Map<string, { file: string; header: JobHeader }>();
      for (const file of files) {
        const header: JobHeader = {
          id: newJobId(), from: 'home', to: part, created: new Date().toISOString(), command: 'rmail',
          args: ['rcpt@example.net'], sender: 'sender@example.org', recipients: ['rcpt@example.net'],
        };
        // odd chunk sizes, so chunk borders fall anywhere
        await spool.writeJob('out', part, header, createReadStream(file, { highWaterMark: 7919 }), { maxSize: 8 * 1024 * 1024 });
        written.set(header.id, { file, header });
      }
      const refs = await spool.listJobs('out', part);
      expect(refs.map((r) => r.id)).toEqual([...written.keys()].sort());
      for (const ref of refs) {
        const { file, header } = written.get(ref.id)!;
        const job = await spool.readJob(ref);
        expect(job.header).toEqual(header);
        const parts: Buffer[] = [];
        for await (const c of job.payload()) parts.push(c as Buffer);
        const back = Buffer.concat(parts);
        expect(back.equals(readFileSync(file)), file).toBe(true);
      }
      expect(readdirSync(spool.tmpDir)).toEqual([]);
    }, 300_000);
  }
});
