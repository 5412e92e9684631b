// The first two lines of every front door an MTA, UUCP or cron runs (dist/bin/mailbag.cjs,
// mailbag-uux.cjs, rmail.js, rsmtp.js, and the mailbag.js and mailbag-uux.js entries),
// written by scripts/bundle-front-doors.mjs. With `#!/usr/bin/env node`, a node outside
// the caller's PATH (Postfix's pipe(8) always runs commands with PATH=/usr/bin:/bin, Exim's
// pipe with /bin:/usr/bin, cron likewise) made `env` exit 127, and Postfix bounced the
// mail to its sender for a configuration slip (../shared/DESIGN.md, promise 5: the MTA is
// never misled). So each file is a sh/JavaScript polyglot:
//
//   #!/bin/sh
//   ":" //; trap 'exit 75' EXIT; …; set -f; IFS=:; for _mb_d in ${PATH-}; do …; done; for _mb_n in PLACES; do …; done; printf … "4.3.5 …" >&2; exit 75
//
// The kernel runs the file with sh, which finds node (PATH first, then the fixed places,
// then the node that built the package) and `exec`s it on "$0" (the path the file was run
// by: through npm's bin link node resolves the link itself) with "$@", so node is the
// same process (stdin, its exit status and signals reach the caller unchanged, as with
// env). No node anywhere: one line on stderr that names the program, the places searched
// and what to do, and exit 75 (EX_TEMPFAIL), so the MTA keeps the mail queued; a node
// found that cannot be executed: sh's own line, and exit 75 too. sh never
// reads past that line. Node reads the file as JavaScript: the #! line is a comment, line
// two the string ":" (a directive, so a 'use strict' after it still counts) and a line
// comment. sh forks nothing here: no command substitution, and `[`, `printf`, `trap`,
// `shopt` (bash's, only there) and `exec` are built in.

import { MEANINGS } from '../lib/exit.js';

/** Where node is looked for after the caller's PATH, in this order (docs/setup.md). */
export const NODE_PLACES = ['/usr/local/bin/node', '/usr/bin/node', '/usr/bin/nodejs'];

/**
 * No node is a configuration error the admin must fix, with the MTA keeping the mail:
 * lib/exit.ts's `config` (75, 4.3.5), the one table of meanings.
 */
const NO_NODE = MEANINGS.config;
export const LAUNCH_STATUS = NO_NODE.status;

/** What a path must look like to be written into the sh line (and a JS comment) as it is. */
const PLAIN_PATH = /^\/[\w@%+=:,./-]*$/;

/** The first line of a front door that has the launcher (the second starts with `":" //;`). */
export const LAUNCHER_MARK = '#!/bin/sh\n":" //;';

export interface LauncherOptions {
  /** the program's name in the error line (`mailbag`, `mailbag-uux`, `rmail`, `rsmtp`) */
  program: string;
  /**
   * the node that built the package (process.execPath at build time): tried last. Left out
   * when it is one of `places`, or (with a warning from the caller) not a plain path.
   */
  buildNode?: string;
  /** the fixed places (default NODE_PLACES); tests give their own */
  places?: string[];
}

/** The places a launcher tries after PATH: `places`, then `buildNode` when it is usable. */
export function launcherPlaces(o: LauncherOptions): string[] {
  const places = o.places ?? NODE_PLACES;
  for (const p of places) if (!PLAIN_PATH.test(p)) throw new Error(`launcher: not a plain absolute path: ${JSON.stringify(p)}`);
  const extra = o.buildNode !== undefined && PLAIN_PATH.test(o.buildNode) && !places.includes(o.buildNode) ? [o.buildNode] : [];
  return [...places, ...extra];
}

/** Is `path` one a launcher can name (absolute, no spaces, quotes or shell characters)? */
export function isPlainPath(path: string): boolean {
  return PLAIN_PATH.test(path);
}

