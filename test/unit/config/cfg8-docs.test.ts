// docs/configuration.md and docs/examples/mailbag.toml against the loader: every key the
// code reads is in the docs' tables and in the example (set or commented out), every key
// documented is read, and every default the tables give as a value is the code's own.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot, parseConfig } from '../../../lib/config/index.js';

const root = packageRoot();
const docs = readFileSync(join(root, 'docs/configuration.md'), 'utf8');
const example = readFileSync(join(root, 'docs/examples/mailbag.toml'), 'utf8');

/** The sections the loader knows, with the TOML that opens each in a test file. */
const SECTIONS: Record<string, { heading: RegExp; open: string }> = {
  '': { heading: /^### Top level$/, open: '' },
  limits: { heading: /^### `\[limits\]`/, open: '[limits]\n' },
  delivery: { heading: /^### `\[delivery\]`/, open: '[delivery]\n' },
  lmtp: { heading: /^### `\[lmtp\]`/, open: '[lmtp]\n' },
  'peers.NAME': { heading: /^### `\[peers\.NAME\]`/, open: '[peers.hub]\n' },
};

/** The docs' type cells, by `section|key`. */
const types: Record<string, string> = {};

/** The docs' table rows of each section: key → its default cell. */
function documented(): Record<string, Map<string, string>> {
  const out: Record<string, Map<string, string>> = {};
  let section: string | undefined;
  for (const line of docs.split('\n')) {
    if (line.startsWith('### ') || line.startsWith('## ')) {
      section = Object.keys(SECTIONS).find((s) => SECTIONS[s]!.heading.test(line));
      if (section !== undefined) out[section] = new Map();
      continue;
    }
    const row = /^\| `([a-z_]+)` \| ([^|]+) \| (.*?) \| .* \|$/.exec(line);
    if (row && section !== undefined) {
      out[section]!.set(row[1]!, row[3]!);
      types[`${section}|${row[1]!}`] = row[2]!;
    }
  }
  return out;
}

/** The keys the loader reads in a section: the list its unknown-key error gives. */
function readByCode(section: string): string[] {
  try {
    parseConfig(`${SECTIONS[section]!.open}zz_not_a_key = 1\n`, '/m.toml');
  } catch (err) {
    const known = /known here: ([^)]*)\)/.exec((err as Error).message);
    if (known) return known[1]!.split(', ').filter((k) => !(section === '' && ['limits', 'delivery', 'lmtp', 'peers'].includes(k)) && !(section === 'peers.NAME' && k === 'actions'));
  }
  throw new Error(`no unknown-key error in ${section || 'the top level'}`);
}

/** The keys the example shows in each section, set or commented out. */
function inExample(): Record<string, Set<string>> {
  const out: Record<string, Set<string>> = Object.fromEntries(Object.keys(SECTIONS).map((s) => [s, new Set<string>()]));
  let section: string | undefined = '';
  for (const line of example.split('\n')) {
    const head = /^#?\s*\[([^\]]+)\]/.exec(line);
    if (head) {
      const name = head[1]!.replace(/^peers\.[^.]+$/, 'peers.NAME');
      section = Object.hasOwn(SECTIONS, name) ? name : undefined;
      continue;
    }
    const key = /^#?\s*([a-z_]+)\s*=/.exec(line);
    if (key && section !== undefined) out[section]!.add(key[1]!);
  }
  return out;
}

describe('docs/configuration.md and the example against the code', () => {
  const tables = documented();

  it.each(Object.keys(SECTIONS))('section "%s": the same keys in the docs, the example and the code', (section) => {
    const code = readByCode(section).sort();
    expect(code.length).toBeGreaterThan(3);
    expect([...tables[section]!.keys()].sort()).toEqual(code);
    expect([...inExample()[section]!].sort()).toEqual(code);
  });

  it('the example loads as it is', () => {
    expect(() => parseConfig(example, join(root, 'docs/examples/mailbag.toml'))).not.toThrow();
  });

  it('every default the docs give as a value is what the code fills in', () => {
    let checked = 0;
    for (const [section, rows] of Object.entries(tables)) {
      for (const [key, cell] of rows) {
        const literal = /^`([^`]+)`$/.exec(cell)?.[1];
        // "none", a default in words, or a path written bare (known_hosts' ~/.ssh/known_hosts)
        if (literal === undefined || !/^("|\[|\d|true$|false$)/.test(literal)) continue;
        // a site named, for the defaults that name it (remote_command's SITE)
        const open = `${key === 'site' ? '' : 'site = "home"\n'}${SECTIONS[section]!.open}`;
        const without = parseConfig(open, '/etc/m/m.toml');
        const withDefault = parseConfig(`${open}${key} = ${literal.replace(/\bSITE\b/g, 'home')}\n`, '/etc/m/m.toml');
        // lmtp.workers stays undefined when unset, which lmtpd reads as 1 (types.ts)
        without.lmtp.workers ??= 1;
        withDefault.lmtp.workers ??= 1;
        expect(withDefault, `${section}.${key} = ${literal}`).toEqual(without);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(25);
  });

  it('every range the docs give ("integer 1–256", "size, at most 256G", "duration, at most "24d"", "duration, "1s" to "24d"") is the code\'s', () => {
    let checked = 0;
    for (const [where, type] of Object.entries(types)) {
      const [section, key] = where.split('|') as [string, string];
      const open = `site = "home"\n${SECTIONS[section]!.open}`;
      const load = (value: string): unknown => parseConfig(`${open}${key} = ${value}\n`, '/etc/m/m.toml');
      const refused = (value: string): void => expect(() => load(value), `${where} = ${value}`).toThrow(`: ${section === '' ? '' : `${section.replace('NAME', 'hub')}.`}${key}: `);
      const int = /^integer (\d+)–(\d+)$/.exec(type);
      const most = /at most `?"?(\d+)([KMGTdhms]?)"?`?$/.exec(type);
      const span = /^duration, `"(\d+)([smhd])"` to `"(\d+)([smhd])"`$/.exec(type);
      if (span) {
        const unitMs: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
        const [lo, hi] = [Number(span[1]) * unitMs[span[2]!]!, Number(span[3]) * unitMs[span[4]!]!];
        expect(() => load(`"${lo}ms"`), `${where} = "${lo}ms"`).not.toThrow();
        expect(() => load(`"${hi}ms"`), `${where} = "${hi}ms"`).not.toThrow();
        refused(`"${lo - 1}ms"`);
        refused(`"${hi + 1}ms"`);
      } else if (int) {
        const [min, max] = [Number(int[1]), Number(int[2])];
        expect(() => load(String(min))).not.toThrow();
        expect(() => load(String(max))).not.toThrow();
        refused(String(min - 1));
        refused(String(max + 1));
      } else if (most) {
        const value = `${most[1]}${most[2]}`;
        const over = `${Number(most[1]) + 1}${most[2]}`;
        expect(() => load(`"${value}"`), `${where} = "${value}"`).not.toThrow();
        refused(`"${over}"`);
      } else continue;
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(11);
  });
});
