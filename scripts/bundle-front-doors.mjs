// Bundles the two front doors an MTA runs once per message, and the session commands
// (`mailbag sync`, `serve`, `dispatch`), after tsc has built dist/.
// The front doors must start within 1.25x of a bare `node -e 0` (bench/README.md,
// "enqueue"), and what a Node process pays beyond that is module loading: every ES
// module it resolves, Node's ES module loader itself (about ten internal modules), and
// the internal modules behind `node:fs/promises`, `node:stream`, readline and `node:os`,
// which an ES module import of a built-in evaluates eagerly. So each front door becomes
// ONE CommonJS bundle, run through a small generated loader that gives V8 a code cache
// for it, and the built-ins the hot path does not touch on a normal run are imported
// through lazy stand-ins (see lazyBuiltins), loaded only if a rare path calls into them.
//
// A session costs two Node start-ups before any bag moves: `mailbag sync` here and
// `mailbag serve` (sshd's forced command) on the peer, each loading the whole session
// code (spool, store, bags, tar, frames) before its HELLO, and `sync` ssh2 as well. They
// get the same treatment (bench/README.md, "relay"):
//
//   dist/bin/mailbag-uux.cjs           loader; code: mailbag-uux.HASH.code.cjs (all of
//                                      `mailbag-uux`), cache: mailbag-uux.HASH.v8cache
//   dist/bin/mailbag-enqueue.cjs       loader; code: mailbag-enqueue.HASH.code.cjs (run.ts +
//                                      enqueue.ts's mainFromMailbag; main.ts and the other
//                                      commands are not in it), cache: mailbag-enqueue.HASH.v8cache
//   dist/bin/mailbag-session.cjs       loader; code: mailbag-session.HASH.code.cjs (run.ts +
//                                      serve.ts, sync.ts and dispatch.ts; the transports and
//                                      the runner in it load only when called), caches:
//                                      mailbag-session.HASH.serve.v8cache (`serve`) and
//                                      mailbag-session.HASH.sync.v8cache (`sync`, `dispatch`),
//                                      each made by that end of a real session
//   dist/bin/mailbag-ssh2.cjs          loader; code: mailbag-ssh2.HASH.code.cjs (ssh2's
//                                      JavaScript; its native parts from node_modules), cache:
//                                      mailbag-ssh2.HASH.v8cache; required by the session
//                                      bundle when it dials with `transport = "ssh"`
//   dist/bin/mailbag-NAME.HASH.cjs     a worker thread's loader (lib/bag/bag-worker.ts,
//                                      lib/session/stage-worker.ts; see workerUrls); code:
//                                      mailbag-NAME.HASH.code.cjs, caches: one per set of
//                                      V8 flags, mailbag-NAME.HASH.FLAGS.v8cache (workerLoader)
//
// dist/bin/mailbag-uux.js and dist/bin/mailbag.js (both ES modules, as the package type
// says, compiled by tsc from bin/) stay the entry points and load the loaders with
// require(). Every other command (status, lmtpd, run, failed, retry, demo) keeps tsc's
// unbundled output, as before.
//
// Measured with callgrind (bench/README.md): `node -e 0` 502M instructions; an empty
// CommonJS file 504M; an empty ES module 514M.

import { spawn, spawnSync } from 'node:child_process';
import { clearTimeout, setTimeout } from 'node:timers';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { env as processEnv, execPath, stderr } from 'node:process';
import { build } from 'esbuild';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { basename, dirname, join } from 'node:path';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(root, 'dist');
const binDir = join(dist, 'bin');
const require = createRequire(import.meta.url);

/**
 * Every front door starts with the launcher (bin/launcher.ts, built by tsc): a sh line
 * that finds node in PATH, then at /usr/local/bin/node, /usr/bin/node, /usr/bin/nodejs,
 * then the node running this build, and otherwise exits 75 with one line, so an MTA whose
 * PATH lacks node defers the mail instead of bouncing it. It is the loaders' first two
 * lines, never in the bundles' code, so the code caches (made from the bundles' code)
 * are untouched.
 */
const { isPlainPath, launcherLines, versionCheck, withLauncher } = await import(pathToFileURL(join(binDir, 'launcher.js')).href);
const buildNode = isPlainPath(execPath) ? execPath : undefined;
if (buildNode === undefined) {
  stderr.write(`bundle-front-doors: this node's path (${JSON.stringify(execPath)}) has characters the launcher does not write into a sh line; the front doors will look for node in PATH and the fixed places only\n`);
}
// the launcher, then 'use strict' (still a directive after the launcher's ":"), then the
// version check, first of the loader's statements
const launcher = (program) => `${launcherLines({ program, buildNode })}'use strict';\n${versionCheck({ program, buildNode })}`;

/**
 * tsc's entries in dist/bin (ES modules: `rmail` and `rsmtp` are the package's bins, and
 * mailbag.js and mailbag-uux.js the paths tests and older set-ups name) get the launcher
 * instead of their `#!/usr/bin/env node` line, first thing (until then they work as
 * before); their source maps (tsc's, which map the file as tsc wrote it) get an empty
 * line for each line added, so they still point at the right lines.
 */
for (const [file, program] of [['mailbag.js', 'mailbag'], ['mailbag-uux.js', 'mailbag-uux'], ['rmail.js', 'rmail'], ['rsmtp.js', 'rsmtp']]) {
  const path = join(binDir, file);
  const launched = withLauncher(readFileSync(path, 'utf8'), { program, buildNode });
  // tsc ends an entry that neither imports nor exports statically with `export {};`, which
  // a node before 12 (reading the file as a script: it ignores "type": "module") cannot
  // parse, so it would fail with exit 1 before the version check. An ES module it stays
  // (the package type says so); the line is emptied, so the source map still fits.
  const text = launched.text.replace(/^export \{\};$/m, '');
  const { added } = launched;
  if (added > 0 && existsSync(`${path}.map`)) {
    const map = JSON.parse(readFileSync(`${path}.map`, 'utf8'));
    map.mappings = ';'.repeat(added) + map.mappings;
    writeAtomically(`${path}.map`, JSON.stringify(map));
  }
  writeAtomically(path, text, 0o755);
}

