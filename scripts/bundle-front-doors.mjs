// Bundles the two front doors an MTA runs once per message, after tsc has built dist/.
// They must start within 1.25x of a bare `node -e 0` (bench/README.md, "enqueue"), and
// what a Node process pays beyond that is module loading: every ES module it resolves,
// Node's ES module loader itself (about ten internal modules), and the internal modules
// behind `node:fs/promises`, `node:stream`, readline and `node:os`, which an ES module
// import of a built-in evaluates eagerly. So each front door becomes ONE CommonJS
// bundle, run through a small generated loader that gives V8 a code cache for it:
//
//   dist/bin/mailbag-uux.cjs           loader; code: mailbag-uux.HASH.code.cjs (all of
//                                      `mailbag-uux`), cache: mailbag-uux.HASH.v8cache
//   dist/bin/mailbag-enqueue.cjs       loader; code: mailbag-enqueue.HASH.code.cjs (run.ts +
//                                      enqueue.ts's mainFromMailbag; main.ts and the other
//                                      commands are not in it), cache: mailbag-enqueue.HASH.v8cache
//
// and the built-ins the hot path does not touch on a normal run are imported through
// lazy stand-ins (see lazyBuiltins), loaded only if a rare path calls into them.
// dist/bin/mailbag-uux.js and dist/bin/mailbag.js (both ES modules, as the package type
// says, compiled by tsc from bin/) stay the entry points and load the loaders with
// require(). Every other command keeps tsc's unbundled output, as before.
//
// Measured with callgrind (bench/README.md): `node -e 0` 502M instructions; an empty
// CommonJS file 504M; an empty ES module 514M.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { env as processEnv, execPath, stderr } from 'node:process';
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { basename, dirname, join } from 'node:path';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(root, 'dist');
const binDir = join(dist, 'bin');
const require = createRequire(import.meta.url);

/** Built-ins replaced by stand-ins that load the real module on first use. */
const LAZY = ['fs/promises', 'stream', 'os'];
/** Of those, the ones our code imports only functions from (stream's exports are classes). */
const FUNCTIONS_ONLY = ['fs/promises', 'os'];

const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    const filter = new RegExp(`^(node:)?(${LAZY.map((n) => n.replace('/', '\\/')).join('|')})$`);
    b.onResolve({ filter }, (args) =>
      // the stand-in's own require() is the real module
      args.namespace === 'lazy-builtin'
        ? { path: args.path, external: true }
        : { path: args.path.replace(/^node:/, ''), namespace: 'lazy-builtin' });
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (args) => {
      const real = require(args.path);
      const names = Object.keys(real).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n));
      const load = `let real;\nconst load = () => (real ??= require('node:${args.path}'));\n`;
      if (FUNCTIONS_ONLY.includes(args.path)) {
        // an ES module of plain functions: bundled as top-level functions, with no
        // objects of getters made and copied (esbuild's CommonJS interop) at start-up;
        // an import of anything else (a constant, a class) fails the build
        const fns = names.filter((n) => typeof real[n] === 'function' && !/^class\b/.test(Function.prototype.toString.call(real[n])));
        return {
          contents: load + fns.map((n) => `export function ${n}(...args) {\n  return load().${n}(...args);\n}\n`).join(''),
          loader: 'js',
        };
      }
      const props = names.map((n) => `  ${n}: { enumerable: true, get: () => load().${n} },`).join('\n');
      return {
        contents: `${load}module.exports = Object.defineProperties({}, {\n${props}\n});\n`,
        loader: 'js',
      };
    });
  },
};

const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  allowOverwrite: true,
  logLevel: 'warning',
  legalComments: 'none',
  // the bundles live in dist/bin/; code that finds files from its own place (config's
  // packageRoot, main's package.json) gets the bundle's URL: both give the same root.
  // A getter, so a run that never asks (a config file that names the spool) never
  // makes the URL (pathToFileURL: about 1M instructions of a front door's run)
  banner: { js: 'var __importMeta={get url(){return require("node:url").pathToFileURL(__filename).href}};' },
  define: { 'import.meta.url': '__importMeta.url' },
};

