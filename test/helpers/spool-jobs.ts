// What the MTA integration tests need around our own spool: a temp spool owned by the
// unprivileged user the MTAs run pipe transports as, a mailbag.toml naming it, and the
// jobs read back with the spool's own reader, their payloads split into envelope and
// message by a deliberately small, independent parser (so a writer bug cannot hide
// behind the same bug in lib/bsmtp).
//
//   await makeUserSpool(spool, user);                    // Spool.open({create}) + chown -R
//   writeMailbagConfig(cfg, { spool, peers: ['hub'] });  // readable by the pipe user
//   const jobs = await readJobs(spool, 'hub');           // [{ id, header, payload }]
//   splitRmail(job.payload)                              // { fromLine, message }
//   splitBsmtp(job.payload)                              // [{ mailFrom, rcptTo, message }]

import { chmodSync, chownSync, lstatSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Spool } from '../../lib/spool/index.js';
import type { JobHeader } from '../../lib/job/index.js';
import type { TestUser } from './mta-common.js';

function chownDeep(path: string, user: TestUser): void {
  chownSync(path, user.uid, user.gid);
  if (lstatSync(path).isDirectory()) for (const n of readdirSync(path)) chownDeep(join(path, n), user);
}

/** Make a fresh spool at `root` and hand it (and every file in it) to `user`. */
export async function makeUserSpool(root: string, user: TestUser): Promise<void> {
  await Spool.open(root, { create: true });
  chownDeep(root, user);
}

export interface MailbagConfigOptions {
  spool: string;
  site?: string;
  peers: string[];
  /** [limits] keys, e.g. { max_message_size: '4K' } */
  limits?: Record<string, string | number>;
}

/** Write a mailbag.toml (mode 0644 so a pipe transport's user can read it). */
export function writeMailbagConfig(path: string, o: MailbagConfigOptions): void {
  const lines = [`site = "${o.site ?? 'home'}"`, `spool = "${o.spool}"`, ''];
  if (o.limits) {
    lines.push('[limits]');
    for (const [k, v] of Object.entries(o.limits)) lines.push(`${k} = ${typeof v === 'number' ? v : `"${v}"`}`);
    lines.push('');
  }
  for (const p of o.peers) lines.push(`[peers.${p}]`, `host = "${p}.invalid"`, '');
  writeFileSync(path, lines.join('\n'));
  chmodSync(path, 0o644);
}

export interface ReadJob {
  id: string;
  header: JobHeader;
  payload: Buffer;
}

/** Every job of one peer's queue, oldest first, read with the spool's own reader. */
export async function readJobs(root: string, peer: string, queue: 'out' | 'in' | 'failed' = 'out'): Promise<ReadJob[]> {
  const spool = await Spool.open(root, { cleanup: false });
  const out: ReadJob[] = [];
  for (const ref of await spool.listJobs(queue, peer)) {
    const job = await spool.readJob(ref);
    const chunks: Buffer[] = [];
    for await (const c of job.payload()) chunks.push(c as Buffer);
    out.push({ id: ref.id, header: job.header, payload: Buffer.concat(chunks) });
  }
  return out;
}

/** An rmail payload: the UUCP From_ line, then the message. */
export function splitRmail(payload: Buffer): { fromLine: string; message: Buffer } {
  const nl = payload.indexOf(0x0a);
  if (nl < 0 || !payload.subarray(0, 5).equals(Buffer.from('From '))) throw new Error('rmail payload does not start with a From_ line');
  return { fromLine: payload.subarray(0, nl).toString('latin1'), message: payload.subarray(nl + 1) };
}

export interface BsmtpTransaction {
  /** the address inside MAIL FROM:<…> ('' for <>) */
  mailFrom: string;
  /** text after the address on the MAIL line (ESMTP parameters), trimmed */
  mailParams: string;
  rcptTo: string[];
  /** the message, dot-stuffing undone, LF line ends as stored */
  message: Buffer;
}

/** Split a BSMTP stream (LF or CRLF) into transactions; throws on anything unexpected. */
export function splitBsmtp(payload: Buffer): BsmtpTransaction[] {
  const out: BsmtpTransaction[] = [];
  let pos = 0;
  const line = (): string | undefined => {
    if (pos >= payload.length) return undefined;
    let nl = payload.indexOf(0x0a, pos);
    if (nl < 0) nl = payload.length;
    const l = payload.subarray(pos, nl).toString('latin1').replace(/\r$/, '');
    pos = nl + 1;
    return l;
  };
  for (;;) {
    let l = line();
    if (l === undefined) return out;
    if (/^(HELO|EHLO) /i.test(l)) continue;
    if (/^QUIT$/i.test(l)) return out;
    const mail = /^MAIL FROM:\s*<([^>]*)>(.*)$/i.exec(l);
    if (!mail) throw new Error(`BSMTP: expected MAIL FROM, got ${JSON.stringify(l)}`);
    const rcptTo: string[] = [];
    for (l = line(); l !== undefined && /^RCPT TO:/i.test(l); l = line()) {
      const r = /^RCPT TO:\s*<([^>]*)>/i.exec(l);
      if (!r) throw new Error(`BSMTP: bad RCPT ${JSON.stringify(l)}`);
      rcptTo.push(r[1]!);
    }
    if (l === undefined || !/^DATA$/i.test(l)) throw new Error(`BSMTP: expected DATA, got ${JSON.stringify(l)}`);
    const parts: Buffer[] = [];
    for (;;) {
      if (pos >= payload.length) throw new Error('BSMTP: DATA without its final "."');
      let nl = payload.indexOf(0x0a, pos);
      if (nl < 0) nl = payload.length - 1;
      const raw = payload.subarray(pos, nl + 1);
      pos = nl + 1;
      const text = raw.toString('latin1');
      if (text === '.\n' || text === '.\r\n') break;
      parts.push(raw[0] === 0x2e ? raw.subarray(1) : raw);
    }
    out.push({ mailFrom: mail[1]!, mailParams: mail[2]!.trim(), rcptTo, message: Buffer.concat(parts) });
  }
}
