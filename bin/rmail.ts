#!/usr/bin/env node
// rmail: UUCP mail (From_ envelope + message on stdin) to the local MTA. See docs/rmail.md.
// scripts/bundle-front-doors.mjs replaces the #! line above with the launcher's two lines
// and its version check (bin/launcher.ts): sh finds node even outside the caller's PATH,
// or exits 75, and so does a node older than 20.
// The program is loaded with import() after that check, not with static imports, which an
// ES module loads before its first statement: a node too old to parse it (Ubuntu 22.04's
// 12) gets the check's line and 75 (uuxqt keeps the job), not a syntax error and exit 1.

/**
 * The program could not be loaded (a package half replaced by an upgrade, a rebuild in
 * place under way, a file lost): a condition of this host, so 75 and one line (the MTA
 * keeps the mail, uuxqt the job), not node's exit 1. test/unit/launcher/partial-install.
 */
function cannotStart(err: unknown): void {
  process.stderr.write(`4.3.0 rmail: cannot start: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}\n`);
  process.exit(75);
}

void Promise.all([import('../lib/cli/run.js'), import('../lib/cli/rmail.js')]).then(([{ runAsProcess }, { main }]) => runAsProcess(main, 'rmail'), cannotStart);
