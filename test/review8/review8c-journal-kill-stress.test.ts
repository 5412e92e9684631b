// review8c: the built `mailbag lmtpd` (with its journal) killed with SIGKILL at many
// random moments under several pipelining LMTP clients, then started again; the clients
// behave as an MTA does: a recipient answered 250 is done, any other (no reply, a broken
// connection, a 4xx) is retried later with the same message. At the end (an orderly
// stop) out/PEER holds every message exactly once per peer: nothing answered is lost,
// nothing is stored twice (docs/spool.md L1-L3, L7, L8).

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeSharedTempDir, removeTempDir } from '../helpers/mta-common.js';
import { LmtpClient, stuff } from '../unit/lmtp/lmtp-client.js';
import { childPids, mailbagBin, startLmtpd, type Lmtpd } from '../unit/lmtp/lmtpd-process.js';

const enabled = existsSync(mailbagBin);

interface Msg {
  n: number;
  body: Buffer;
  /** recipients still to be answered 250 */
  left: Set<string>;
}

const RCPTS = ['x@a.test', 'y@b.test'];

function makeMessage(n: number, rand: () => number): Buffer {
  const lines = [`From: s@src.test`, `Subject: stress-${n}`, `Message-ID: <stress-${n}@src.test>`, ''];
  // most small (the journal), some over 128 KiB (staged in tmp/), dot lines for stuffing
  const big = rand() < 0.06;
  const count = big ? 2200 : 5 + Math.floor(rand() * 60);
  for (let i = 0; i < count; i++) lines.push(i % 17 === 0 ? `.dot line ${n}.${i}` : `line ${i} of message ${n} ${'z'.repeat(40)}`);
  return Buffer.from(lines.join('\n') + '\n');
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe.skipIf(!enabled)('review8c: lmtpd killed at random moments under pipelining clients', () => {
  let dir: string | undefined;
  let current: Lmtpd | undefined;
  afterAll(async () => {
    await current?.kill();
    if (dir) removeTempDir(dir);
  });

  it('every message once per peer in out/ after many SIGKILLs and restarts', async () => {
    dir = makeSharedTempDir('review8c-stress');
    const seed = Number(process.env.REVIEW8C_SEED ?? Date.now() % 100000);
    const rand = rng(seed);
    const total = Number(process.env.REVIEW8C_MESSAGES ?? 300);
    const kills = Number(process.env.REVIEW8C_KILLS ?? 8);
    const conns = 6;
    const peers = { hub: ['a.test'], mx2: ['b.test'] };
    const socket = join(dir, 'lmtp.sock');
    // REVIEW8C_WORKERS=2: lmtp.workers, and the kill hits one worker (the service then exits 75, L6)
    const workers = Number(process.env.REVIEW8C_WORKERS ?? 1);
    const start = (): Promise<Lmtpd> => startLmtpd({ dir: dir!, peers, socket, socketMode: '0666', ...(workers > 1 ? { workers } : {}) });
    const kill = async (d: Lmtpd): Promise<void> => {
      const kids = workers > 1 ? childPids(d.pid) : [];
      if (kids.length === 0) return d.kill();
      process.kill(kids[Math.floor(rand() * kids.length)]!, 'SIGKILL');
      const r = await Promise.race([d.exited, new Promise<'timeout'>((w) => setTimeout(() => w('timeout'), 45_000))]);
      expect(r).toEqual({ code: 75, signal: null });
    };
    const msgs: Msg[] = [];
    for (let n = 0; n < total; n++) msgs.push({ n, body: stuff(makeMessage(n, rand)), left: new Set(RCPTS) });
    const todo = [...msgs];
    let stopping = false;
    const log: string[] = [];

    // one client: takes messages from the queue, pipelines MAIL, RCPTs and DATA on one
    // connection after another; a message is in one client's hand at a time, as an MTA's
    const client = async (): Promise<void> => {
      while (!stopping) {
        let cur = todo.shift();
        if (!cur) {
          if (msgs.every((x) => x.left.size === 0)) return;
          await new Promise((r) => setTimeout(r, 20));
          continue;
        }
        let c: LmtpClient | undefined;
        try {
          c = await LmtpClient.connect(socket, 5000);
          if ((await c.read()).code !== 220) throw new Error('no greeting');
          await c.cmd('LHLO client.test');
          while (cur) {
            const rc = [...cur.left];
            c.write(`MAIL FROM:<s@src.test>\r\n${rc.map((r) => `RCPT TO:<${r}>\r\n`).join('')}DATA\r\n`);
            const mail = await c.read();
            const rr = [];
            for (const _ of rc) rr.push(await c.read());
            const data = await c.read();
            if (mail.code !== 250 || data.code !== 354 || rr.some((r) => r.code !== 250)) throw new Error(`refused: ${mail.raw} ${rr.map((r) => r.raw).join(' ')} ${data.raw}`);
            await c.writeDrained(cur.body);
            c.write('.\r\n');
            for (const r of rc) {
              const reply = await c.read();
              if (reply.code === 250) cur.left.delete(r);
              else log.push(`stress-${cur.n} ${r}: ${reply.raw}`);
            }
            if (cur.left.size > 0) todo.push(cur);
            cur = stopping ? undefined : todo.shift();
          }
        } catch {
          // the connection broke (lmtpd killed): what is not answered is sent again later
          if (cur && cur.left.size > 0) todo.push(cur);
          await new Promise((r) => setTimeout(r, 10 + rand() * 40));
        } finally {
          c?.destroy();
        }
      }
    };

    current = await start();
    const clients = Array.from({ length: conns }, () => client());
    const deadline = Date.now() + 150_000;
    for (let k = 0; k < kills && Date.now() < deadline; k++) {
      await new Promise((r) => setTimeout(r, 40 + rand() * 400));
      await kill(current);
      log.push(`kill ${k}: ${msgs.filter((x) => x.left.size === 0).length} of ${total} answered`);
      await new Promise((r) => setTimeout(r, rand() * 100));
      if (rand() < 0.4) {
        // killed again while starting: in the middle of the replay, or before it listens
        const early = startLmtpd({ dir: dir!, peers, socket, socketMode: '0666', ...(workers > 1 ? { workers } : {}) }, 30 + rand() * 250);
        const e = await early.then((d) => d, (err: Error) => err);
        if (e instanceof Error) log.push(`restart ${k}: killed while starting`);
        else await e.kill();
        await new Promise((r) => setTimeout(r, 300));
      }
      current = await start();
      const w = /wrote (\d+) job\(s\) from the LMTP journal/.exec(current.log());
      if (w) log.push(`restart ${k}: replayed ${w[1]}`);
    }
    while (msgs.some((x) => x.left.size > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    stopping = true;
    await Promise.all(clients);
    if (process.env.REVIEW8C_VERBOSE) console.log(`seed ${seed}\n${log.join('\n')}`);
    expect(msgs.filter((x) => x.left.size > 0).map((x) => x.n), log.join('\n')).toEqual([]);
    expect(await current.stop()).toBe(0);
    current = undefined;

    // every message exactly once per peer, in out/PEER (the journal is empty after the stop)
    const spool = join(dir, 'spool');
    for (const peer of ['hub', 'mx2']) {
      const d = join(spool, 'out', peer);
      const seen = new Map<number, number>();
      for (const id of readdirSync(d)) {
        const s = /Subject: stress-(\d+)\n/.exec(readFileSync(join(d, id), 'latin1'));
        expect(s, `${peer}/${id}`).not.toBeNull();
        seen.set(Number(s![1]), (seen.get(Number(s![1])) ?? 0) + 1);
      }
      const missing = msgs.filter((x) => !seen.has(x.n)).map((x) => x.n);
      const twice = [...seen].filter(([, c]) => c > 1).map(([n, c]) => `${n}x${c}`);
      expect({ peer, seed, missing, twice }, log.join('\n')).toEqual({ peer, seed, missing: [], twice: [] });
    }
  }, 240_000);
});
