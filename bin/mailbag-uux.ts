#!/usr/bin/env node
// mailbag-uux: a drop-in for `uux` in an MTA's UUCP transport (docs/mailbag-uux.md).
// scripts/bundle-front-doors.mjs replaces the #! line above with the launcher's two lines
// and its version check (bin/launcher.ts): sh finds node even outside the caller's PATH,
// or exits 75, and so does a node older than 20.
// The program is lib/cli/uux.ts, bundled by scripts/bundle-front-doors.mjs into one
// CommonJS file next to this one: an MTA starts it once per message, and a CommonJS
// file spares Node its ES module loader and the eager built-in imports that come with it.
// The package's `mailbag-uux` bin is that .cjs file itself (this ES module entry costs the
// ES module loader); this file stays for the paths tests and docs name.
// It is loaded with import() after the version check, not with a static import (loaded
// before an ES module's first statement) nor through import.meta (a node before 12 reads
// this file as a script, where import.meta is a syntax error): an old node gets the
// check's line and 75, not a syntax error and exit 1, which the MTA would bounce.

/**
 * The program could not be loaded (a package half replaced by an upgrade, a rebuild in
 * place under way, a file lost): a condition of this host, so 75 and one line (the MTA
 * keeps the mail, uuxqt the job), not node's exit 1. test/unit/launcher/partial-install.
 */
function cannotStart(err: unknown): void {
  process.stderr.write(`4.3.0 mailbag-uux: cannot start: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}\n`);
  process.exit(75);
}

const loader = './mailbag-uux.cjs';
import(loader).catch(cannotStart);
