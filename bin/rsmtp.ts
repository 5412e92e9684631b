#!/usr/bin/env node
// rsmtp: a batched-SMTP stream on stdin to the local MTA, transaction by transaction. See docs/rsmtp.md.
// scripts/bundle-front-doors.mjs replaces the #! line above with the launcher's two lines
// and its version check (bin/launcher.ts): sh finds node even outside the caller's PATH,
// or exits 75, and so does a node older than 20.
// The program is loaded with import() after that check, not with static imports, which an
// ES module loads before its first statement: a node too old to parse it (Ubuntu 22.04's
// 12) gets the check's line and 75 (uuxqt keeps the job), not a syntax error and exit 1.
void Promise.all([import('../lib/cli/run.js'), import('../lib/cli/rsmtp.js')]).then(([{ runAsProcess }, { main }]) => runAsProcess(main, 'rsmtp'));