// `module` and `fn` name the main function the bundle runs: a static import, so esbuild
// hoists every module into one scope (a dynamic import, as main.ts loads its commands
// with, would wrap each reachable module in a lazily called init function)
const entry = (module, prefix, fn = 'main') => ({
  contents: `import { runAsProcess } from './lib/cli/run.js';\nimport { ${fn} } from './lib/cli/${module}.js';\nrunAsProcess(${fn}, '${prefix}');\n`,
  resolveDir: dist,
  sourcefile: `${prefix}-entry.js`,
  loader: 'js',
});

/**
 * The bundle is run through a small loader with V8's code cache: compiling the bundle's
 * source is the largest cost left (callgrind, a clean environment: 128M instructions for
 * `mailbag-uux` compiled as usual, 110-115M with a warm cache, `node -e 0` 84M). The
 * cache is made here by running the front door once on a sample message in a temp dir
 * (so it holds every function a normal run compiles), and is named after the bundle's
 * hash: a cache never meets a bundle it was not made from. A cache V8 rejects (another
 * node binary) only costs the compile it would have saved.
 */
function withoutFault(env) {
  const { MAILBAG_FAULT: _, ...rest } = env;
  return rest;
}

/** Replaces `file` by rename, so a process starting meanwhile reads the old or the new one whole. */
function writeAtomically(file, text, mode = 0o644) {
  writeFileSync(`${file}.tmp`, text);
  chmodSync(`${file}.tmp`, mode);
  renameSync(`${file}.tmp`, file);
}

/** the most cache bytes a loader reads: a cache this size or larger is not used */
const CACHE_READ = 1024 * 1024;

/**
 * The code that runs a bundle with its cache, for a generated loader. The bundle's file
 * is already wrapped as CommonJS wraps a module (see frontDoor), so the loader needs no
 * `node:module` (which brings in the ES module loader and the source-map support).
 */
function runner(code, cache) {
  // the cache is read with openSync/readSync, which the front door needs anyway, into a
  // buffer larger than any cache made here (readFileSync without an encoding would
  // compile Node's generic file-reading path, about 0.3M instructions, for this one read)
  return `const { closeSync, openSync, readFileSync, readSync, writeFileSync } = require('node:fs');
const { Script } = require('node:vm');
const file = __dirname + '/${basename(code)}';
const cache = __dirname + '/${basename(cache)}';
let cachedData;
try {
  const fd = openSync(cache, 0);
  try {
    const buf = Buffer.allocUnsafe(${CACHE_READ});
    const n = readSync(fd, buf, 0, buf.length, 0);
    if (n < buf.length) cachedData = buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
} catch {}
const script = new Script(readFileSync(file, 'utf8'), { filename: file, cachedData });
if (process.env.MAILBAG_MAKE_CODE_CACHE === cache) process.once('exit', () => writeFileSync(cache, script.createCachedData()));
script.runInThisContext()(exports, require, module, file, __dirname);
`;
}

async function frontDoor(name, stdin, plugins) {
  const built = await build({ ...common, stdin, write: false, outfile: join(binDir, `${name}.code.cjs`), plugins });
  // wrapped as CommonJS wraps a module (the text of require('node:module').wrap), here
  // rather than in the loader, which hands V8 the file's text as it reads it
  const text = `(function (exports, require, module, __filename, __dirname) { ${built.outputFiles[0].text}\n});`;
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 16);
  // code and cache carry the code's hash in their names, so a loader only ever pairs a
  // cache with the code it was made from, even while a rebuild replaces files
  const code = join(binDir, `${name}.${hash}.code.cjs`);
  const cache = join(binDir, `${name}.${hash}.v8cache`);
  writeFileSync(code, text);
  if (existsSync(cache)) rmSync(cache);
  return { code, cache, hash };
}

