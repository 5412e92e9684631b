// A bag worker thread (started by lib/bag/workers.ts): builds the bags it is sent, one
// at a time, into descriptors its parent opened. The compressor is stepped on this
// thread (lib/bag/stepped.ts), so each bag's engine is allocated and freed in this
// thread's malloc arena and the next bag reuses that memory.
//
// Messages in:  { type: 'bag', id, jobs, fd, options }  and  { type: 'abort', id }
// Messages out: { id, ok: true, summary }  or  { id, ok: false, error: WireError }
// A reply is posted only once no write into `fd` is in flight.

import { parentPort } from 'node:worker_threads';
import { errorToWire, writeBagToFd, type BagFileJob, type PlainBagOptions } from './bag-file.js';

export type ToBagWorker = { type: 'bag'; id: number; jobs: BagFileJob[]; fd: number; options: PlainBagOptions } | { type: 'abort'; id: number };

const port = parentPort;
if (!port) throw new Error('lib/bag/bag-worker.js runs in a worker thread only');

const running = new Map<number, AbortController>();

port.on('message', (m: ToBagWorker) => {
  if (m.type === 'abort') {
    running.get(m.id)?.abort();
    return;
  }
  const ac = new AbortController();
  running.set(m.id, ac);
  writeBagToFd(m.jobs, m.fd, { ...m.options, signal: ac.signal }).then(
    (summary) => {
      running.delete(m.id);
      port.postMessage({ id: m.id, ok: true, summary });
    },
    (err: unknown) => {
      running.delete(m.id);
      port.postMessage({ id: m.id, ok: false, error: errorToWire(err, ac.signal) });
    },
  );
});
