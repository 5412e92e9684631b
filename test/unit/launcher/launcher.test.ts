// The launcher (bin/launcher.ts): the sh line in front of every front door that finds
// node itself. Here its two lines are put in front of small JavaScript probes (CommonJS
// and ES module) with places of the test's own, each "node" a small script that records
// which place was used and execs the node running the tests: the search order (PATH,
// the places, the build's node), the line and exit 75 when there is none, and that the
// probe gets its arguments, stdin, exit status and signals as it would from node itself.
// launcher-entries.test.ts runs the real front doors the same way on a machine without
// node in its fixed places (root, a private mount namespace).

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { SourceMap, type SourceMapPayload } from 'node:module';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import ts from 'typescript';
import { isPlainPath, launcherLines, launcherPlaces, NODE_MAJOR, NODE_PLACES, versionCheck, withLauncher } from '../../../bin/launcher.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-launcher-'));
  mkdirSync(join(dir, 'empty'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A "node" at `path`: notes `name` in LAUNCHED_BY and runs the real one with its arguments. */
function fakeNode(path: string, name: string): string {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, `#!/bin/sh\nLAUNCHED_BY=${name}; export LAUNCHED_BY\nexec ${process.execPath} "$@"\n`, { mode: 0o755 });
  return path;
}

/** A probe: prints what it got (place, argv, stdin's bytes as hex, files) on stdout as JSON. */
const PROBE_BODY = `
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const input = Buffer.concat(chunks);
  let strict = false;
  try { undeclaredVariable = 1; } catch { strict = true; }
  process.stdout.write(JSON.stringify({ by: process.env.LAUNCHED_BY, argv: process.argv.slice(2), script: process.argv[1], input: input.toString('hex'), strict }));
  const code = Number(process.env.PROBE_EXIT ?? '0');
  process.exitCode = code;
});
`;

function probe(kind: 'cjs' | 'mjs', o: { places: string[]; buildNode?: string; program?: string }): string {
  const file = join(dir, `probe.${kind}`);
  const body = kind === 'cjs' ? `'use strict';\n${PROBE_BODY}` : `${PROBE_BODY}export {};\n`;
  writeFileSync(file, launcherLines({ program: o.program ?? 'probe', places: o.places, buildNode: o.buildNode }) + body, { mode: 0o755 });
  return file;
}

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  pid: number;
}

function exec(file: string, args: string[], opts: { input?: Buffer | string; env?: NodeJS.ProcessEnv; onSpawn?: (pid: number) => void; keepStdinOpen?: boolean } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: { PATH: join(dir, 'empty'), ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => {});
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('spawn', () => opts.onSpawn?.(child.pid!));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), pid: child.pid! });
    });
    if (!opts.keepStdinOpen) child.stdin.end(opts.input ?? '');
  });
}

const parsed = (r: Ran) => JSON.parse(r.stdout) as { by: string; argv: string[]; script: string; input: string; strict: boolean };

