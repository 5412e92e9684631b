#!/usr/bin/env node
// mailbag: the command-line tool. Each command lives in lib/cli/.
import { runAsProcess } from '../lib/cli/run.js';
import { main } from '../lib/cli/main.js';

await runAsProcess(main, 'mailbag');
