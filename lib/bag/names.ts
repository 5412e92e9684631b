// Which entry names a bag may carry: a job file name and nothing that could become a
// path. One rule, used by the writer (refuse to build) and the reader (refuse to read).

import { LIMITS } from '../limits.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** true for `0190f3a2c4d1000a1b2c3d4e5` or `0190f3a2c4d1.job`; false for paths, `..`, dot files, long names */
export function isValidEntryName(name: string): boolean {
  return name.length > 0 && name.length <= LIMITS.maxBagEntryName && NAME.test(name) && !name.includes('..');
}

/** the name quoted for an error message, cut short and with control bytes escaped */
export function showName(name: string): string {
  const cut = name.length > 80 ? `${name.slice(0, 80)}…` : name;
  return JSON.stringify(cut);
}