describe('where the launcher looks for node', () => {
  it('the fixed places are /usr/local/bin/node, /usr/bin/node, /usr/bin/nodejs, then the build\'s node unless it is one of them', () => {
    expect(NODE_PLACES).toEqual(['/usr/local/bin/node', '/usr/bin/node', '/usr/bin/nodejs']);
    expect(launcherPlaces({ program: 'x', buildNode: '/opt/node-v20/bin/node' })).toEqual([...NODE_PLACES, '/opt/node-v20/bin/node']);
    expect(launcherPlaces({ program: 'x', buildNode: '/usr/bin/node' })).toEqual(NODE_PLACES);
    // a path sh or JavaScript would read otherwise is never written into the line
    for (const odd of ['/opt/my node/bin/node', '/opt/$(x)/node', "/opt/'/node", '/opt/a\nb/node', '/opt/a\u2028b/node', 'relative/node']) {
      expect(isPlainPath(odd)).toBe(false);
      expect(launcherPlaces({ program: 'x', buildNode: odd })).toEqual(NODE_PLACES);
    }
    expect(() => launcherLines({ program: 'x', places: ['/opt/my node'] })).toThrow(/not a plain absolute path/);
  });

  for (const kind of ['cjs', 'mjs'] as const) {
    it(`${kind}: PATH first, then each place in order, then the build's node`, async () => {
      const places = [join(dir, 'p1', 'node'), join(dir, 'p2', 'node')];
      const build = join(dir, 'build', 'node');
      const file = probe(kind, { places, buildNode: build });
      fakeNode(build, 'build');
      expect(parsed(await exec(file, [])).by).toBe('build');
      fakeNode(places[1]!, 'p2');
      expect(parsed(await exec(file, [])).by).toBe('p2');
      fakeNode(places[0]!, 'p1');
      expect(parsed(await exec(file, [])).by).toBe('p1');
      // PATH's own node before all of them, its directories in order; empty ones and
      // directories without node skipped
      fakeNode(join(dir, 'path2', 'node'), 'path2');
      expect(parsed(await exec(file, [], { env: { PATH: `${join(dir, 'empty')}:${join(dir, 'path2')}` } })).by).toBe('path2');
      fakeNode(join(dir, 'path1', 'node'), 'path1');
      expect(parsed(await exec(file, [], { env: { PATH: `${join(dir, 'empty')}:${join(dir, 'path1')}:${join(dir, 'path2')}` } })).by).toBe('path1');
    });
  }

  it('skips a node that is not an executable file (a directory, a file without x, a dangling link)', async () => {
    const places = [join(dir, 'd', 'node'), join(dir, 'nx', 'node'), join(dir, 'dl', 'node'), join(dir, 'ok', 'node')];
    mkdirSync(places[0]!, { recursive: true });
    mkdirSync(join(dir, 'nx'));
    writeFileSync(places[1]!, '#!/bin/sh\nexit 99\n', { mode: 0o644 });
    mkdirSync(join(dir, 'dl'));
    symlinkSync(join(dir, 'nowhere'), places[2]!);
    fakeNode(places[3]!, 'ok');
    expect(parsed(await exec(probe('cjs', { places }), [])).by).toBe('ok');
  });

  it('skips an empty executable file named node (sh would run it as an empty script: exit 0, the mail called delivered)', async () => {
    const places = [join(dir, 'e', 'node'), join(dir, 'ok', 'node')];
    mkdirSync(join(dir, 'e'));
    writeFileSync(places[0]!, '', { mode: 0o755 });
    fakeNode(places[1]!, 'ok');
    expect(parsed(await exec(probe('cjs', { places }), [])).by).toBe('ok');
    rmSync(places[1]!);
    expect((await exec(probe('cjs', { places }), [])).code).toBe(75);
  });

  for (const shell of ['/bin/sh', '/bin/bash']) {
    it(`${shell}: a node there that cannot be executed (its interpreter missing: ENOENT at exec) ends in 75, not 127`, async () => {
      const places = [join(dir, 'bad', 'node')];
      mkdirSync(join(dir, 'bad'));
      writeFileSync(places[0]!, `#!${join(dir, 'no-such-interpreter')}\n`, { mode: 0o755 });
      const file = probe('cjs', { places });
      const r = await exec(shell, [file, 'x']);
      expect(r.code, r.stderr).toBe(75);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(places[0]!);
    });
  }

  it('no node anywhere: exit 75 and one line naming the program, PATH, every place and what to do; the script never runs', async () => {
    const places = [join(dir, 'p1', 'node'), join(dir, 'p2', 'node')];
    const build = join(dir, 'build', 'node');
    for (const kind of ['cjs', 'mjs'] as const) {
      // PATH as it is, backslashes and % included (no escapes read in it)
      const path = `/nonexistent:/no\\cwhere%s\\n:${join(dir, 'empty')}`;
      const r = await exec(probe(kind, { places, buildNode: build, program: 'mailbag-uux' }), ['-r', 'hub!rmail', '(a@b)'], { input: 'From x\n\nbody\n', env: { PATH: path } });
      expect(r.code).toBe(75);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        `4.3.5 mailbag-uux: cannot start: no node in PATH (${path}) nor at ${places.join(', ')}, ${build}; ` +
          'install Node.js 20 or later there, or link yours to /usr/local/bin/node (docs/setup.md)\n',
      );
    }
  });
});

