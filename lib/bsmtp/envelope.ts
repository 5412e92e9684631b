// The envelope of one BSMTP transaction and its ESMTP parameters, shared by the
// writer and the reader, with the checks both apply so that what one writes the
// other reads back unchanged.

import type { Result } from '../errors.js';
import { checkRecipient, checkSender } from '../envelope/address.js';

/** One ESMTP parameter: `NAME` upper-cased, the value as written (`null` for a bare keyword like `SMTPUTF8`). */
export interface EsmtpParam {
  name: string;
  value: string | null;
}

export interface BsmtpRecipient {
  address: string;
  params: EsmtpParam[];
}

/** One transaction's envelope. `sender` `''` is the null sender (`MAIL FROM:<>`). */
export interface BsmtpEnvelope {
  sender: string;
  mailParams: EsmtpParam[];
  recipients: BsmtpRecipient[];
}

/** MAIL parameters our jobs carry (Exim -bS refuses them all: strip before feeding it). */
export const MAIL_PARAMS = ['RET', 'ENVID', 'SIZE', 'BODY', 'SMTPUTF8'] as const;
/** RCPT parameters our jobs carry. */
export const RCPT_PARAMS = ['NOTIFY', 'ORCPT'] as const;

/** only the parameters named in `names` (MAIL_PARAMS or RCPT_PARAMS), order kept */
export function keepParams(params: readonly EsmtpParam[], names: readonly string[]): EsmtpParam[] {
  return params.filter((p) => names.includes(p.name));
}

/** A parameter map as smtp-server gives it (`{ RET: 'HDRS', SMTPUTF8: true }`) as EsmtpParam[]. */
export function paramsFromObject(args: Record<string, string | boolean | undefined> | false | undefined): EsmtpParam[] {
  if (!args) return [];
  const out: EsmtpParam[] = [];
  for (const [name, value] of Object.entries(args)) {
    if (value === undefined || value === false) continue;
    out.push({ name: name.toUpperCase(), value: value === true ? null : value });
  }
  return out;
}

/**
 * The path at the start of a MAIL FROM / RCPT TO argument (what follows the colon;
 * leading spaces and tabs skipped): `<…>`, where a quoted local part may hold `>`, or a
 * bare word. An obsolete source route (`<@a,@b:user@c>`) is dropped, the mailbox kept
 * (RFC 5321 §4.1.1.3). Returns the path (`''` for `<>`), the text after it and whether
 * it was in brackets, or undefined for a `<` that is never closed.
 */
export function splitPath(arg: string): { path: string; rest: string; bracketed: boolean } | undefined {
  const s = arg.replace(/^[ \t]+/, '');
  let path: string;
  let rest: string;
  const bracketed = s.startsWith('<');
  if (bracketed) {
    let j = 1;
    let quoted = false;
    for (; j < s.length; j++) {
      const c = s[j];
      if (quoted && c === '\\') j++;
      else if (c === '"') quoted = !quoted;
      else if (c === '>' && !quoted) break;
    }
    if (j >= s.length) return undefined;
    path = s.slice(1, j);
    rest = s.slice(j + 1);
  } else {
    const m = /^([^ \t]*)(.*)$/s.exec(s)!;
    path = m[1]!;
    rest = m[2]!;
  }
  const route = /^@[^:]*:(.*)$/s.exec(path);
  if (route) path = route[1]!;
  return { path, rest, bracketed };
}

const PARAM_NAME = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
// eslint-disable-next-line no-control-regex
const PARAM_VALUE_BAD = /[\u0000-\u0020\u007f]/;

/** `NAME[=value]` → EsmtpParam, or why not */
export function parseParam(word: string): EsmtpParam | string {
  const eq = word.indexOf('=');
  const name = eq === -1 ? word : word.slice(0, eq);
  if (!PARAM_NAME.test(name)) return `bad ESMTP parameter name in ${JSON.stringify(word)}`;
  if (eq === -1) return { name: name.toUpperCase(), value: null };
  const value = word.slice(eq + 1);
  if (value === '' || PARAM_VALUE_BAD.test(value)) return `bad ESMTP parameter value in ${JSON.stringify(word)}`;
  return { name: name.toUpperCase(), value };
}

export function checkParam(p: EsmtpParam): string | null {
  if (!PARAM_NAME.test(p.name) || p.name !== p.name.toUpperCase()) return `bad ESMTP parameter name ${JSON.stringify(p.name)}`;
  if (p.value !== null && (p.value === '' || PARAM_VALUE_BAD.test(p.value))) {
    return `bad value for ESMTP parameter ${p.name}: ${JSON.stringify(p.value)}`;
  }
  return null;
}

/** ` NAME=value NAME2` (with the leading space), or `''` for none */
export function formatParams(params: readonly EsmtpParam[]): string {
  let out = '';
  for (const p of params) out += p.value === null ? ` ${p.name}` : ` ${p.name}=${p.value}`;
  return out;
}

export type EnvelopeIssueCode = 'bad-sender' | 'bad-recipient' | 'no-recipients' | 'bad-bsmtp';

/**
 * Does `address`, written as `<address>`, read back as itself (splitPath)? Not when its
 * quotes do not pair up (`a"b@x`, as an MTA may pass a local part it has dequoted: the
 * reader then finds no end to the `<`), nor with a source route (`@r:u@x` reads as `u@x`).
 */
function readsBack(address: string): boolean {
  const split = splitPath(`<${address}>`);
  return split !== undefined && split.path === address && split.rest === '';
}

const NOT_READ_BACK = 'cannot be written in a BSMTP path so that it reads back as itself (an unpaired `"` or a trailing `\\` in quotes, or a source route)';

/** The checks applied to an envelope before it is written (the reader applies the same). */
export function checkBsmtpEnvelope(env: BsmtpEnvelope): Result<BsmtpEnvelope, EnvelopeIssueCode> {
  const s = checkSender(env.sender, 'bsmtp');
  if (!s.ok) return s;
  if (!readsBack(env.sender)) return { ok: false, issue: { code: 'bad-sender', message: `sender ${JSON.stringify(env.sender.slice(0, 80))} ${NOT_READ_BACK}` } };
  for (const p of env.mailParams) {
    const why = checkParam(p);
    if (why) return { ok: false, issue: { code: 'bad-bsmtp', message: why } };
  }
  if (env.recipients.length === 0) return { ok: false, issue: { code: 'no-recipients', message: 'no recipients' } };
  for (const r of env.recipients) {
    const c = checkRecipient(r.address, 'bsmtp');
    if (!c.ok) return c;
    if (!readsBack(r.address)) return { ok: false, issue: { code: 'bad-recipient', message: `recipient ${JSON.stringify(r.address.slice(0, 80))} ${NOT_READ_BACK}` } };
    for (const p of r.params) {
      const why = checkParam(p);
      if (why) return { ok: false, issue: { code: 'bad-bsmtp', message: why } };
    }
  }
  return { ok: true, value: env };
}
