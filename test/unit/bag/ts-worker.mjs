// A bag worker for tests: the TypeScript source of lib/bag/bag-worker.ts, loaded through
// ./ts-hooks.mjs. workerData { crash: 'exit' | 'throw' | 'hang', afterMs } makes it die
// that long after its first bag arrives (process.exit in the thread, or an uncaught
// exception), or block its thread for a minute (no ping answered, no abort seen).
import { register } from 'node:module';
import process from 'node:process';
import { setTimeout } from 'node:timers';
import { parentPort, workerData } from 'node:worker_threads';

register('./ts-hooks.mjs', import.meta.url);
await import('../../../lib/bag/bag-worker.ts');

if (workerData?.crash) {
  parentPort.once('message', () => {
    setTimeout(() => {
      if (workerData.crash === 'exit') process.exit(7);
      if (workerData.crash === 'hang') {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
        return;
      }
      throw new Error('bag worker crashed on purpose');
    }, workerData.afterMs ?? 0);
  });
}