describe('what node gets from the launcher', () => {
  for (const kind of ['cjs', 'mjs'] as const) {
    it(`${kind}: the arguments, byte for byte (spaces, quotes, globs, empty, newlines, leading dashes, non-UTF-8 as given)`, async () => {
      const node = fakeNode(join(dir, 'p', 'node'), 'p');
      const file = probe(kind, { places: [node] });
      const args = ['a b', '"q"', "'s'", '*', '$(id)', '`id`', '', 'x\ny', '-r', '--', '-', '\\', 'ä€😀', ' lead', 'trail ', 'a:b', '%s', '!x'];
      const r = await exec(file, args);
      expect(r.code, r.stderr).toBe(0);
      expect(parsed(r).argv).toEqual(args);
      // the script is run as the path it was called by; and `'use strict'` after the
      // launcher's line still counts (CommonJS), as modules are strict anyway
      expect(parsed(r).script).toBe(file);
      expect(parsed(r).strict).toBe(true);
    });

    it(`${kind}: stdin byte for byte (every byte value, 1 MiB), and node's exit status`, async () => {
      const node = fakeNode(join(dir, 'p', 'node'), 'p');
      const file = probe(kind, { places: [node] });
      const input = Buffer.alloc(1 << 20);
      for (let i = 0; i < input.length; i++) input[i] = (i * 7 + (i >> 8)) & 0xff;
      const r = await exec(file, [], { input });
      expect(r.code, r.stderr).toBe(0);
      expect(parsed(r).input).toBe(input.toString('hex'));
      for (const code of [1, 64, 67, 75, 78]) expect((await exec(file, [], { env: { PROBE_EXIT: String(code) } })).code).toBe(code);
    });
  }

  it('through a symlink (npm\'s bin link): node runs the real file, the link as argv[1], as `#!/usr/bin/env node` did', async () => {
    const node = fakeNode(join(dir, 'p', 'node'), 'p');
    const file = probe('cjs', { places: [node] });
    writeFileSync(file, readFileSync(file, 'utf8').replace("'use strict';", "'use strict';\nprocess.env.LAUNCHED_BY = __filename;"));
    mkdirSync(join(dir, 'bin'));
    const link = join(dir, 'bin', 'probe');
    symlinkSync(file, link);
    const r = await exec(link, ['x']);
    expect(r.code, r.stderr).toBe(0);
    expect(parsed(r)).toMatchObject({ by: realpathSync(file), script: link, argv: ['x'] });
  });

  it('node replaces sh (one process: signals go to node); a SIGTERM ends it as it ends node', async () => {
    const node = fakeNode(join(dir, 'p', 'node'), 'p');
    const file = probe('cjs', { places: [node] });
    let pid = 0;
    const running = exec(file, [], { keepStdinOpen: true, onSpawn: (p) => (pid = p) });
    // the probe waits on stdin: by then the process the caller started is node itself
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && !(pid && existsSync(`/proc/${pid}/exe`) && readlinkSync(`/proc/${pid}/exe`) === realpathSync(process.execPath))) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(readlinkSync(`/proc/${pid}/exe`)).toBe(realpathSync(process.execPath));
    process.kill(pid, 'SIGTERM');
    const r = await running;
    expect(r).toMatchObject({ code: null, signal: 'SIGTERM' });
  });
});

