#!/usr/bin/env node
// mailbag: the command-line tool. Each command lives in lib/cli/; main.ts dispatches.
// `mailbag enqueue`, which an MTA runs once per message, goes to its CommonJS bundle
// (run.ts + enqueue.ts's mainFromMailbag, which moves leading --config options as
// main.ts does; built by scripts/bundle-front-doors.mjs), so
// Node loads one file and skips its ES module loader; everything else loads as usual.
// The package's `mailbag` bin is dist/bin/mailbag.cjs (scripts/bundle-front-doors.mjs), a
// CommonJS entry that routes the same way without the ES module loader's start-up.
import { createRequire } from 'node:module';

/** The command word, past main.ts's leading `--config FILE` / `--config=FILE` options. */
function commandName(argv: string[]): string | undefined {
  let i = 0;
  while (argv[i] === '--config' || argv[i]?.startsWith('--config=')) i += argv[i] === '--config' ? 2 : 1;
  return argv[i];
}

if (commandName(process.argv.slice(2)) === 'enqueue') {
  createRequire(import.meta.url)('./mailbag-enqueue.cjs');
} else {
  const { runAsProcess } = await import('../lib/cli/run.js');
  const { main } = await import('../lib/cli/main.js');
  await runAsProcess(main, 'mailbag');
}
