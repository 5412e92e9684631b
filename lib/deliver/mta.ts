// Which MTA stands behind the sendmail program: only Exim accepts `sendmail -bV`
// (formats.md checklist 12), so that call decides whether DSN flags are safe. Postfix
// is recognised by its sendmail's messages (`sendmail: fatal: unsupported: -bV`) or its path; anything else that is not Exim
// is treated as sendmail 8 (which takes -N/-R/-V too). Unknown (the probe failed) gets
// no DSN flags: losing DSN beats turning options into recipients.

import { realpathSync } from 'node:fs';
import type { MtaFlavour } from '../config/types.js';
import { runChild } from './sendmail.js';

export type MtaKind = 'postfix' | 'exim' | 'sendmail' | 'unknown';

const cache = new Map<string, MtaKind>();

/** Classify the output of `sendmail -bV` (pure, for tests). */
export function classifyVersionProbe(code: number | null, output: string, realPath: string): MtaKind {
  if (code === 0 && /\bExim version\b/i.test(output)) return 'exim';
  if (/exim/i.test(realPath)) return 'exim';
  // a configured Postfix answers `sendmail: fatal: unsupported: -bV` (exit 75): its
  // msg_fatal() prefix is the sign, since the words name no Postfix file
  if (/postfix|postdrop|main\.cf/i.test(output) || /^\S*sendmail: fatal: /m.test(output) || /postfix/i.test(realPath)) return 'postfix';
  if (code !== null && /sendmail/i.test(output)) return 'sendmail';
  return 'unknown';
}

/** The configured flavour, or a probe of `program -bV` (cached per program and config dir). */
export async function detectMta(program: string, configured: MtaFlavour, env: NodeJS.ProcessEnv): Promise<MtaKind> {
  if (configured !== 'auto') return configured;
  const key = `${program}\0${env.MAIL_CONFIG ?? ''}`;
  const known = cache.get(key);
  if (known) return known;
  let real = program;
  try {
    real = realpathSync(program);
  } catch {
    // classify by the probe alone
  }
  const out = await runChild(program, ['-bV'], undefined, env, 15_000);
  const kind = out.spawnError ? 'unknown' : classifyVersionProbe(out.code, out.output, real);
  if (kind !== 'unknown') cache.set(key, kind);
  return kind;
}