describe('a node older than Node.js 20 found first (Debian 12\'s /usr/bin/node is 18)', () => {
  /** A "node" that runs the real one as if it were `version` (process.version and versions.node). */
  function oldNode(path: string, version: string): string {
    mkdirSync(join(path, '..'), { recursive: true });
    const preload = join(dir, 'as-old.cjs');
    writeFileSync(preload, `Object.defineProperty(process, 'version', { value: 'v${version}' });\nObject.defineProperty(process, 'versions', { value: { ...process.versions, node: '${version}' } });\n`);
    writeFileSync(path, `#!/bin/sh\nexec ${process.execPath} -r ${preload} "$@"\n`, { mode: 0o755 });
    return path;
  }

  for (const kind of ['cjs', 'mjs'] as const) {
    it(`${kind}: exit 75 and one line naming the program, the node and its version; the script never runs`, async () => {
      const places = [join(dir, 'p1', 'node')];
      const o = { program: 'rmail', places };
      // as the build writes the front doors: the CommonJS loaders with the check after
      // 'use strict', tsc's ES module entries through withLauncher
      const text = kind === 'cjs' ? `${launcherLines(o)}'use strict';\n${versionCheck(o)}${PROBE_BODY}` : withLauncher(`${PROBE_BODY}export {};\n`, o).text;
      const file = join(dir, `probe.${kind}`);
      writeFileSync(file, text, { mode: 0o755 });
      oldNode(places[0]!, '18.20.4');
      const path = `${join(dir, 'empty')}:/nonexistent`;
      const r = await exec(file, ['x'], { input: 'From x\n', env: { PATH: path } });
      expect(r.code).toBe(75);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        `4.3.5 rmail: cannot start: ${process.execPath} is Node.js v18.20.4, and mailbag needs ${NODE_MAJOR} or later; ` +
          `upgrade it, or remove it so that a newer node is found (in PATH (${path}) first, then at ${places[0]}) (docs/setup.md)\n`,
      );
      // 20 and later run the script
      oldNode(places[0]!, `${NODE_MAJOR}.0.0`);
      expect(parsed(await exec(file, ['x'], { env: { PATH: path } })).argv).toEqual(['x']);
      oldNode(places[0]!, '100.1.2');
      expect(parsed(await exec(file, ['x'], { env: { PATH: path } })).argv).toEqual(['x']);
    });
  }

  it('the check is ES5 (a node of any age parses it), a statement in a script and in a module', () => {
    const check = versionCheck({ program: 'mailbag', places: ['/p/node'] });
    expect(check.split('\n')).toHaveLength(2);
    expect(esSyntaxSince(check)).toBe('es5');
    expect(() => new Script(`${launcherLines({ program: 'mailbag', places: ['/p/node'] })}'use strict';\n${check}1;\n`)).not.toThrow();
  });
});

/**
 * 'es5' or 'es2019' when `code` has no syntax newer than that (TypeScript emits it as it
 * is for that target, as for the newest), else 'newer'.
 */
function esSyntaxSince(code: string): 'es5' | 'es2019' | 'newer' {
  const emit = (target: ts.ScriptTarget) =>
    ts.transpileModule(code, { fileName: 'x.js', compilerOptions: { target, allowJs: true, module: ts.ModuleKind.Preserve } }).outputText;
  const newest = emit(ts.ScriptTarget.ESNext);
  if (emit(ts.ScriptTarget.ES5) === newest) return 'es5';
  return emit(ts.ScriptTarget.ES2019) === newest ? 'es2019' : 'newer';
}

describe('withLauncher (the build puts it in front of tsc\'s entries)', () => {
  const o = { program: 'rmail', places: ['/p/node'] };
  const head = launcherLines(o) + versionCheck(o);

  it('in front of a file without a #! line: the two lines and the version check added', () => {
    expect(withLauncher('x();\n', o)).toEqual({ text: `${head}x();\n`, added: 3 });
  });

  it('instead of a #! line: two lines added', () => {
    expect(withLauncher('#!/usr/bin/env node\nx();\n', o)).toEqual({ text: `${head}x();\n`, added: 2 });
  });

  it('instead of a launcher and check already there (a second run of the build): nothing added', () => {
    const once = withLauncher('x();\n', { program: 'rmail', places: ['/old/node'] }).text;
    expect(withLauncher(once, o)).toEqual({ text: `${head}x();\n`, added: 0 });
  });

  it('the two lines are sh (sh -n) and JavaScript (compiled as a script and as a module body)', () => {
    const lines = launcherLines(o);
    expect(lines.split('\n')).toHaveLength(3);
    expect(lines.startsWith('#!/bin/sh\n":" //; ')).toBe(true);
    const file = join(dir, 'head.sh');
    writeFileSync(file, lines);
    expect(spawnSync('/bin/sh', ['-n', file]).status).toBe(0);
    expect(spawnSync('/bin/bash', ['-n', file]).status).toBe(0);
    expect(() => new Script(`${lines}'use strict';\n1;\n`)).not.toThrow();
  });
});

