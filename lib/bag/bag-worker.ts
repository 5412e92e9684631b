// A bag worker thread (started by lib/bag/workers.ts): builds the bags it is sent, one
// at a time, into descriptors its parent opened. The compressor is stepped on this
// thread (lib/bag/stepped.ts), so each bag's engine is allocated and freed in this
// thread's malloc arena and the next bag reuses that memory.
//
// Messages in:  { type: 'bag', id, jobs, fd, options }, { type: 'abort', id }, { type: 'ping' }
// Messages out: { type: 'done', id, ok: true, summary }, { type: 'done', id, ok: false, error },
//               { type: 'pong' } (the thread is alive: its event loop turns)
// A reply is posted only once no write into `fd` is in flight.

import { parentPort } from 'node:worker_threads';
import { errorToWire, writeBagToFd, type BagFileJob, type PlainBagOptions, type WireError } from './bag-file.js';
import type { BagSummary } from './writer.js';

export type ToBagWorker = { type: 'bag'; id: number; jobs: BagFileJob[]; fd: number; options: PlainBagOptions } | { type: 'abort'; id: number } | { type: 'ping' };
export type FromBagWorker = { type: 'done'; id: number; ok: true; summary: BagSummary } | { type: 'done'; id: number; ok: false; error: WireError } | { type: 'pong' };

const port = parentPort;
if (!port) throw new Error('lib/bag/bag-worker.js runs in a worker thread only');

const running = new Map<number, AbortController>();

function reply(m: FromBagWorker): void {
  port!.postMessage(m);
}

port.on('message', (m: ToBagWorker) => {
  if (m.type === 'ping') {
    reply({ type: 'pong' });
    return;
  }
  if (m.type === 'abort') {
    running.get(m.id)?.abort();
    return;
  }
  const ac = new AbortController();
  running.set(m.id, ac);
  // this thread is the bag's alone: its small job files are read with synchronous calls
  writeBagToFd(m.jobs, m.fd, { ...m.options, readSync: true, signal: ac.signal }).then(
    (summary) => {
      running.delete(m.id);
      reply({ type: 'done', id: m.id, ok: true, summary });
    },
    (err: unknown) => {
      running.delete(m.id);
      reply({ type: 'done', id: m.id, ok: false, error: errorToWire(err, ac.signal) });
    },
  );
});
