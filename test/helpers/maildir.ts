// Read what a real MTA delivered into a Maildir (new/ and cur/; tmp/ is not delivered
// yet), split each message into headers and body, and compare bodies byte for byte.
//
//   const msgs = await waitMaildir(pf.maildir('user'), 2);   // bounded wait for 2 messages
//   msgs[0].returnPath            // 'a@x.test' ('' for <>), from the Return-Path header
//   msgs[0].header('subject')     // first value, unfolded; headerAll('received') for all
//   bodyOf(original).equals(msgs[0].body)   // bodies compare as bytes

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from './mta-common.js';

export interface MaildirMessage {
  /** path of the file in new/ or cur/ */
  path: string;
  raw: Buffer;
  /** header fields in order, names as written, values unfolded (CRLF/LF + WSP removed) */
  headers: Array<[name: string, value: string]>;
  /** bytes after the blank line that ends the header (empty when there is none) */
  body: Buffer;
  /** the address inside the first Return-Path, '' for <>, undefined when absent */
  returnPath: string | undefined;
  header(name: string): string | undefined;
  headerAll(name: string): string[];
}

/** Offset of the first byte after the header's terminating blank line, or -1. */
function headerEnd(raw: Buffer): number {
  if (raw.length > 0 && (raw[0] === 0x0a || (raw[0] === 0x0d && raw[1] === 0x0a))) return raw[0] === 0x0a ? 1 : 2;
  for (let i = 0; i < raw.length - 1; i++) {
    if (raw[i] !== 0x0a) continue;
    if (raw[i + 1] === 0x0a) return i + 2;
    if (raw[i + 1] === 0x0d && raw[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

/** Split a message into its header fields and body. */
export function parseMessage(raw: Buffer): { headers: Array<[string, string]>; body: Buffer } {
  const end = headerEnd(raw);
  const head = (end < 0 ? raw : raw.subarray(0, end)).toString('latin1');
  const body = end < 0 ? Buffer.alloc(0) : raw.subarray(end);
  const headers: Array<[string, string]> = [];
  for (const line of head.split(/\r?\n/)) {
    if (line === '') continue;
    if ((line.startsWith(' ') || line.startsWith('\t')) && headers.length > 0) {
      const last = headers[headers.length - 1]!;
      last[1] += ' ' + line.trim();
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue; // a From_ line or junk: not a field
    headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  }
  return { headers, body };
}

/** The body of an original message (for comparing with a delivered one). */
export function bodyOf(raw: Buffer): Buffer {
  return parseMessage(raw).body;
}

function toMessage(path: string): MaildirMessage {
  const raw = readFileSync(path);
  const { headers, body } = parseMessage(raw);
  const headerAll = (name: string) => headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
  const rp = headerAll('return-path')[0];
  const m = rp === undefined ? undefined : /<([^>]*)>/.exec(rp);
  return {
    path,
    raw,
    headers,
    body,
    returnPath: rp === undefined ? undefined : m ? m[1] : rp,
    header: (name) => headerAll(name)[0],
    headerAll,
  };
}

/** Every delivered message (new/ then cur/), oldest name first; [] when the Maildir does not exist. */
export function readMaildir(dir: string): MaildirMessage[] {
  const out: MaildirMessage[] = [];
  for (const sub of ['new', 'cur']) {
    const d = join(dir, sub);
    if (!existsSync(d)) continue;
    for (const name of readdirSync(d).sort()) {
      if (name.startsWith('.')) continue;
      out.push(toMessage(join(d, name)));
    }
  }
  return out;
}

/** Wait (bounded) until the Maildir holds at least `count` messages and return them all. */
export async function waitMaildir(dir: string, count: number, timeoutMs = 30_000): Promise<MaildirMessage[]> {
  await waitFor(() => readMaildir(dir).length >= count, timeoutMs, `${count} message(s) in ${dir}`, 200);
  return readMaildir(dir);
}
