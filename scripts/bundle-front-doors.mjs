// Bundles the two front doors an MTA runs once per message, after tsc has built dist/.
// They must start within 1.25x of a bare `node -e 0` (bench/README.md, "enqueue"), and
// what a Node process pays beyond that is module loading: every ES module it resolves,
// Node's ES module loader itself (about ten internal modules), and the internal modules
// behind `node:fs/promises`, `node:stream`, readline and `node:os`, which an ES module
// import of a built-in evaluates eagerly. So each front door becomes ONE CommonJS file:
//
//   dist/bin/mailbag-uux.cjs      the whole of `mailbag-uux`
//   dist/bin/mailbag-enqueue.cjs  the whole of `mailbag enqueue` (run.ts + main.ts +
//                                 enqueue; the other commands are never reached from it)
//
// and the built-ins the hot path does not touch on a normal run are imported through
// lazy stand-ins (see lazyBuiltins), loaded only if a rare path calls into them.
// dist/bin/mailbag-uux.js and dist/bin/mailbag.js (both ES modules, as the package type
// says, compiled by tsc from bin/) stay the entry points and load these files with
// require(). Every other command keeps tsc's unbundled output, as before.
//
// Measured with callgrind (bench/README.md): `node -e 0` 502M instructions; an empty
// CommonJS file 504M; an empty ES module 514M.

import { createRequire } from 'node:module';
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(root, 'dist');
const binDir = join(dist, 'bin');
const require = createRequire(import.meta.url);

/** Built-ins replaced by objects whose properties load the real module on first access. */
const LAZY = ['fs/promises', 'stream', 'os'];

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
      const names = Object.keys(require(args.path)).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n));
      const props = names.map((n) => `  ${n}: { enumerable: true, get: () => load().${n} },`).join('\n');
      return {
        contents: `let real;\nconst load = () => (real ??= require('node:${args.path}'));\n` +
          `module.exports = Object.defineProperties({}, {\n${props}\n});\n`,
        loader: 'js',
      };
    });
  },
};

/** The other commands stay separate ES modules; the front-door bundles never load them. */
const otherCommandsExternal = {
  name: 'other-commands-external',
  setup(b) {
    b.onResolve({ filter: /^\.\/[a-z-]+\.js$/ }, (args) => {
      if (args.kind !== 'dynamic-import' || args.path === './enqueue.js') return undefined;
      return { path: `../lib/cli/${args.path.slice(2)}`, external: true };
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
  // packageRoot, main's package.json) gets the bundle's URL: both give the same root
  banner: { js: 'var __importMetaUrl=require("node:url").pathToFileURL(__filename).href;' },
  define: { 'import.meta.url': '__importMetaUrl' },
};

const entry = (main, prefix) => ({
  contents: `import { runAsProcess } from './lib/cli/run.js';\nimport { main } from './lib/cli/${main}.js';\nrunAsProcess(main, '${prefix}');\n`,
  resolveDir: dist,
  sourcefile: `${prefix}-entry.js`,
  loader: 'js',
});

await build({
  ...common,
  stdin: entry('uux', 'mailbag-uux'),
  outfile: join(binDir, 'mailbag-uux.cjs'),
  plugins: [lazyBuiltins],
});

await build({
  ...common,
  stdin: entry('main', 'mailbag'),
  outfile: join(binDir, 'mailbag-enqueue.cjs'),
  plugins: [lazyBuiltins, otherCommandsExternal],
});
