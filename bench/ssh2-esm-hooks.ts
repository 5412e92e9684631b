// Module hooks for the relay bench, used ONLY when the built transport cannot be loaded
// by plain Node: lib/transport/{ssh,server}.ts import named exports (`{ Client, utils }`)
// from ssh2, a CommonJS module whose exports Node's ESM loader cannot detect, so
// `mailbag sync` fails with "Named export 'utils' not found" outside vitest. The bench
// then runs `mailbag sync` with `node --import dist/bench/ssh2-esm-shim.js`, which hands
// ESM importers of 'ssh2' a module re-exporting ssh2's CommonJS exports by name, and says
// so loudly in its figures. The fix belongs in lib/transport: `import ssh2 from 'ssh2';
// const { Client, utils } = ssh2;`.

import { createRequire } from 'node:module';

const SHIM = 'mailbag-bench-ssh2:';

interface ResolveContext {
  parentURL?: string;
}
type NextResolve = (specifier: string, context: ResolveContext) => Promise<{ url: string }>;
type NextLoad = (url: string, context: unknown) => Promise<unknown>;

export async function resolve(specifier: string, context: ResolveContext, next: NextResolve): Promise<{ url: string; shortCircuit?: boolean }> {
  if (specifier === 'ssh2' && context.parentURL && !context.parentURL.startsWith(SHIM)) {
    const real = (await next(specifier, context)).url;
    return { url: `${SHIM}${real}`, shortCircuit: true };
  }
  return next(specifier, context);
}

export async function load(url: string, context: unknown, next: NextLoad): Promise<unknown> {
  if (url.startsWith(SHIM)) {
    const real = url.slice(SHIM.length);
    const names = Object.keys(createRequire(import.meta.url)(new URL(real).pathname) as object);
    const source = `import m from ${JSON.stringify(real)};\nexport default m;\nexport const { ${names.join(', ')} } = m;\n`;
    return { format: 'module', source, shortCircuit: true };
  }
  return next(url, context);
}
