// A small driver for the fault tests: one `syncPeer` from the built dist/ over the command
// transport (the far `mailbag serve` is the child whose argv follows; no SSH client needed).
// It prints {sent, received, duplicates, drained} as JSON and exits 0, or prints the error's
// message and exits 75.

import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const dist = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'dist');

/** Write the driver into `dir` as sync-driver.mjs; run it as `node FILE CONFIG PEER FAR-ARGV…`. */
export function writeSyncDriver(dir: string): string {
  const file = join(dir, 'sync-driver.mjs');
  const url = (p: string): string => pathToFileURL(join(dist, p)).href;
  writeFileSync(
    file,
    `import { loadConfig } from ${JSON.stringify(url('lib/config/index.js'))};
import { syncPeer } from ${JSON.stringify(url('lib/session/index.js'))};
import { commandTransport } from ${JSON.stringify(url('lib/transport/command.js'))};
const [config, peer, ...argv] = process.argv.slice(2);
try {
  const r = await syncPeer({ config: loadConfig({ path: config, env: {} }), peer, transport: commandTransport({ argv }) });
  process.stdout.write(JSON.stringify({ sent: r.sent.jobs, received: r.received.jobs, duplicates: r.received.duplicates, drained: r.drained }) + '\\n');
  process.exit(0);
} catch (err) {
  process.stderr.write(String(err && err.message) + '\\n');
  process.exit(75);
}
`,
  );
  return file;
}
