// The stage worker thread (started by lib/session/stage-ops.ts): applies the batches of
// file-system steps it is sent (creates of staged jobs, renames into in/PEER/, removals),
// in the order they arrive, each with synchronous calls on this thread — no trip through
// libuv's pool per call — and answers each batch once all its steps are done.
//
// Messages in:  { id, ops, data? } (data: the bytes the batch's creates write)
// Messages out: { id, result }, once per batch, after its last step

import { parentPort } from 'node:worker_threads';
import { applyStageOps, type StageOp, type StageOpsResult } from './stage-apply.js';

export interface ToStageWorker {
  id: number;
  ops: StageOp[];
  data?: Uint8Array;
}
export interface FromStageWorker {
  id: number;
  result: StageOpsResult;
}

const port = parentPort;
if (!port) throw new Error('lib/session/stage-worker.js runs in a worker thread only');

port.on('message', (m: ToStageWorker) => {
  port.postMessage({ id: m.id, result: applyStageOps(m.ops, m.data) } satisfies FromStageWorker);
});
