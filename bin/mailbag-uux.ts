#!/usr/bin/env node
// mailbag-uux: a drop-in for `uux` in an MTA's UUCP transport (docs/mailbag-uux.md).
import { runAsProcess } from '../lib/cli/run.js';
import { main } from '../lib/cli/uux.js';

await runAsProcess(main, 'mailbag-uux');
