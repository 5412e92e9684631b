// The listener's store on a real spool: a job streams in through the spool's commit
// function and is whole once committed; an aborted one leaves nothing, not even in tmp/.

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SpoolJobStore, SpoolLedger } from '../../../lib/lmtp/spool-store.js';
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
    await expect(d.write(Buffer.from('x'))).rejects.toThrow(/larger than the limit/);
    await d.abort();
    expect(readdirSync(spool.tmpDir)).toEqual([]);
    expect(await spool.listJobs('out', 'hub')).toEqual([]);
  });
});

describe('SpoolLedger', () => {
  it('records, finds and prunes', async () => {
    const ledger = new SpoolLedger(spool);
    expect(await ledger.find('hub', 'ab'.repeat(32))).toBeUndefined();
    await ledger.record('hub', 'ab'.repeat(32), '0190000000000001abcdef012');
    expect(await ledger.find('hub', 'ab'.repeat(32))).toBe('0190000000000001abcdef012');
    expect(await ledger.find('other', 'ab'.repeat(32))).toBeUndefined();
    expect(await ledger.prune(60_000)).toBe(0);
    expect(await ledger.prune(60_000, Date.now() + 120_000)).toBe(1);
    expect(await ledger.find('hub', 'ab'.repeat(32))).toBeUndefined();
  });
});

describe('SpoolLedger.prepare', () => {
  it('writes the entry under tmp/, names it on place(), drops it on discard()', async () => {
    const ledger = new SpoolLedger(spool);
    const kept = await ledger.prepare('hub', '0190000000000001abcdef012');
    const dropped = await ledger.prepare('hub', '0190000000000002abcdef012');
    expect(readdirSync(spool.tmpDir).filter((n) => n.endsWith('.ledger'))).toHaveLength(2);
    expect(await ledger.find('hub', 'cd'.repeat(32))).toBeUndefined();
    await kept.place('cd'.repeat(32));
    dropped.discard();
    dropped.discard();
    expect(await ledger.find('hub', 'cd'.repeat(32))).toBe('0190000000000001abcdef012');
    await expect(kept.place('ef'.repeat(32))).rejects.toThrow(/placed twice/);
    expect(readdirSync(spool.tmpDir)).toEqual([]);
    expect(readdirSync(spool.path('lmtp-ledger', 'hub'))).toEqual(['cd'.repeat(32)]);
  });
});

describe('listener on a real spool', () => {
  it('one job per peer in out/PEER, retried transaction stored once', async () => {
    const router = buildRouter({ peers: { hub: { name: 'hub', domains: ['a.test'], addresses: [] }, mx2: { name: 'mx2', domains: ['b.test'], addresses: [] } } });
    const server = new LmtpServer({
      router, store: new SpoolJobStore(spool, 'home'), ledger: new SpoolLedger(spool),
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
      // one ledger entry per job (prepared while the message arrived); the retry's were dropped
      expect(readdirSync(spool.path('lmtp-ledger', 'hub'))).toHaveLength(1);
      expect(readdirSync(spool.path('lmtp-ledger', 'mx2'))).toHaveLength(1);
      expect(readdirSync(spool.tmpDir)).toEqual([]);
    } finally {
      await server.close(1000);
    }
  });
});

describe('SpoolLedger.recover', () => {
  it('records jobs committed just before a crash, so the MTA retry is recognised', async () => {
    const store = new SpoolJobStore(spool, 'home');
    const ledger = new SpoolLedger(spool);
    const payload = Buffer.from('MAIL FROM:<>\nRCPT TO:<a@x.test>\nDATA\nhi\n.\n');
    const d = await store.begin(draftHeader, { maxSize: 1000 });
    await d.write(payload);
    const id = await d.commit();
    // crash here: no ledger entry
    const { createHash } = await import('node:crypto');
    const digest = createHash('sha256').update(payload).digest('hex');
    expect(await ledger.find('hub', digest)).toBeUndefined();
    expect(await ledger.recover('home')).toBe(1);
    expect(await ledger.find('hub', digest)).toBe(id);
    expect(await ledger.recover('home')).toBe(0);
    // another site's jobs are not ours
    expect(await ledger.recover('elsewhere')).toBe(0);
  });
});