/** Built-ins replaced by stand-ins that load the real module on first use. */
const LAZY = ['fs/promises', 'stream', 'os'];
/**
 * The same for the session commands, and node:crypto (13M instructions to load: bags are
 * hashed, but nothing before HELLO is) and node:worker_threads (8M: bags are built on a
 * worker). node:zlib (8M) would be one too, but lib/bag/codec.ts reads
 * zlib.constants at load, and the loader's cache check uses its crc32.
 */
const SESSION_LAZY = [...LAZY, 'crypto', 'worker_threads'];
/** Of those, the ones our code imports only functions from (stream's exports are classes). */
const FUNCTIONS_ONLY = ['fs/promises', 'os'];

const lazyBuiltins = (list = LAZY) => ({
  name: 'lazy-builtins',
  setup(b) {
    const filter = new RegExp(`^(node:)?(${list.map((n) => n.replace('/', '\\/')).join('|')})$`);
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
});

/**
 * Packages of plain JavaScript a session needs only for some of its work, bundled but run
 * on first use: tar-stream (and streamx, b4a, fast-fifo, text-decoder under it) reads a
 * received bag only, so `serve` and `sync` reach their HELLO without evaluating it, and a
 * session that receives nothing never does. The stand-in is an object of getters over
 * the package's exports; esbuild's wrapper of the real CommonJS package runs on the
 * first property read.
 */
const LAZY_PACKAGES = ['tar-stream'];

const lazyPackages = {
  name: 'lazy-packages',
  setup(b) {
    const filter = new RegExp(`^(${LAZY_PACKAGES.join('|')})$`);
    // the stand-in's own require() is the real package (resolved and bundled as usual)
    b.onResolve({ filter }, (args) => (args.namespace === 'lazy-package' ? undefined : { path: args.path, namespace: 'lazy-package' }));
    b.onLoad({ filter: /.*/, namespace: 'lazy-package' }, (args) => {
      const names = Object.keys(require(args.path)).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n));
      const props = names.map((n) => `  ${n}: { enumerable: true, get: () => load().${n} },`).join('\n');
      return {
        contents: `let real;\nconst load = () => (real ??= require('${args.path}'));\nmodule.exports = Object.defineProperties({}, {\n${props}\n});\n`,
        loader: 'js',
        resolveDir: root,
      };
    });
  },
};

/**
 * Worker threads. lib/bag/workers.ts starts its worker from `new URL('./bag-worker.js',
 * import.meta.url)` (and code may check that file is there); in a bundle, import.meta.url
 * is the bundle's own file in dist/bin/, where there is no bag-worker.js. So in bundled
 * code each `new URL('PATH.js', import.meta.url)` naming a module of dist/lib becomes
 * `new URL('./@@worker:NAME@@', import.meta.url)`, a URL as before, which finishWorkers
 * points at dist/bin/mailbag-NAME.HASH.cjs, a bundle of that module for the thread.
 * `found` collects NAME → the module's file.
 */
