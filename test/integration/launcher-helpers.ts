// For the launcher tests (launcher-*.test.ts): a machine where node is not where the
// front doors look for it, made with a private mount namespace (root only; nothing
// changes outside it). `/usr/local/bin` becomes an empty tmpfs holding what the test
// puts there (npm's global bin links, say), and the files of `hide` (/usr/bin/node,
// /usr/bin/nodejs, the node running the tests) are gone: their directory becomes a
// tmpfs of symlinks to everything else it holds (the real directory is bind-mounted
// into the test's temp dir first), as if node had never been installed there. A program started in the
// namespace (a front door, or Postfix's master, whose pipe(8) children inherit it) sees
// that machine; everyone else sees the real one.

import { realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { isRoot } from '../helpers/mta-common.js';
import { need } from '../helpers/need.js';

export const UNSHARE = '/usr/bin/unshare';

/** true when namespaces can be made here (root and unshare(1)); false with a SKIP line; throws under CI */
export function haveNamespaces(): boolean {
  if (!need('unshare(1)', [UNSHARE], 'apt-get install util-linux')) return false;
  return need('root (the launcher tests hide node in a private mount namespace)', isRoot ? [] : ['uid 0'], 'run the integration tests as root');
}

/** Every place node is installed on this machine (the fixed places and the running node), to hide. */
export function installedNodes(): string[] {
  return [...new Set(['/usr/bin/node', '/usr/bin/nodejs', realpathSync(process.execPath)])];
}

export interface World {
  /** `/usr/local/bin`'s entries in the namespace: name → symlink target */
  localBin?: Record<string, string>;
  /** files that are not there (a missing one is skipped) */
  hide?: string[];
  /** paths (in /usr/local/bin, or a hidden file's directory) where a link to the running node is made */
  nodeAt?: string[];
}

function quote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The argv that runs `argv` in a new private mount namespace set up as `world`: give it
 * to spawn (as root). `dir` is a temp dir that stays while the namespace lives (the real
 * directories of the hidden files are mounted under it, in the namespace only).
 */
export function inWorld(dir: string, world: World, argv: string[]): string[] {
  // the running node stays reachable under `dir` whatever is hidden
  const node = realpathSync(process.execPath);
  const nodeDir = join(dir, 'node-dir');
  const lines = ['set -e', `mkdir -p ${quote(nodeDir)}`, `mount --bind ${quote(dirname(node))} ${quote(nodeDir)}`];
  const dirs = new Map<string, string[]>();
  for (const f of world.hide ?? []) {
    const d = dirname(f);
    if (d !== '/usr/local/bin') dirs.set(d, [...(dirs.get(d) ?? []), basename(f)]);
  }
  let n = 0;
  for (const [d, names] of dirs) {
    const real = join(dir, `real-${n++}`);
    // the directory's own cp is gone once the tmpfs is there: the real one's
    lines.push(
      `mkdir -p ${quote(real)}`,
      `mount --bind ${quote(d)} ${quote(real)}`,
      `mount -t tmpfs -o mode=0755 mailbag-launcher-test ${quote(d)}`,
      `if [ -x ${quote(`${real}/cp`)} ]; then c=${quote(`${real}/cp`)}; else c=cp; fi`,
      `"$c" -rs ${quote(`${real}/.`)} ${quote(d)}`,
      ...names.map((b) => `rm -f ${quote(`${d}/${b}`)}`),
    );
  }
  lines.push('mount -t tmpfs -o mode=0755 mailbag-launcher-test /usr/local/bin');
  for (const [name, target] of Object.entries(world.localBin ?? {})) lines.push(`ln -s ${quote(target)} ${quote(`/usr/local/bin/${name}`)}`);
  for (const p of world.nodeAt ?? []) lines.push(`ln -s ${quote(join(nodeDir, basename(node)))} ${quote(p)}`);
  lines.push('exec "$@"');
  return [UNSHARE, '--mount', '--propagation', 'private', '/bin/sh', '-c', lines.join('\n'), 'sh', ...argv];
}
