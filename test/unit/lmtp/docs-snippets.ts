// The snippets of docs/lmtp.md, read from the page itself: the docs test delivers
// through each of them, and the lmtp bench configures Postfix and lmtpd with exactly the
// Postfix ones, so what is measured is what the page recommends.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** the checkout: the nearest directory above with a package.json (also when run built, from dist/) */
function findRepoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json')) && dirname(d) !== d) d = dirname(d);
  return d;
}

export const lmtpPage = (): string => readFileSync(join(findRepoRoot(), 'docs/lmtp.md'), 'utf8');

/** the fenced block right after `<!-- test: NAME -->` */
export function snippet(name: string, page = lmtpPage()): string {
  const at = page.indexOf(`<!-- test: ${name} -->\n`);
  if (at < 0) throw new Error(`docs/lmtp.md has no snippet "${name}"`);
  const m = /^```[^\n]*\n([\s\S]*?)^```$/m.exec(page.slice(at));
  if (!m) throw new Error(`docs/lmtp.md: snippet "${name}" has no code block`);
  return m[1]!;
}

/** the lines of a Postfix snippet (main.cf, master.cf, transport map) without comments and blank lines */
export function postfixLines(name: string, page = lmtpPage()): string[] {
  return snippet(name, page).split('\n').filter((l) => l.trim() && !l.trimStart().startsWith('#'));
}

/** an integer key of the [lmtp] table of the page's mailbag.toml */
export function lmtpTomlNumber(key: string, page = lmtpPage()): number {
  const m = new RegExp(`^${key}\\s*=\\s*(\\d+)`, 'm').exec(snippet('mailbag.toml', page));
  if (!m) throw new Error(`docs/lmtp.md: mailbag.toml has no ${key}`);
  return Number(m[1]);
}

/**
 * The Postfix configuration the page recommends for delivering to mailbag: the
 * master.cf service, its transport name, the main.cf lines (transport_maps left out:
 * callers keep their own map), and the service's process limit.
 */
export function postfixRecommendation(page = lmtpPage()): { masterCf: string[]; transport: string; mainCf: string[]; processLimit: number } {
  const masterCf = postfixLines('postfix-master.cf', page);
  const fields = masterCf[0]?.split(/\s+/) ?? [];
  if (masterCf.length !== 1 || fields.length < 8 || fields[1] !== 'unix' || fields[7] !== 'lmtp') {
    throw new Error(`docs/lmtp.md: postfix-master.cf should be one "NAME unix … lmtp" service, not ${JSON.stringify(masterCf)}`);
  }
  const transport = fields[0]!;
  const processLimit = Number(fields[6]);
  const mainCf = postfixLines('postfix-main.cf', page).filter((l) => !/^transport_maps\s*=/.test(l));
  return { masterCf, transport, mainCf, processLimit };
}

/**
 * The environment the page's systemd unit gives lmtpd (its `Environment=NAME=VALUE`
 * lines): the bench and the docs test start lmtpd with it, as the unit would.
 */
export function lmtpdEnvironment(page = lmtpPage()): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of snippet('systemd', page).split('\n')) {
    const m = /^Environment=([A-Za-z_][A-Za-z0-9_]*)=(\S*)\s*$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}
