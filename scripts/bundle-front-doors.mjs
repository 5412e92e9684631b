// Bundles the two front doors an MTA runs once per message, after tsc has built dist/:
// a Node process pays for every ES module it resolves and loads, and these paths must
// start within 1.25x of a bare `node -e 0` (bench/README.md). Each bundle replaces the
// file tsc wrote, so paths and the package's bin entries stay the same.
//
//   dist/bin/mailbag-uux.js   the whole program in one file
//   dist/lib/cli/enqueue.js   `mailbag enqueue` for whoever imports it; it keeps importing
//                             ../errors.js, so the error classes that run.js checks with
//                             instanceof are the same objects.
//   dist/bin/mailbag.js       the dispatcher (bin, run, io, main) with `enqueue` inlined;
//                             every other command stays its own file, loaded on use as
//                             before, and errors.js stays shared for the same reason.
//
// Every ES module costs a Node process about 2 ms here (measured with callgrind: 658M
// instructions for `mailbag enqueue` as 7 modules, against 502M for `node -e 0`).

import { readFile } from 'node:fs/promises';
import { stderr } from 'node:process';
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

// The dispatcher: main.js finds package.json from its own place (dist/lib/cli/), which
// is one level deeper than dist/bin/; rewrite that one path, or leave tsc's output alone.
const mainJs = join(dist, 'lib', 'cli', 'main.js');
const versionPath = "'../../../package.json'";
if ((await readFile(mainJs, 'utf8')).includes(versionPath)) {
  const binDir = join(dist, 'bin');
  await build({
    ...common,
    minify: false,
    entryPoints: [join(binDir, 'mailbag.js')],
    outfile: join(binDir, 'mailbag.js'),
    plugins: [
      shareErrors(binDir),
      {
        name: 'commands-stay-files',
        setup(b) {
          b.onResolve({ filter: /^\.\/[a-z-]+\.js$/ }, (args) => {
            if (args.kind !== 'dynamic-import' || args.importer !== mainJs || args.path === './enqueue.js') return undefined;
            return { path: `../lib/cli/${args.path.slice(2)}`, external: true };
          });
          b.onLoad({ filter: /[/\\]lib[/\\]cli[/\\]main\.js$/ }, async (args) => {
            const text = await readFile(args.path, 'utf8');
            return { contents: text.replace(versionPath, "'../../package.json'"), loader: 'js' };
          });
        },
      },
    ],
  });
} else {
  stderr.write(`bundle-front-doors: ${mainJs} no longer reads ${versionPath}; dist/bin/mailbag.js left unbundled\n`);
}
