#!/usr/bin/env node
// mailbag: the command-line tool. Each command lives in lib/cli/; main.ts dispatches.
// scripts/bundle-front-doors.mjs replaces the #! line above with the launcher's two lines
// (bin/launcher.ts): sh finds node even outside the caller's PATH, or exits 75.
// `mailbag enqueue`, which an MTA runs once per message, and the session commands
// (`serve`, `sync`, `dispatch`: two Node start-ups before every session's first bag) go
// to their CommonJS bundles, each run with V8's code cache (scripts/bundle-front-doors.mjs:
// mailbag-enqueue.cjs runs run.ts + enqueue.ts's mainFromMailbag, mailbag-session.cjs
// run.ts + serve.ts, sync.ts and dispatch.ts), so Node loads one file and skips its ES
// module loader for their code; everything else loads as usual.
// The package's `mailbag` bin is dist/bin/mailbag.cjs (scripts/bundle-front-doors.mjs), a
// CommonJS entry that routes the same way without the ES module loader's start-up.
import { createRequire } from 'node:module';

/** The commands that run from a bundle, and its loader next to this file. */
const BUNDLED: Record<string, string> = {
  enqueue: './mailbag-enqueue.cjs',
  serve: './mailbag-session.cjs',
  sync: './mailbag-session.cjs',
  dispatch: './mailbag-session.cjs',
};

/** The command word, past main.ts's leading `--config FILE` / `--config=FILE` options. */
function commandName(argv: string[]): string | undefined {
  let i = 0;
  while (argv[i] === '--config' || argv[i]?.startsWith('--config=')) i += argv[i] === '--config' ? 2 : 1;
  return argv[i];
}

const command = commandName(process.argv.slice(2));
if (command !== undefined && Object.hasOwn(BUNDLED, command)) {
  createRequire(import.meta.url)(BUNDLED[command]!);
} else {
  const { runAsProcess } = await import('../lib/cli/run.js');
  const { main } = await import('../lib/cli/main.js');
  await runAsProcess(main, 'mailbag');
}
