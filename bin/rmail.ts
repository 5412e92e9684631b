#!/usr/bin/env node
// rmail: UUCP mail (From_ envelope + message on stdin) to the local MTA. See docs/rmail.md.
// scripts/bundle-front-doors.mjs replaces the #! line above with the launcher's two lines
// (bin/launcher.ts): sh finds node even outside the caller's PATH, or exits 75.
import { runAsProcess } from '../lib/cli/run.js';
import { main } from '../lib/cli/rmail.js';

await runAsProcess(main, 'rmail');