/** Removes older code and caches of `name`, then makes the cache by one real run of `bin`. */
function finish(name, { cache, hash }, bin, sampleArgs, sampleFromLine) {
  for (const f of readdirSync(binDir)) {
    if (f.startsWith(`${name}.`) && (f.endsWith('.v8cache') || f.endsWith('.code.cjs')) && !f.startsWith(`${name}.${hash}.`)) rmSync(join(binDir, f));
  }
  // real runs in a temp dir, so the cache holds what a run compiles: the first makes the
  // spool, the second (the state every run after the first sees) makes the cache
  const tmp = mkdtempSync(join(tmpdir(), 'mailbag-code-cache-'));
  try {
    const config = join(tmp, 'mailbag.toml');
    writeFileSync(config, `site = "cache"\nspool = "${join(tmp, 'spool')}"\n\n[peers.hub]\nhost = "hub.invalid"\n`);
    let r;
    for (const make of [false, true]) {
      r = spawnSync(execPath, [bin, ...sampleArgs], {
        input: `${sampleFromLine}Received: from cache.test\nFrom: a@cache.test\nTo: b@cache.test\nSubject: code cache\n\nbody\n`,
        env: { ...withoutFault(processEnv), MAILBAG_CONFIG: config, ...(make ? { MAILBAG_MAKE_CODE_CACHE: cache } : {}) },
        timeout: 60_000,
        encoding: 'utf8',
      });
      if (r.status !== 0) break;
    }
    if (r.status !== 0 || !existsSync(cache)) {
      stderr.write(`bundle-front-doors: no code cache for ${name} (exit ${r.status}: ${r.stderr.trim()}); it runs without one\n`);
    } else if (statSync(cache).size >= CACHE_READ) {
      stderr.write(`bundle-front-doors: the code cache for ${name} is ${statSync(cache).size} bytes, more than its loader reads (${CACHE_READ}); it runs without one\n`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const UUX_SAMPLE = ['-r', '-n', '-z', '-acache@cache.test', '-', 'hub!rmail', '(rcpt@hub.test)'];
const ENQUEUE_SAMPLE = ['enqueue', 'hub', '-f', 'cache@cache.test', '--', 'rcpt@hub.test'];
const uux = await frontDoor('mailbag-uux', entry('uux', 'mailbag-uux'), [lazyBuiltins]);
// `mailbag [--config FILE] enqueue …` straight into lib/cli/enqueue.ts (mainFromMailbag
// moves leading --config options as main.ts does), not through main.ts's command table
const enqueue = await frontDoor('mailbag-enqueue', entry('enqueue', 'mailbag', 'mainFromMailbag'), [lazyBuiltins]);

// The package's bins (package.json "bin"): `.cjs` files, which Node runs as CommonJS
// whatever the package type says. A `.js` entry here is an ES module, and that costs
// Node's ES module loader (callgrind, clean environment: about 15M instructions of a
// start-up of 85M). dist/bin/mailbag-uux.js and dist/bin/mailbag.js stay, as ES module
// entries that load the same bundles. mailbag.cjs routes `enqueue` (past main.ts's
// leading --config options, as bin/mailbag.ts does) to the enqueue bundle and leaves
// every other command to mailbag.js.
writeAtomically(join(binDir, 'mailbag-uux.cjs'), `#!/usr/bin/env node
'use strict';
// Generated by scripts/bundle-front-doors.mjs: \`mailbag-uux\`, ${basename(uux.code)} run with V8's code cache.
${runner(uux.code, uux.cache)}`, 0o755);
// loaded by mailbag.js (an ES module entry) for `enqueue`
writeAtomically(join(binDir, 'mailbag-enqueue.cjs'), `'use strict';
// Generated by scripts/bundle-front-doors.mjs: runs ${basename(enqueue.code)} with V8's code cache.
${runner(enqueue.code, enqueue.cache)}`);
writeAtomically(join(binDir, 'mailbag.cjs'), `#!/usr/bin/env node
'use strict';
// Generated by scripts/bundle-front-doors.mjs: \`mailbag\`. \`enqueue\`, which an MTA runs once per
// message, runs ${basename(enqueue.code)} with V8's code cache; any other command loads mailbag.js.
const argv = process.argv;
let i = 2;
while (argv[i] === '--config' || argv[i]?.startsWith('--config=')) i += argv[i] === '--config' ? 2 : 1;
if (argv[i] === 'enqueue') {
${runner(enqueue.code, enqueue.cache).replace(/^(?=.)/gm, '  ')}} else {
  import('./mailbag.js');
}
`, 0o755);

// the MTAs' uux transports pass a From_ line on stdin (Postfix's pipe flag F); a direct
// `mailbag enqueue` transport usually does not
finish('mailbag-uux', uux, join(binDir, 'mailbag-uux.cjs'), UUX_SAMPLE, 'From a@cache.test  Sun Nov 22 04:10:00 2026\n');
finish('mailbag-enqueue', enqueue, join(binDir, 'mailbag.cjs'), ENQUEUE_SAMPLE, '');