describe('the built entries (npm run build)', () => {
  const root = join(import.meta.dirname, '../../..');
  const built = ['mailbag.js', 'mailbag-uux.js', 'rmail.js', 'rsmtp.js'].map((f) => join(root, 'dist/bin', f));
  const loaders = ['mailbag.cjs', 'mailbag-uux.cjs'].map((f) => join(root, 'dist/bin', f));

  // every ES module entry, not only the package's bins: mailbag.js and mailbag-uux.js are
  // the paths tests and older set-ups name in an MTA's transport line
  const esBins = ['rmail.js', 'rsmtp.js', 'mailbag.js', 'mailbag-uux.js'].map((f) => join(root, 'dist/bin', f));
  it.skipIf(!esBins.every((f) => existsSync(f)))('the ES module entries load nothing before the version check: no static import, the check the first statement', () => {
    for (const file of esBins) {
      const text = readFileSync(file, 'utf8');
      expect(text, file).not.toMatch(/^\s*import\s*[\w{*'"]/m);
      expect(`${text.split('\n')[2]}\n`, file).toBe(versionCheck({ program: file.split('/').pop()!.replace(/\.js$/, ''), buildNode: process.execPath }));
    }
  });

  it.skipIf(!esBins.every((f) => existsSync(f)))('an old node parses the ES module entries and reaches the check: ES2019 syntax, and a script too (a node before 12 ignores "type": "module": no import.meta, no top-level await)', () => {
    for (const file of esBins) {
      const text = readFileSync(file, 'utf8');
      expect(esSyntaxSince(text), file).not.toBe('newer');
      expect(() => new Script(text, { filename: file }), file).not.toThrow();
    }
  });

  it.skipIf(!loaders.every((f) => existsSync(f)))('the CommonJS front doors run the version check first and keep to ES2019 (an old node parses them and reaches it)', () => {
    for (const file of loaders) {
      const lines = readFileSync(file, 'utf8').split('\n');
      expect(lines[2], file).toBe("'use strict';");
      expect(lines[3], file).toMatch(/^if \(\+process\.versions\.node\.split\('\.'\)\[0\] < 20\) \{ process\.stderr\.write\('4\.3\.5 mailbag(-uux)?: cannot start: /);
      expect(esSyntaxSince(lines.join('\n')), file).not.toBe('newer');
    }
  });

  it.skipIf(!built.every((f) => existsSync(f)))('tsc\'s entries start with the launcher, and their source maps still point at the right lines', () => {
    for (const file of built) {
      const js = readFileSync(file, 'utf8');
      expect(js.startsWith('#!/bin/sh\n":" //; ')).toBe(true);
      const map = new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8')) as SourceMapPayload);
      const ts = readFileSync(join(root, 'bin', `${file.split('/').pop()!.replace(/\.js$/, '.ts')}`), 'utf8').split('\n');
      // every import line of the built file maps to the same import in the source
      const lines = js.split('\n');
      let checked = 0;
      lines.forEach((line, i) => {
        // a static import, or an import() (of a path, or of a constant that holds one)
        const m = /^import .* from '([^']+)';$/.exec(line) ?? /import\('([^']+)'\)/.exec(line) ?? /import\(([\w$]+)\)/.exec(line);
        if (!m) return;
        const entry = map.findEntry(i, m.index) as { originalLine?: number };
        expect(entry.originalLine, `${file}:${i + 1}`).toBeTypeOf('number');
        expect(ts[entry.originalLine!]).toContain(m[1]!);
        checked++;
      });
      expect(checked).toBeGreaterThan(0);
    }
  });
});
