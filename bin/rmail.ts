#!/usr/bin/env node
// rmail: UUCP mail (From_ envelope + message on stdin) to the local MTA. See docs/rmail.md.
import { runAsProcess } from '../lib/cli/run.js';
import { main } from '../lib/cli/rmail.js';

await runAsProcess(main, 'rmail');
