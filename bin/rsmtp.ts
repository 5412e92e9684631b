#!/usr/bin/env node
// rsmtp: a batched-SMTP stream on stdin to the local MTA, transaction by transaction. See docs/rsmtp.md.
// scripts/bundle-front-doors.mjs replaces the #! line above with the launcher's two lines
// (bin/launcher.ts): sh finds node even outside the caller's PATH, or exits 75.
import { runAsProcess } from '../lib/cli/run.js';
import { main } from '../lib/cli/rsmtp.js';

await runAsProcess(main, 'rsmtp');
