// Test helper: two sites with their own spools in a temp dir, jobs enqueued with the
// spool's own writeJob, and a session between them over any pair of Links.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newJobId } from '../../../lib/job/id.js';
import { Spool } from '../../../lib/spool/spool.js';
import { SessionStore } from '../../../lib/session/store.js';
import { configureBagWorkers } from '../../../lib/bag/workers.js';
import { configureStageWorker } from '../../../lib/session/stage-ops.js';
import { runSession, type SessionOptions, type SessionResult } from '../../../lib/session/session.js';
import type { Link } from '../../../lib/transport/types.js';
import { generateKeyPair } from '../../../lib/transport/server.js';
import ssh2 from 'ssh2';

/** an ed25519 pair ssh2 reads back (its generator fails about once in 256: mscdex/ssh2 issue 1390) */
export function soundKeyPair(comment: string): { privateKey: string; publicKey: string } {
  for (let i = 0; ; i++) {
    const k = generateKeyPair(comment);
    if ((!(ssh2.utils.parseKey(k.privateKey) instanceof Error) && !(ssh2.utils.parseKey(k.publicKey) instanceof Error)) || i > 20) return k;
  }
}

// bags are compressed on the worker thread, as in the built mailbag: from the TypeScript
// sources through the bag tests' loader of lib/bag/bag-worker.ts
configureBagWorkers({ script: new URL('../bag/ts-worker.mjs', import.meta.url) });
// the receiver's creates, moves and removals on the stage worker thread, as in dist/
configureStageWorker({ script: new URL('./ts-stage-worker.mjs', import.meta.url) });

export interface Site {
  name: string;
  root: string;
  spool: Spool;
}

export function tempDir(label: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `mailbag-${label}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function makeSite(dir: string, name: string): Promise<Site> {
  const root = join(dir, name);
  const spool = await Spool.open(root, { create: true });
  return { name, root, spool };
}

/** Enqueue `n` rmail jobs from `from` to `to`; returns their ids and payloads. */
export async function enqueue(from: Site, to: string, payloads: Buffer[]): Promise<Map<string, Buffer>> {
  const made = new Map<string, Buffer>();
  for (const p of payloads) {
    const id = newJobId();
    await from.spool.writeJob('out', to, {
      id, from: from.name, to, created: new Date().toISOString(), command: 'rmail',
      args: ['user@example.org'], sender: 'sender@example.net', recipients: ['user@example.org'],
    }, p);
    made.set(id, p);
  }
  return made;
}

/** Deterministic message-like payloads of the given sizes. */
export function messages(sizes: number[], seed = 1): Buffer[] {
  let x = seed;
  return sizes.map((size, i) => {
    const words: string[] = [];
    let len = 0;
    while (len < size) {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      const w = `w${(x % 5000).toString(36)} `;
      words.push(w);
      len += w.length;
    }
    const body = `Subject: test ${seed}-${i}\n\n${words.join('')}`.slice(0, Math.max(size, 20));
    return Buffer.from(body);
  });
}

export function store(site: Site, peer: string, opts: { accept?: string[]; retentionMs?: number } = {}): SessionStore {
  return new SessionStore({
    paths: { root: site.root, tmp: site.spool.tmpDir, out: site.spool.path('out', peer), in: site.spool.path('in', peer) },
    site: site.name,
    peer,
    ledgerRetentionMs: opts.retentionMs ?? 14 * 86400_000,
    accept: opts.accept,
    bagThread: 'worker',
  });
}

export const CAPS = { maxBag: 256 * 1024 * 1024, maxExpanded: 1024 * 1024 * 1024, maxJobs: 10000, maxJob: 64 * 1024 * 1024 };

export async function session(site: Site, peer: string, link: Link, extra: Partial<SessionOptions> = {}): Promise<SessionResult> {
  const s = store(site, peer);
  await s.open();
  return runSession({ link, store: s, site: site.name, peer, codecs: ['br', 'gzip'], caps: CAPS, keepaliveMs: 500, ...(process.env.TRACE ? { trace: (l: string) => process.stderr.write(`${l}\n`) } : {}), ...extra });
}

/** job ids in a queue */
export function ids(site: Site, queue: 'in' | 'out' | 'failed', peer: string): string[] {
  try {
    return readdirSync(site.spool.path(queue, peer)).filter((n) => /^[0-9a-f]{12}/.test(n)).sort();
  } catch {
    return [];
  }
}

/** the payload of a job file (after the magic line and the header line) */
export function payloadOf(site: Site, queue: 'in' | 'out', peer: string, id: string): Buffer {
  const all = readFileSync(site.spool.path(queue, peer, id));
  const first = all.indexOf(0x0a);
  const second = all.indexOf(0x0a, first + 1);
  return all.subarray(second + 1);
}
