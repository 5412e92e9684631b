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
// Nothing is loaded before the version check the build puts first: no static import (an
// ES module loads those before its first statement), no import.meta, no top-level await
// and no syntax after ES2019 (a node before 12 reads this file as a script, one before 14
// cannot parse ?.): an old node gets the check's line and 75, not a syntax error and exit
// 1, which the MTA would bounce. The bundles are loaded with import() (relative to this
// file, as createRequire(import.meta.url) did).

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
  while (argv[i] === '--config' || (argv[i] !== undefined && argv[i]!.startsWith('--config='))) i += argv[i] === '--config' ? 2 : 1;
  return argv[i];
}

/**
 * The program could not be loaded (a package half replaced by an upgrade, a rebuild in
 * place under way, a file lost): a condition of this host, so 75 and one line (the MTA
 * keeps the mail, uuxqt the job), not node's exit 1. test/unit/launcher/partial-install.
 */
function cannotStart(err: unknown): void {
  process.stderr.write(`4.3.0 mailbag: cannot start: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}\n`);
  process.exit(75);
}

const command = commandName(process.argv.slice(2));
const bundle = command !== undefined && Object.prototype.hasOwnProperty.call(BUNDLED, command) ? BUNDLED[command] : undefined;
if (bundle !== undefined) {
  import(bundle).catch(cannotStart);
} else {
  void Promise.all([import('../lib/cli/run.js'), import('../lib/cli/main.js')]).then(([{ runAsProcess }, { main }]) => runAsProcess(main, 'mailbag'), cannotStart);
}
