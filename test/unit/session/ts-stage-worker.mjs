// The stage worker for tests: the TypeScript source of lib/session/stage-worker.ts, loaded
// through the bag tests' module hooks (../bag/ts-hooks.mjs). workerData { hang: true }
// makes it block its thread for a minute at its first batch (no batch answered), and
// { exit: CODE } makes it exit at its first batch, as a crash would.
import { register } from 'node:module';
import process from 'node:process';
import { parentPort, workerData } from 'node:worker_threads';

if (workerData?.hang || workerData?.exit !== undefined) {
  // registered before the worker's own listener: runs first
  parentPort.once('message', () => {
    if (workerData.exit !== undefined) process.exit(workerData.exit);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
  });
}
register('../bag/ts-hooks.mjs', import.meta.url);
await import('../../../lib/session/stage-worker.ts');
