// The listener's store on a real spool: a job streams in through the spool's commit
// function and is whole once committed; an aborted one leaves nothing, not even in tmp/.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SpoolLedger } from '../../../lib/lmtp/ledger.js';
import { SpoolJobStore } from '../../../lib/lmtp/spool-store.js';
import { Spool } from '../../../lib/spool/spool.js';
import { buildRouter } from '../../../lib/lmtp/route.js';
import { LmtpServer } from '../../../lib/lmtp/server.js';
import { LmtpClient } from './lmtp-client.js';

let dir: string;
let spool: Spool;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-lmtp-spool-'));
  spool = await Spool.open(join(dir, 'spool'), { create: true });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const draftHeader = { to: 'hub', command: 'rsmtp' as const, args: [], sender: '', recipients: ['a@x.test'] };

describe('SpoolJobStore', () => {
  it('streams chunks into one durable job with the full header', async () => {
    const store = new SpoolJobStore(spool, 'home');
    const d = await store.begin(draftHeader, { maxSize: 1000 });
    await d.write(Buffer.from('MAIL FROM:<>\n'));
    await d.write(Buffer.from('RCPT TO:<a@x.test>\nDATA\n'));
    await d.write(Buffer.from('hi\n.\n'));
    expect(await spool.listJobs('out', 'hub')).toHaveLength(0); // not before the commit
    const id = await d.commit();
    const [ref] = await spool.listJobs('out', 'hub');
    expect(ref!.id).toBe(id);
    const job = await spool.readJob(ref!);
    expect(job.header).toMatchObject({ id, from: 'home', to: 'hub', command: 'rsmtp', args: [], sender: '', recipients: ['a@x.test'] });
    const chunks: Buffer[] = [];
    for await (const c of job.payload()) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('MAIL FROM:<>\nRCPT TO:<a@x.test>\nDATA\nhi\n.\n');
    expect(readdirSync(spool.tmpDir)).toEqual([]);
  });

  it('abort leaves nothing, before or after writing', async () => {
    const store = new SpoolJobStore(spool, 'home');
    const a = await store.begin(draftHeader, { maxSize: 1000 });
    await a.abort();
    const b = await store.begin(draftHeader, { maxSize: 1000 });
    await b.write(Buffer.from('partial'));
    await b.abort();
    expect(await spool.listJobs('out', 'hub')).toEqual([]);
    expect(readdirSync(spool.tmpDir)).toEqual([]);
  });

  it('a payload past maxSize fails the write and leaves nothing', async () => {
    const store = new SpoolJobStore(spool, 'home');
    const d = await store.begin(draftHeader, { maxSize: 10 });
    await d.write(Buffer.from('0123456789'));
    expect(() => d.write(Buffer.from('x'))).toThrow(/larger than the limit/);
    await d.abort();
    expect(readdirSync(spool.tmpDir)).toEqual([]);
    expect(await spool.listJobs('out', 'hub')).toEqual([]);
  });
});

describe('listener on a real spool', () => {
  it('one job per peer in out/PEER, retried transaction stored once', async () => {
    const router = buildRouter({ peers: { hub: { name: 'hub', domains: ['a.test'], addresses: [] }, mx2: { name: 'mx2', domains: ['b.test'], addresses: [] } } });
    const server = new LmtpServer({
      router, store: new SpoolJobStore(spool, 'home'), ledger: await SpoolLedger.open(spool),
      hostname: 'home', maxMessageSize: 1 << 20, maxRecipients: 10, maxConnections: 5,
    });
    const sock = join(dir, 'lmtp.sock');
    await server.listenUnix(sock, 0o600);
    try {
      for (let i = 0; i < 2; i++) {
        const c = await LmtpClient.connect(sock);
        await c.read();
        await c.cmd('LHLO t');
        await c.envelope('MAIL FROM:<s@src.test> RET=FULL', ['RCPT TO:<x@a.test>', 'RCPT TO:<y@b.test>', 'RCPT TO:<z@a.test>']);
        const r = await c.data('Subject: t\n\nbody\n', 3);
        expect(r.map((x) => x.code)).toEqual([250, 250, 250]);
        c.destroy();
      }
      const hub = await spool.listJobs('out', 'hub');
      const mx2 = await spool.listJobs('out', 'mx2');
      expect(hub).toHaveLength(1);
      expect(mx2).toHaveLength(1);
      expect((await spool.readJob(hub[0]!)).header.recipients).toEqual(['x@a.test', 'z@a.test']);
      // one ledger line per job, in the peer's file of the day; none for the retry
      for (const peer of ['hub', 'mx2']) {
        const [day, ...more] = readdirSync(spool.path('lmtp-ledger', peer));
        expect(more).toEqual([]);
        const lines = readFileSync(spool.path('lmtp-ledger', peer, day!), 'latin1').split('\n');
        expect(lines[0]).toBe('mailbag-lmtp-ledger 2');
        expect(lines.slice(1)).toEqual([`${lines[1]!.slice(0, 64)} ${(await spool.listJobs('out', peer))[0]!.id}`, '']);
      }
      expect(readdirSync(spool.tmpDir)).toEqual([]);
    } finally {
      await server.close(1000);
    }
  });
});
