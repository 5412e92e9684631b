// The stage worker for tests: the TypeScript source of lib/session/stage-worker.ts, loaded
// through the bag tests' module hooks (../bag/ts-hooks.mjs). workerData { hang: true }
// makes it block its thread for a minute at its first request (none answered),
// { hangAt: N } at its Nth request (the ones before are served), and { exit: CODE } makes
// it exit at its first request, as a crash would; { hangMs: N } blocks N ms at its first
// request, then serves it (a worker slow to answer, not hung).
import { register } from 'node:module';
import process from 'node:process';
import { parentPort, workerData } from 'node:worker_threads';

if (workerData?.hang || workerData?.hangAt !== undefined || workerData?.exit !== undefined || workerData?.hangMs !== undefined) {
  const at = workerData.hangAt ?? 1;
  let seen = 0;
  // wraps the worker's own 'message' listener (a listener added here, before the module
  // has loaded, would start the port and take requests the worker never sees)
  const on = parentPort.on.bind(parentPort);
  parentPort.on = (event, listener) =>
    on(event, event !== 'message' ? listener : (m) => {
      if (++seen === at) {
        if (workerData.exit !== undefined) process.exit(workerData.exit);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, workerData.hangMs ?? 60_000);
      }
      listener(m);
    });
}
register('../bag/ts-hooks.mjs', import.meta.url);
await import('../../../lib/session/stage-worker.ts');
