// The BSMTP envelope lines of one LMTP transaction, rebuilt from what smtp-server
// parsed: `MAIL FROM:<s> PARAMS`, `RCPT TO:<r> PARAMS`…, `DATA`, each ending in LF
// (Exim's use_bsmtp shape). Every ESMTP parameter the client sent is kept, in its
// order; xtext values (ENVID, ORCPT) are encoded again. Pure.

import { domainToASCII } from 'node:url';

/** A MAIL or RCPT as smtp-server hands it over: address and raw (xtext-decoded) parameters. */
export interface ParsedAddress {
  address: string;
  args: Record<string, string | boolean> | false | undefined;
}

/**
 * RFC 3461 xtext: "+" and "=" and anything outside "!".."~" as +HH. smtp-server decoded
 * +HH into one char of that code; a char above 0xFF came raw (UTF-8) and stays raw.
 */
export function encodeXtext(value: string): string {
  let out = '';
  for (const ch of value) {
    const c = ch.codePointAt(0)!;
    if (c > 0xff) out += ch;
    else if (c < 0x21 || c > 0x7e || ch === '+' || ch === '=') out += `+${c.toString(16).toUpperCase().padStart(2, '0')}`;
    else out += ch;
  }
  return out;
}

const XTEXT_PARAMS = new Set(['ENVID', 'ORCPT']);

/** ` KEY=VALUE` for each parameter, in the order the client sent them. */
export function formatParams(args: ParsedAddress['args']): string {
  if (!args) return '';
  let out = '';
  for (const [key, value] of Object.entries(args)) {
    if (value === true) out += ` ${key}`;
    else if (value === false) continue;
    else out += ` ${key}=${XTEXT_PARAMS.has(key) ? encodeXtext(value) : value}`;
  }
  return out;
}

/**
 * smtp-server turns an `xn--` domain into Unicode. Without SMTPUTF8 the client can
 * only have sent ASCII, so turn it back; with SMTPUTF8 keep what we have.
 */
export function wireAddress(address: string, smtpUtf8: boolean): string {
  if (smtpUtf8) return address;
  const at = address.lastIndexOf('@');
  if (at < 0) return address;
  const domain = address.slice(at + 1);
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(domain)) return address;
  const ascii = domainToASCII(domain);
  return ascii ? `${address.slice(0, at)}@${ascii}` : address;
}

export interface EnvelopeLines {
  /** `MAIL FROM:<…>…\n` + `RCPT TO:<…>…\n`… + `DATA\n` */
  prefix: string;
  sender: string;
  recipients: string[];
}

/** The BSMTP lines before the message for one peer's share of the recipients. */
export function envelopeLines(mailFrom: ParsedAddress, rcptTo: readonly ParsedAddress[], smtpUtf8: boolean): EnvelopeLines {
  const sender = wireAddress(mailFrom.address ?? '', smtpUtf8);
  const recipients = rcptTo.map((r) => wireAddress(r.address, smtpUtf8));
  let prefix = `MAIL FROM:<${sender}>${formatParams(mailFrom.args)}\n`;
  rcptTo.forEach((r, i) => {
    prefix += `RCPT TO:<${recipients[i]}>${formatParams(r.args)}\n`;
  });
  prefix += 'DATA\n';
  return { prefix, sender, recipients };
}