const MODULE_URL = /new URL\((['"])(\.{1,2}\/[\w./-]+\.js)\1, import\.meta\.url\)/g;

function workerUrls(found) {
  return {
    name: 'worker-urls',
    setup(b) {
      b.onLoad({ filter: /[\\/]dist[\\/]lib[\\/].*\.js$/ }, (args) => {
        const text = readFileSync(args.path, 'utf8');
        if (!text.includes('import.meta.url')) return undefined;
        const contents = text.replace(MODULE_URL, (whole, _q, rel) => {
          const file = join(dirname(args.path), rel);
          if (!file.startsWith(join(dist, 'lib')) || !existsSync(file)) return whole;
          const name = basename(file, '.js');
          if (found.has(name) && found.get(name) !== file) throw new Error(`bundle-front-doors: two modules named ${name} are started as workers: ${found.get(name)}, ${file}`);
          found.set(name, file);
          return `new URL('./@@worker:${name}@@', import.meta.url)`;
        });
        return contents === text ? undefined : { contents, loader: 'js' };
      });
    },
  };
}

/**
 * ssh2, the SSH client of `transport = "ssh"`: loading it from node_modules is the
 * largest part of `mailbag sync`'s start (callgrind: about 190M instructions, twice a
 * bare Node start-up: Node compiling its 40 files without a cache, and its index loading
 * the server, the HTTP agents and node:http/https, which a client never uses). So its
 * JavaScript gets the same treatment as ours, in a bundle of its own that the session
 * bundle loads only when it dials (dist/bin/mailbag-ssh2.cjs, a loader; code
 * mailbag-ssh2.HASH.code.cjs; cache mailbag-ssh2.HASH.v8cache, made by a real `mailbag
 * sync` over SSH at build time). Its native parts stay where npm put them: the crypto
 * binding is required from the package (`ssh2/lib/…/sshcrypto.node`), cpu-features as a
 * package. The bundle's exports are ssh2's, with the server, the HTTP agents and the key
 * generator loaded on first use; the build fails if ssh2's exports change shape.
 */
const SSH2_ENTRY = `'use strict';
const agent = require('ssh2/lib/agent.js');
const { parseKey } = require('ssh2/lib/protocol/keyParser.js');
const sftp = require('ssh2/lib/protocol/SFTP.js');
const keygen = () => require('ssh2/lib/keygen.js');
module.exports = {
  AgentProtocol: agent.AgentProtocol,
  BaseAgent: agent.BaseAgent,
  createAgent: agent.createAgent,
  Client: require('ssh2/lib/client.js'),
  CygwinAgent: agent.CygwinAgent,
  get HTTPAgent() { return require('ssh2/lib/http-agents.js').SSHTTPAgent; },
  get HTTPSAgent() { return require('ssh2/lib/http-agents.js').SSHTTPSAgent; },
  OpenSSHAgent: agent.OpenSSHAgent,
  PageantAgent: agent.PageantAgent,
  get Server() { return require('ssh2/lib/server.js'); },
  utils: {
    parseKey,
    get generateKeyPair() { return keygen().generateKeyPair; },
    get generateKeyPairSync() { return keygen().generateKeyPairSync; },
    sftp: { flagsToString: sftp.flagsToString, OPEN_MODE: sftp.OPEN_MODE, STATUS_CODE: sftp.STATUS_CODE, stringToFlags: sftp.stringToFlags },
  },
};
`;

/** the export names of `m` and of its objects one level down (`utils.parseKey`, `utils.sftp`) */
function shape(m) {
  return Object.keys(m).flatMap((k) => (m[k] && typeof m[k] === 'object' && !Array.isArray(m[k]) ? [k, ...Object.keys(m[k]).map((j) => `${k}.${j}`)] : [k])).sort();
}

/** native bindings required from where npm installed them (by package path), cpu-features as a package */
const nativeExternal = {
  name: 'native-external',
  setup(b) {
    b.onResolve({ filter: /\.node$/ }, (args) => {
      const file = join(args.resolveDir, args.path);
      const at = file.lastIndexOf('/node_modules/');
      if (at < 0) throw new Error(`bundle-front-doors: a native binding outside node_modules: ${file}`);
      return { path: file.slice(at + '/node_modules/'.length), external: true };
    });
    b.onResolve({ filter: /^cpu-features$/ }, (args) => ({ path: args.path, external: true }));
  },
};

/** in the session bundle, ssh2 is the bundle above, required beside the loader */
const ssh2FromBundle = {
  name: 'ssh2-from-bundle',
  setup(b) {
    b.onResolve({ filter: /^ssh2$/ }, () => ({ path: './mailbag-ssh2.cjs', external: true }));
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

/** the most cache bytes a front door's loader reads: a cache this size or larger is not used */
const CACHE_READ = 1024 * 1024;
/** the same for the session commands' loader (their cache holds a whole session's functions) */
const SESSION_CACHE_READ = 4 * 1024 * 1024;

/**
 * The code that runs a bundle with its cache, for a generated loader. The bundle's file
 * is already wrapped as CommonJS wraps a module (see frontDoor), so the loader needs no
 * `node:module` (which brings in the ES module loader and the source-map support).
 * `cacheName` is a JavaScript expression for the cache file's name in the loader's
 * directory (a string literal, or a choice by command).
 *
 * A cache that does not fit only costs time. V8 itself refuses one made by another node
 * binary or other V8 flags, or for other code (it compares the source's length), or cut
 * short, and compiles as usual; the names pair a cache only with the code it was made
 * from (the code's hash), wherever the files are moved. What V8 does not check (but in a
 * debug build) is the bytes in between, and deserializing damaged ones is a fatal error
 * ("Check failed", exit 133). The session commands' caches (`verify`) therefore end in
 * the CRC-32 of V8's bytes, checked with node:zlib's crc32 (loaded by the session code
 * anyway: the bag codecs) before they go to V8: a missing, short or damaged cache, or a
 * node without zlib.crc32 (before 20.15), runs without it. The front doors, which do not
 * load zlib (9M instructions of their 100M; a checksum in JavaScript would cost 5M),
 * store V8's bytes twice instead and use them only when both copies are the same (one
 * native comparison: a damaged byte makes them differ): an MTA's front door must never
 * die on its cache, or it would exit 133 instead of a status the MTA understands.
 * MAILBAG_MAKE_CODE_CACHE (lines of cache paths; set by this script only) makes the
 * process write the cache of what it compiled when it exits.
 */
function runner(code, cacheName, { readMax = CACHE_READ, verify = false } = {}) {
  // the cache is read with openSync/readSync, which the front door needs anyway, into a
  // buffer larger than any cache made here (readFileSync without an encoding would
  // compile Node's generic file-reading path, about 0.3M instructions, for this one read)
  const use = verify
    ? `const n = readSync(fd, buf, 0, buf.length, 0) - 4;
    if (n > 0 && n + 4 < buf.length && typeof crc32 === 'function' && buf.readUInt32LE(n) === crc32(buf.subarray(0, n))) cachedData = buf.subarray(0, n);`
    : `const n = readSync(fd, buf, 0, buf.length, 0);
    const h = n >> 1;
    if (h > 0 && n < buf.length && buf.compare(buf, 0, h, h, n) === 0) cachedData = buf.subarray(0, h);`;
  const make = verify
    ? `const data = script.createCachedData();
    const out = Buffer.alloc(data.length + 4);
    out.set(data);
    out.writeUInt32LE(crc32(data), data.length);
    writeAtomically(out);`
    : `const data = script.createCachedData();
    writeAtomically(Buffer.concat([data, data]));`;
  return `const { chmodSync, closeSync, openSync, readFileSync, readSync, renameSync, writeFileSync } = require('node:fs');
const { Script } = require('node:vm');
${verify ? "const { crc32 } = require('node:zlib');\n" : ''}const file = __dirname + '/${basename(code)}';
const cache = __dirname + '/' + ${cacheName};
let cachedData;
try {
  const fd = openSync(cache, 0);
  try {
    const buf = Buffer.allocUnsafe(${readMax});
    ${use}
  } finally {
    closeSync(fd);
  }
} catch {}
const script = new Script(readFileSync(file, 'utf8'), { filename: file, cachedData });
if ((process.env.MAILBAG_MAKE_CODE_CACHE || '').split('\\n').includes(cache)) {
  const writeAtomically = (bytes) => {
    writeFileSync(cache + '.tmp', bytes);
    chmodSync(cache + '.tmp', 0o644);
    renameSync(cache + '.tmp', cache);
  };
  process.once('exit', () => {
    ${make}
  });
}
script.runInThisContext()(exports, require, module, file, __dirname);
`;
}

/**
 * Bundles `stdin` as dist/bin/NAME.HASH.code.cjs. Its caches are NAME.HASH.v8cache, or
 * NAME.HASH.ROLE.v8cache for each of `roles` (one code file, a cache per kind of run).
 */
async function frontDoor(name, stdin, plugins, roles = [], options = {}, postprocess = async (t) => t) {
  const built = await build({ ...common, ...options, stdin, write: false, outfile: join(binDir, `${name}.code.cjs`), plugins });
  // wrapped as CommonJS wraps a module (the text of require('node:module').wrap), here
  // rather than in the loader, which hands V8 the file's text as it reads it
  const text = `(function (exports, require, module, __filename, __dirname) { ${await postprocess(built.outputFiles[0].text)}\n});`;
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 16);
  // code and cache carry the code's hash in their names, so a loader only ever pairs a
  // cache with the code it was made from, even while a rebuild replaces files
  const code = join(binDir, `${name}.${hash}.code.cjs`);
  const cache = join(binDir, `${name}.${hash}.v8cache`);
  const caches = Object.fromEntries(roles.map((r) => [r, join(binDir, `${name}.${hash}.${r}.v8cache`)]));
  // a cache already there was made from this same code (the hash), so it stays in use
  // until the sample run replaces it (by rename): processes started during a rebuild keep
  // their cache (the code file is rewritten with the same bytes)
  writeAtomically(code, text);
  return { name, code, cache, caches, hash };
}

/** Removes the code and caches of `name` other than the current build's. */
function removeOlder({ name, hash }) {
  for (const f of readdirSync(binDir)) {
    if (f.startsWith(`${name}.`) && (f.endsWith('.tmp') || ((f.endsWith('.v8cache') || f.endsWith('.code.cjs')) && !f.startsWith(`${name}.${hash}.`)))) rmSync(join(binDir, f));
  }
}

/** Warns (the build goes on: the bundle runs without it) when `cache` was not made or is too large for its loader. */
function checkCache(cache, what, readMax) {
  if (!existsSync(cache)) {
    stderr.write(`bundle-front-doors: no code cache ${basename(cache)} for ${what}; it runs without one\n`);
  } else if (statSync(cache).size >= readMax) {
    stderr.write(`bundle-front-doors: the code cache ${basename(cache)} is ${statSync(cache).size} bytes, more than its loader reads (${readMax}); it runs without one\n`);
  }
}

/** Removes older code and caches of `name`, then makes the cache by one real run of `bin`. */
function finish(door, bin, sampleArgs, sampleFromLine) {
  removeOlder(door);
  // real runs in a temp dir, so the cache holds what a run compiles: the first makes the
  // spool, the second (the state every run after the first sees) makes the cache
  const tmp = mkdtempSync(join(tmpdir(), 'mailbag-code-cache-'));
  try {
    const config = join(tmp, 'mailbag.toml');
    writeFileSync(config, `site = "cache"\nspool = "${join(tmp, 'spool')}"\n\n[peers.hub]\nhost = "hub.invalid"\n`);
    let r;
    for (const make of [false, true]) {
      r = spawnSync(execPath, [bin, ...sampleArgs], {
        input: `${sampleFromLine}${SAMPLE_MESSAGE}`,
        env: { ...withoutFault(processEnv), MAILBAG_CONFIG: config, ...(make ? { MAILBAG_MAKE_CODE_CACHE: door.cache } : {}) },
        timeout: 60_000,
        encoding: 'utf8',
      });
      if (r.status !== 0) break;
    }
    if (r.status !== 0) stderr.write(`bundle-front-doors: ${door.name}'s sample run failed (exit ${r.status}: ${r.stderr.trim()})\n`);
    checkCache(door.cache, door.name, CACHE_READ);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const SAMPLE_MESSAGE = 'Received: from cache.test\nFrom: a@cache.test\nTo: b@cache.test\nSubject: code cache\n\nbody\n';

/**
 * Makes the session bundle's two caches with real sessions in a temp dir: `mailbag sync
 * hub` at site home, whose peer hub is `transport = "command"` running `mailbag serve
 * --peer home` at site hub, with one job queued each way, so each end sends a bag and
 * receives one; the sync process writes the sync cache and the serve process the serve
 * cache. The first session makes the spools, bags and ledgers; the second, in the state
 * later sessions see, makes the caches. (`--no-run`: the runner, which hands received
 * jobs to the MTA, compiles when it runs; dialing with ssh2 likewise.)
 */
function finishSession(door, bin, enqueueBin) {
  removeOlder(door);
  const tmp = mkdtempSync(join(tmpdir(), 'mailbag-code-cache-'));
  try {
    const home = join(tmp, 'home.toml');
    const hub = join(tmp, 'hub.toml');
    const serve = [execPath, bin, 'serve', '--peer', 'home', '--no-run', '--config', hub];
    writeFileSync(home, `site = "home"\nspool = ${JSON.stringify(join(tmp, 'home'))}\n\n[peers.hub]\ntransport = "command"\ncommand = ${JSON.stringify(serve)}\n`);
    writeFileSync(hub, `site = "hub"\nspool = ${JSON.stringify(join(tmp, 'hub'))}\n\n[peers.home]\nhost = "home.invalid"\n`);
    const env = withoutFault(processEnv);
    const run = (args, config, extra = {}, input = '') =>
      spawnSync(execPath, [args[0] === 'enqueue' ? enqueueBin : bin, ...args], { input, env: { ...env, MAILBAG_CONFIG: config, ...extra }, timeout: 60_000, encoding: 'utf8' });
    // the workers' caches: under default V8 flags in the second session (both ends), and
    // in a third, which leaves serve's tierUpLater alone (MAILBAG_MAKE_CODE_CACHE would
    // not), under the flags of serve's workers (workerLoader)
    const workers = workerCodes.join('\n');
    const sessions = [{}, { MAILBAG_MAKE_CODE_CACHE: `${door.caches.serve}\n${door.caches.sync}\n${workers}` }, { MAILBAG_MAKE_WORKER_CODE_CACHE: workers }];
    let r;
    for (const extra of sessions) {
      for (const [config, peer] of [[home, 'hub'], [hub, 'home']]) {
        r = run(['enqueue', peer, '-f', 'a@cache.test', '--', 'b@cache.test'], config, {}, SAMPLE_MESSAGE);
        if (r.status !== 0) break;
      }
      if (r.status !== 0) break;
      r = run(['sync', 'hub', '--no-run'], home, extra);
      if (r.status !== 0) break;
    }
    if (r.status !== 0) stderr.write(`bundle-front-doors: ${door.name}'s sample session failed (exit ${r.status}: ${r.stderr.trim()})\n`);
    for (const role of Object.keys(door.caches)) checkCache(door.caches[role], `${door.name} (${role})`, SESSION_CACHE_READ);
    const madeFor = (code) => {
      const prefix = basename(code).replace(/code\.cjs$/, '');
      return readdirSync(binDir).filter((f) => f.startsWith(prefix) && f.endsWith('.v8cache'));
    };
    // on a loaded machine a sample session can build its one small bag before a worker
    // thread is up (on the calling thread: lib/bag/workers.ts), and that worker's cache
    // for serve's flags is not made: a few more sessions of the third kind, as long as
    // one is missing (a CI run at load 10 ended with one cache of two)
    for (let again = 0; r.status === 0 && again < 4 && workerCodes.some((c) => madeFor(c).length < 2); again++) {
      for (const [config, peer] of [[home, 'hub'], [hub, 'home']]) {
        r = run(['enqueue', peer, '-f', 'a@cache.test', '--', 'b@cache.test'], config, {}, SAMPLE_MESSAGE);
        if (r.status !== 0) break;
      }
      if (r.status === 0) r = run(['sync', 'hub', '--no-run'], home, sessions[2]);
    }
    for (const code of workerCodes) {
      const made = madeFor(code);
      if (made.length < 2) stderr.write(`bundle-front-doors: ${made.length} code caches for ${basename(code)} (${made.join(', ')}), not one per kind of run; it runs without one where none fits\n`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Makes the caches of a dialing `mailbag sync` (the sync cache, replacing the one
 * finishSession made, and ssh2's) with real sessions over SSH: the embedded SSH server of
 * lib/transport/server.ts in this process runs the far end (serveLink) for site hub;
 * `mailbag sync hub` at site home dials it with `transport = "ssh"`, one job queued each
 * way. As in finishSession, the first session makes the spools and the second the caches.
 */
async function finishSsh2(session, ssh2, bin) {
  removeOlder(ssh2);
  const lib = (m) => import(pathToFileURL(join(dist, 'lib', m)).href);
  const tmp = mkdtempSync(join(tmpdir(), 'mailbag-code-cache-'));
  let server;
  try {
    const [{ startSshServer, generateKeyPair }, { serveLink }, { loadConfig }] = await Promise.all([lib('transport/server.js'), lib('session/index.js'), lib('config/index.js')]);
    const hub = join(tmp, 'hub.toml');
    writeFileSync(hub, `site = "hub"\nspool = ${JSON.stringify(join(tmp, 'hub'))}\n\n[peers.home]\nhost = "home.invalid"\n`);
    const hubConfig = loadConfig({ path: hub, env: {}, cwd: tmp });
    const key = generateKeyPair('mailbag-code-cache');
    const identity = join(tmp, 'id_home');
    writeFileSync(identity, key.privateKey, { mode: 0o600 });
    server = await startSshServer({
      authorizedKeys: [{ key: key.publicKey, peer: 'home' }],
      onExec: async ({ peer, link }) => (await serveLink({ config: hubConfig, peer, link }), 0),
    });
    const knownHosts = join(tmp, 'known_hosts');
    writeFileSync(knownHosts, `${server.knownHostsLine}\n`);
    const home = join(tmp, 'home.toml');
    writeFileSync(home, `site = "home"\nspool = ${JSON.stringify(join(tmp, 'home'))}\n\n[peers.hub]\ntransport = "ssh"\nhost = "127.0.0.1"\nport = ${server.port}\n` +
      `identity = ${JSON.stringify(identity)}\nknown_hosts = ${JSON.stringify(knownHosts)}\n`);
    const env = withoutFault(processEnv);
    // asynchronous: this process's event loop is the server
    const run = (args, config, extra = {}, input = '') => new Promise((resolve) => {
      const child = spawn(execPath, [bin, ...args], { env: { ...env, MAILBAG_CONFIG: config, ...extra }, stdio: ['pipe', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d) => { err += d; });
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('close', (status) => { clearTimeout(timer); resolve({ status, stderr: err }); });
      child.stdin.end(input);
    });
    let r;
    for (const make of [false, true]) {
      for (const [config, peer] of [[home, 'hub'], [hub, 'home']]) {
        r = await run(['enqueue', peer, '-f', 'a@cache.test', '--', 'b@cache.test'], config, {}, SAMPLE_MESSAGE);
        if (r.status !== 0) break;
      }
      if (r.status !== 0) break;
      r = await run(['sync', 'hub', '--no-run'], home, make ? { MAILBAG_MAKE_CODE_CACHE: `${ssh2.cache}\n${session.caches.sync}` } : {});
      if (r.status !== 0) break;
    }
    if (r.status !== 0) stderr.write(`bundle-front-doors: the sample session over SSH failed (exit ${r.status}: ${r.stderr.trim()})\n`);
  } catch (err) {
    // no server here (no 127.0.0.1, say): sync and ssh2 run without these caches
    stderr.write(`bundle-front-doors: no sample session over SSH: ${err instanceof Error ? err.message : String(err)}\n`);
  } finally {
    await server?.close();
    rmSync(tmp, { recursive: true, force: true });
  }
}

const UUX_SAMPLE = ['-r', '-n', '-z', '-acache@cache.test', '-', 'hub!rmail', '(rcpt@hub.test)'];
const ENQUEUE_SAMPLE = ['enqueue', 'hub', '-f', 'cache@cache.test', '--', 'rcpt@hub.test'];
const uux = await frontDoor('mailbag-uux', entry('uux', 'mailbag-uux'), [lazyBuiltins()]);
// `mailbag [--config FILE] enqueue …` straight into lib/cli/enqueue.ts (mainFromMailbag
// moves leading --config options as main.ts does), not through main.ts's command table
const enqueue = await frontDoor('mailbag-enqueue', entry('enqueue', 'mailbag', 'mainFromMailbag'), [lazyBuiltins()]);

/**
 * Bundles each worker `found` names: dist/bin/mailbag-NAME.HASH.code.cjs is the thread's
 * module (wrapped as CommonJS wraps a module, as the front doors' code is), and
 * dist/bin/mailbag-NAME.HASH.cjs, whose name goes into `text` for the placeholder, the
 * small loader the thread starts from, which runs the code with V8's code cache
 * (workerLoader). Older files of NAME and all its caches are removed. The caches are
 * made afterwards by finishSession's sample sessions.
 */
async function finishWorkers(text, found) {
  for (const [name, file] of found) {
    const built = await build({ ...common, entryPoints: [file], write: false, outfile: join(binDir, `mailbag-${name}.cjs`), plugins: [lazyBuiltins(SESSION_LAZY), lazyPackages] });
    const code = `(function (exports, require, module, __filename, __dirname) { ${built.outputFiles[0].text}\n});`;
    const hash = createHash('sha256').update(code).digest('hex').slice(0, 16);
    const base = `mailbag-${name}.${hash}.cjs`;
    const codeBase = `mailbag-${name}.${hash}.code.cjs`;
    writeAtomically(join(binDir, codeBase), code);
    writeAtomically(join(binDir, base), workerLoader(name, hash));
    workerCodes.push(join(binDir, codeBase));
    // every cache of NAME goes, this code's too: the sample sessions make this build's, and
    // one made by an earlier build under other V8 flags (NODE_OPTIONS) has another name
    for (const f of readdirSync(binDir)) if (f.startsWith(`mailbag-${name}.`) && (f.endsWith('.tmp') || f.endsWith('.v8cache') || (f.endsWith('.cjs') && !f.startsWith(`mailbag-${name}.${hash}.`)))) rmSync(join(binDir, f));
    text = text.replaceAll(`@@worker:${name}@@`, base);
  }
  if (text.includes('@@worker:')) throw new Error(`bundle-front-doors: a worker placeholder was left in the bundle (${/@@worker:[^@]*@@/.exec(text)[0]})`);
  return text;
}

/** the code files of the worker bundles, whose caches the sample sessions make */
const workerCodes = [];

/**
 * A worker thread's loader. The stage worker's first bag ran its code cold: bag 1's jobs
 * cost about 1.5 ms each against 0.2 ms later (bench/README.md, relay, session 8), much
 * of it V8 compiling each function on its first call. With a cache made after a sample
 * session's work, those functions come compiled.
 *
 * V8 refuses a cache made under other V8 flags, and the flags differ by where a worker
 * runs: `mailbag serve` asks V8 to tier up later (lib/memory.ts, tierUpLater) before it
 * starts its stage worker, `mailbag sync` does not. So a worker has a cache per set of
 * flags, named after the hash of the flags V8 stamps on a cache (read from the header of
 * a probe's cache: a 2-byte script, a few microseconds), NAME.HASH.FLAGS.v8cache: each
 * thread takes the one made under its own flags, or none. As the session caches, each
 * ends in the CRC-32 of V8's bytes (damaged bytes would make V8 abort the process);
 * missing, short, damaged or refused, the code compiles as it did without.
 *
 * MAILBAG_MAKE_CODE_CACHE or MAILBAG_MAKE_WORKER_CODE_CACHE (lines of paths; set by this
 * script only) naming the code file makes the thread write its cache before each message
 * it posts (a worker is terminated, not left to exit, so there is no later moment):
 * every function it has run by then is in it. The name comes from the header of the
 * cache made, so each is filed under the flags it was made with.
 */
function workerLoader(name, hash) {
  const prefix = `mailbag-${name}.${hash}`;
  return `'use strict';
// Generated by scripts/bundle-front-doors.mjs: the ${name} thread, ${prefix}.code.cjs, run with
// V8's code cache made under this process's V8 flags, ${prefix}.FLAGS.v8cache.
const { chmodSync, closeSync, openSync, readFileSync, readSync, renameSync, writeFileSync } = require('node:fs');
const { Script } = require('node:vm');
const { crc32 } = require('node:zlib');
const file = __dirname + '/${prefix}.code.cjs';
const text = readFileSync(file);
// V8 compares only the source's length: the CRC-32 of the cache is seeded with the code's,
// so a code file changed in place (same length) never runs the functions of the old one
const seed = typeof crc32 === 'function' ? crc32(text) : 0;
const flagsOf = (data) => (data.length >= 16 ? data.readUInt32LE(12).toString(16) : 'none');
const cacheFor = (flags) => __dirname + '/${prefix}.' + flags + '.v8cache';
let cachedData;
try {
  const fd = openSync(cacheFor(flagsOf(new Script('0').createCachedData())), 0);
  try {
    const buf = Buffer.allocUnsafe(${SESSION_CACHE_READ});
    const n = readSync(fd, buf, 0, buf.length, 0) - 4;
    if (n > 0 && n + 4 < buf.length && typeof crc32 === 'function' && buf.readUInt32LE(n) === crc32(buf.subarray(0, n), seed)) cachedData = buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
} catch {}
const script = new Script(text.toString('utf8'), { filename: file, cachedData });
const env = process.env;
if ((env.MAILBAG_MAKE_CODE_CACHE || '').split('\\n').concat((env.MAILBAG_MAKE_WORKER_CODE_CACHE || '').split('\\n')).includes(file)) {
  const { parentPort, threadId } = require('node:worker_threads');
  const post = parentPort.postMessage;
  parentPort.postMessage = function (...args) {
    const data = script.createCachedData();
    const out = Buffer.alloc(data.length + 4);
    out.set(data);
    out.writeUInt32LE(crc32(data, seed), data.length);
    const cache = cacheFor(flagsOf(data));
    const tmp = cache + '.' + process.pid + '.' + threadId + '.tmp';
    writeFileSync(tmp, out);
    chmodSync(tmp, 0o644);
    renameSync(tmp, cache);
    return post.apply(this, args);
  };
}
script.runInThisContext()(exports, require, module, file, __dirname);
`;
}

const sessionWorkers = new Map();

/** The commands the session bundle runs, and the cache each one uses. */
const SESSION_COMMANDS = { serve: 'serve', sync: 'sync', dispatch: 'sync' };
// the three mains imported statically (one hoisted scope, as for the front doors); the
// command line is split as main.ts splits it (run.ts's splitCommandLine)
const session = await frontDoor('mailbag-session', {
  contents: `import { runAsProcess, splitCommandLine } from './lib/cli/run.js';
${Object.keys(SESSION_COMMANDS).map((c) => `import { main as ${c} } from './lib/cli/${c}.js';`).join('\n')}
const MAINS = { ${Object.keys(SESSION_COMMANDS).join(', ')} };
runAsProcess((argv, io) => {
  const { name, args } = splitCommandLine(argv);
  if (!Object.hasOwn(MAINS, name)) throw new Error('the session bundle cannot run ' + JSON.stringify(name));
  return MAINS[name](args, io);
}, 'mailbag').then(() => {
  // once the command is done and nothing is left to run (beforeExit: the event loop is
  // empty), the process ends with its exit status without tearing down its heap and
  // isolate one by one: a session leaves ~100 MB of them, and the far serve's end is on
  // the dialer's path to its own (bench/README.md, relay, session 11). 'exit' listeners
  // still run (the build's code cache is written there)
  process.once('beforeExit', () => process.exit());
});
`,
  resolveDir: dist,
  sourcefile: 'mailbag-session-entry.js',
  loader: 'js',
}, [lazyBuiltins(SESSION_LAZY), lazyPackages, workerUrls(sessionWorkers), ssh2FromBundle], [...new Set(Object.values(SESSION_COMMANDS))], {}, (text) => finishWorkers(text, sessionWorkers));

// ssh2's bundle: CommonJS in, CommonJS out, its own exports (not a main of ours)
const ssh2Door = await frontDoor('mailbag-ssh2', { contents: SSH2_ENTRY, resolveDir: root, sourcefile: 'mailbag-ssh2-entry.js', loader: 'js' }, [nativeExternal]);


/** The loader of the session bundle; `command` is a JavaScript expression for the command word. */
function sessionRunner(command) {
  const cacheName = `(${command} === 'serve' ? '${basename(session.caches.serve)}' : '${basename(session.caches.sync)}')`;
  return runner(session.code, cacheName, { readMax: SESSION_CACHE_READ, verify: true });
}

/**
 * A front door's loader that cannot load its code (a package half replaced by an upgrade,
 * a rebuild in place under way: removeOlder deletes the previous build's code files while
 * a process that read the old loader may be about to read them) says so in one line and
 * exits 75, so the MTA keeps the mail; node would exit 1, which it bounces. Once loaded,
 * the program's own errors are runAsProcess's (lib/cli/run.ts). ES5, as the loaders are.
 */
const cannotStart = (program) => `function cannotStart(err) {
  process.stderr.write('4.3.0 ${program}: cannot start: ' + String((err && err.message) || err).split('\\n')[0] + '\\n');
  process.exit(75);
}
`;

// the command word past main.ts's leading --config options, as bin/mailbag.ts finds it
// (no ?. here nor in runner's code: the loaders keep to ES2019, so that a node too old
// for the bundles still parses them and reaches the version check, bin/launcher.ts)
const COMMAND_WORD = `const argv = process.argv;
let i = 2;
while (argv[i] === '--config' || (typeof argv[i] === 'string' && argv[i].startsWith('--config='))) i += argv[i] === '--config' ? 2 : 1;
const command = argv[i];
`;
const indent = (text) => text.replace(/^(?=.)/gm, '  ');
const isSession = Object.keys(SESSION_COMMANDS).map((c) => `command === '${c}'`).join(' || ');

// The package's bins (package.json "bin"): `.cjs` files, which Node runs as CommonJS
// whatever the package type says. A `.js` entry here is an ES module, and that costs
// Node's ES module loader (callgrind, clean environment: about 15M instructions of a
// start-up of 85M). dist/bin/mailbag-uux.js and dist/bin/mailbag.js stay, as ES module
// entries that load the same bundles. mailbag.cjs routes `enqueue` and the session
// commands (past main.ts's leading --config options, as bin/mailbag.ts does) to their
// bundles and leaves every other command to mailbag.js.
writeAtomically(join(binDir, 'mailbag-uux.cjs'), `${launcher('mailbag-uux')}// Generated by scripts/bundle-front-doors.mjs: \`mailbag-uux\`, ${basename(uux.code)} run with V8's code cache.
${cannotStart('mailbag-uux')}try {
${indent(runner(uux.code, `'${basename(uux.cache)}'`))}} catch (err) {
  cannotStart(err);
}
`, 0o755);
// loaded by mailbag.js (an ES module entry) for `enqueue`
writeAtomically(join(binDir, 'mailbag-enqueue.cjs'), `'use strict';
// Generated by scripts/bundle-front-doors.mjs: runs ${basename(enqueue.code)} with V8's code cache.
${runner(enqueue.code, `'${basename(enqueue.cache)}'`)}`);
// loaded by mailbag.js for `serve`, `sync` and `dispatch`
writeAtomically(join(binDir, 'mailbag-session.cjs'), `'use strict';
// Generated by scripts/bundle-front-doors.mjs: runs ${basename(session.code)} with V8's code cache
// (the serve cache for \`serve\`, the sync cache for \`sync\` and \`dispatch\`).
${COMMAND_WORD}${sessionRunner('command')}`);
// loaded by the session bundle when it dials with ssh2
writeAtomically(join(binDir, 'mailbag-ssh2.cjs'), `'use strict';
// Generated by scripts/bundle-front-doors.mjs: ssh2's JavaScript, ${basename(ssh2Door.code)}, run with V8's code cache.
${runner(ssh2Door.code, `'${basename(ssh2Door.cache)}'`, { readMax: SESSION_CACHE_READ, verify: true })}`);
{
  const real = shape(require('ssh2'));
  const ours = shape(require(join(binDir, 'mailbag-ssh2.cjs')));
  if (JSON.stringify(ours) !== JSON.stringify(real)) {
    throw new Error(`bundle-front-doors: ssh2's exports changed (${real.join(' ')}); the bundle has ${ours.join(' ')}: update SSH2_ENTRY`);
  }
}
/**
 * zstd (lib/bag/zstd.ts) is not bundled: its binding.js requires build/Release/binding.node
 * beside itself, so it is loaded from node_modules at run time, with a require made by
 * createRequire (which esbuild leaves alone) the first time a zstd bag is built or read.
 * The session bundle and the bag worker's must name the package and hold none of it.
 */
for (const file of [session.code, ...workerCodes.filter((f) => /^mailbag-bag-worker\.[0-9a-f]+\.code\.cjs$/.test(basename(f)))]) {
  const text = readFileSync(file, 'utf8');
  if (!text.includes('"zstd-napi/binding.js"') || text.includes('./build/')) {
    throw new Error(`bundle-front-doors: ${basename(file)} must load zstd-napi from node_modules at run time, not bundle it`);
  }
}
writeAtomically(join(binDir, 'mailbag.cjs'), `${launcher('mailbag')}// Generated by scripts/bundle-front-doors.mjs: \`mailbag\`. \`enqueue\`, which an MTA runs once per
// message, runs ${basename(enqueue.code)} with V8's code cache; \`serve\`, \`sync\` and \`dispatch\` run
// ${basename(session.code)} with theirs (mailbag-session.cjs: this file stays small, as the
// enqueue path compiles all of it); any other command loads mailbag.js.
${COMMAND_WORD}${cannotStart('mailbag')}if (command === 'enqueue') {
  try {
${indent(indent(runner(enqueue.code, `'${basename(enqueue.cache)}'`)))}  } catch (err) {
    cannotStart(err);
  }
} else if (${isSession}) {
  try {
    require('./mailbag-session.cjs');
  } catch (err) {
    cannotStart(err);
  }
} else {
  // lmtpd's fsyncs wait in Node's thread pool (docs/lmtp.md): 64 threads unless the
  // environment gives a value (an empty one would make libuv use 1 thread); libuv reads
  // this once, before mailbag.js is loaded
  if (command === 'lmtpd' && !process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = '64';
  import('./mailbag.js').catch(cannotStart);
}
`, 0o755);

// the MTAs' uux transports pass a From_ line on stdin (Postfix's pipe flag F); a direct
// `mailbag enqueue` transport usually does not
finish(uux, join(binDir, 'mailbag-uux.cjs'), UUX_SAMPLE, 'From a@cache.test  Sun Nov 22 04:10:00 2026\n');
finish(enqueue, join(binDir, 'mailbag.cjs'), ENQUEUE_SAMPLE, '');
finishSession(session, join(binDir, 'mailbag.cjs'), join(binDir, 'mailbag.cjs'));
await finishSsh2(session, ssh2Door, join(binDir, 'mailbag.cjs'));
checkCache(ssh2Door.cache, ssh2Door.name, SESSION_CACHE_READ);
