// Bundles the two front doors an MTA runs once per message, after tsc has built dist/:
// a Node process pays for every ES module it resolves and loads, and these paths must
// start within 1.25x of a bare `node -e 0` (bench/README.md). Each bundle replaces the
// file tsc wrote, so paths and the package's bin entries stay the same.
//
//   dist/bin/mailbag-uux.js   the whole program in one file
//   dist/lib/cli/enqueue.js   `mailbag enqueue`, loaded by dist/lib/cli/main.js; it keeps
//                             importing ../errors.js, so the error classes that run.js
//                             checks with instanceof are the same objects.

import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { dirname, join, relative } from 'node:path';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(root, 'dist');

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: true,
  keepNames: true,
  allowOverwrite: true,
  logLevel: 'warning',
  legalComments: 'none',
};

/** Keep `errors.js` (and through it `exit.js`) shared with the rest of the CLI. */
const shareErrors = (outDir) => ({
  name: 'share-errors',
  setup(b) {
    b.onResolve({ filter: /(^|\/)errors\.js$/ }, (args) => {
      const target = join(args.resolveDir, args.path);
      if (target !== join(dist, 'lib', 'errors.js')) return undefined;
      let path = relative(outDir, target);
      if (!path.startsWith('.')) path = `./${path}`;
      return { path, external: true };
    });
  },
});

await build({
  ...common,
  entryPoints: [join(dist, 'bin', 'mailbag-uux.js')],
  outfile: join(dist, 'bin', 'mailbag-uux.js'),
});

await build({
  ...common,
  entryPoints: [join(dist, 'lib', 'cli', 'enqueue.js')],
  outfile: join(dist, 'lib', 'cli', 'enqueue.js'),
  plugins: [shareErrors(join(dist, 'lib', 'cli'))],
});
