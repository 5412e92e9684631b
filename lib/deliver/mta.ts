// Which MTA stands behind the sendmail program, from what `sendmail -bV` answers (checked
// with each real program, docs/runner.md "Which MTA"): Exim prints its version; a
// configured Postfix `sendmail: fatal: unsupported: -bV`; sendmail 8 `Invalid operation
// mode V` (exit 64); OpenSMTPD's enqueuer its usage line (or, not setgid, that it must be
// setgid opensmtpq); nullmailer its usage with its name; msmtp `unsupported operation mode
// bV`. Each decides which flags are safe: DSN flags only where the program passes them on
// (Postfix, sendmail 8, OpenSMTPD), never where they would turn into recipients (Exim),
// abort the message (msmtp: -V is an invalid option; -N to a server without DSN fails it)
// or be ignored (nullmailer). Anything else gets the plain common interface
// (`-oi -f SENDER -- RCPT…`): losing DSN beats turning options into recipients.

import { realpathSync } from 'node:fs';
import type { MtaFlavour } from '../config/types.js';
import { runChild } from './sendmail.js';

export type MtaKind = 'postfix' | 'exim' | 'sendmail' | 'opensmtpd' | 'nullmailer' | 'msmtp' | 'unknown';

const cache = new Map<string, MtaKind>();

/** Classify the output of `sendmail -bV` (pure, for tests). */
export function classifyVersionProbe(code: number | null, output: string, realPath: string): MtaKind {
  if (code === 0 && /\bExim version\b/i.test(output)) return 'exim';
  if (/exim/i.test(realPath)) return 'exim';
  // a configured Postfix answers `sendmail: fatal: unsupported: -bV` (exit 75): its
  // msg_fatal() prefix is the sign, since the words name no Postfix file
  if (/postfix|postdrop|main\.cf/i.test(output) || /^\S*sendmail: fatal: /m.test(output) || /postfix/i.test(realPath)) return 'postfix';
  if (/opensmtpq|smtpctl/i.test(output) || /^usage: \S*sendmail \[-tv\] \[-f from\] \[-F name\] to /m.test(output) || /smtpctl$/.test(realPath)) return 'opensmtpd';
  if (/nullmailer/i.test(output) || /nullmailer/i.test(realPath)) return 'nullmailer';
  if (/^msmtp: /m.test(output) || /msmtp$/.test(realPath)) return 'msmtp';
  // a sendmail that merely names itself (any emulator's usage line) is not sendmail 8
  if (code === 64 && /^Invalid operation mode V$/m.test(output)) return 'sendmail';
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
