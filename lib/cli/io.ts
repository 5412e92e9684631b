// What a command may touch of its process: passed in so tests can run a command
// in-process with their own streams, environment and working directory.

import type { Readable, Writable } from 'node:stream';

export interface CliIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** true when stderr is a terminal (progress output is allowed) */
  isTTY: boolean;
}

export function processIo(): CliIo {
  // Getters, not values: touching process.stdin/stdout/stderr builds a stream each
  // (a few ms), and the front doors an MTA runs once per message may never need one.
  return {
    get stdin() {
      return process.stdin;
    },
    get stdout() {
      return process.stdout;
    },
    get stderr() {
      return process.stderr;
    },
    env: process.env,
    cwd: process.cwd(),
    get isTTY() {
      return Boolean(process.stderr.isTTY);
    },
  };
}
