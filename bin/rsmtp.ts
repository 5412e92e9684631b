#!/usr/bin/env node
// rsmtp: a batched-SMTP stream on stdin to the local MTA, transaction by transaction. See docs/rsmtp.md.
import { runAsProcess } from '../lib/cli/run.js';
import { main } from '../lib/cli/rsmtp.js';

await runAsProcess(main, 'rsmtp');