/** The two lines (each ending in a newline) that start a front door. */
export function launcherLines(o: LauncherOptions): string {
  if (!/^[\w-]+$/.test(o.program)) throw new Error(`launcher: not a program name: ${JSON.stringify(o.program)}`);
  const places = launcherPlaces(o);
  // [ -f ] as well as [ -x ]: a directory named node is executable too; [ -s ]: sh runs
  // an empty executable file as an empty script, exit 0, and the MTA would call the mail
  // delivered. The variables' names are unlikely to be in the environment (sh would pass
  // a changed one on to node); printf, not echo: dash's echo reads backslashes in PATH as
  // escapes
  const tryNode = 'if [ -f "$_mb_n" ] && [ -s "$_mb_n" ] && [ -x "$_mb_n" ]; then exec "$_mb_n" -- "$0" "$@"; fi';
  // a node that is there but cannot be executed (its ELF interpreter or a #! line's
  // missing: ENOENT) makes a non-interactive sh exit 127 or 126 at the exec, which the MTA
  // takes for a hard failure and bounces: dash (and the other ash shells) run the EXIT
  // trap then, bash instead goes on past a failed exec with execfail (its own message
  // first on stderr either way). A successful exec drops the trap with the shell.
  const onFail = `trap 'exit ${NO_NODE.exitCode}' EXIT; if [ -n "\${BASH_VERSION-}" ]; then shopt -s execfail; fi`;
  const line =
    `":" //; ${onFail}; set -f; IFS=:; for _mb_d in \${PATH-}; do _mb_n=\${_mb_d:-.}/node; ${tryNode}; done; ` +
    `for _mb_n in ${places.join(' ')}; do ${tryNode}; done; ` +
    `printf '%s\\n' "${LAUNCH_STATUS} ${o.program}: cannot start: no node in PATH (\${PATH-}) nor at ${places.join(', ')}; ` +
    `install Node.js 20 or later there, or link yours to /usr/local/bin/node (docs/setup.md)" >&2; exit ${NO_NODE.exitCode}`;
  return `#!/bin/sh\n${line}\n`;
}

/** The oldest Node.js release line the programs run on (package.json's engines, docs/setup.md). */
export const NODE_MAJOR = 20;

/** How the line versionCheck makes starts (withLauncher finds it there on a second build). */
const CHECK_MARK = 'if (+process.versions.node.split(';

/**
 * A line of JavaScript, the first statement a front door runs: a node older than
 * NODE_MAJOR found first (Debian 12's and Ubuntu 24.04's /usr/bin/node is 18, Ubuntu
 * 22.04's 12; with Postfix's PATH=/usr/bin:/bin it comes before /usr/local/bin/node) ends
 * the program with one line and 75, so the MTA keeps the mail, instead of running
 * untested or failing on syntax with exit 1 (which it bounces). Plain ES5, so any node
 * parses it; the CommonJS loaders around it keep to ES2019 (node 10 and later parse them
 * whole, test/unit/launcher). In an ES module entry it runs after the static imports are
 * loaded, so the ES entries (bin/mailbag.ts, mailbag-uux.ts, rmail.ts, rsmtp.ts) import
 * their program with import() instead, keep to ES2019 and use neither import.meta nor a
 * top-level await (a node before 12 ignores "type": "module" and reads them as scripts;
 * the build empties tsc's `export {};` line for it).
 */
export function versionCheck(o: LauncherOptions): string {
  if (!/^[\w-]+$/.test(o.program)) throw new Error(`launcher: not a program name: ${JSON.stringify(o.program)}`);
  const places = launcherPlaces(o);
  return (
    `${CHECK_MARK}'.')[0] < ${NODE_MAJOR}) { process.stderr.write('${LAUNCH_STATUS} ${o.program}: cannot start: ' + process.execPath + ' is Node.js ' + process.version + ', and mailbag needs ${NODE_MAJOR} or later; ` +
    `upgrade it, or remove it so that a newer node is found (in PATH (' + (process.env.PATH || '') + ') first, then at ${places.join(', ')}) (docs/setup.md)\\n'); process.exit(${NO_NODE.exitCode}); }\n`
  );
}

/**
 * `text` (a front door's JavaScript, an ES module) with the launcher in front and the
 * version check after it: a `#!` line it starts with is replaced, and so are a
 * launcher's two lines and the check after them. `added` is how many lines the file
 * gained, for its source map.
 */
export function withLauncher(text: string, o: LauncherOptions): { text: string; added: number } {
  const head = launcherLines(o) + versionCheck(o);
  if (text.startsWith(LAUNCHER_MARK)) {
    let end = text.indexOf('\n', text.indexOf('\n') + 1);
    if (text.startsWith(CHECK_MARK, end + 1)) end = text.indexOf('\n', end + 1);
    return { text: head + text.slice(end + 1), added: 0 };
  }
  if (text.startsWith('#!')) {
    const end = text.indexOf('\n');
    return { text: head + (end < 0 ? '' : text.slice(end + 1)), added: 2 };
  }
  return { text: head + text, added: 3 };
}
