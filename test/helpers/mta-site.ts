// What the real-MTA tests (exim-bsmtp, postfix-enqueue) share: the mailbag side of the
// site (a test user that can run the front doors, a spool it owns, a config with peer
// `hub` and one that also caps messages at 4K), the jobs a delivery left, and the raw
// header fields an MTA hands on. Each test keeps its own MTA set-up and its own rules
// for which header fields that MTA changes.
import { join } from 'node:path';
import { assertUserCanRun, ensureTestUser, makeSharedTempDir, type TestUser } from './mta-common.js';
import { makeUserSpool, readJobs, writeMailbagConfig, type ReadJob } from './spool-jobs.js';

export interface MailbagSite {
  user: TestUser;
  /** a temp dir the test user can reach (remove it with removeTempDir) */
  dir: string;
  /** the spool, owned by the test user */
  spool: string;
  /** MAILBAG_CONFIG: this spool, peer `hub` */
  config: string;
  /** the same with limits.max_message_size = 4K */
  small: string;
}

export async function makeMailbagSite(prefix: string): Promise<MailbagSite> {
  const user = ensureTestUser();
  await assertUserCanRun(user);
  const dir = makeSharedTempDir(prefix);
  const spool = join(dir, 'spool');
  await makeUserSpool(spool, user);
  const config = join(dir, 'mailbag.toml');
  const small = join(dir, 'small.toml');
  writeMailbagConfig(config, { spool, peers: ['hub'] });
  writeMailbagConfig(small, { spool, peers: ['hub'], limits: { max_message_size: '4K' } });
  return { user, dir, spool, config, small };
}

/** The ids of the jobs queued for peer now. */
export async function jobIds(spool: string, peer: string): Promise<Set<string>> {
  return new Set((await readJobs(spool, peer)).map((j) => j.id));
}

/** The jobs queued for peer that were not there before. */
export async function newJobs(spool: string, peer: string, before: Set<string>): Promise<ReadJob[]> {
  return (await readJobs(spool, peer)).filter((j) => !before.has(j.id));
}

/** Header fields as raw text (continuation lines included), in order. */
export function rawFields(message: Buffer): string[] {
  const text = message.toString('latin1');
  const end = text.indexOf('\n\n');
  const head = end < 0 ? text : text.slice(0, end + 1);
  const fields: string[] = [];
  for (const line of head.split(/(?<=\n)/)) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && fields.length > 0) fields[fields.length - 1] += line;
    else if (line !== '') fields.push(line);
  }
  return fields;
}

/**
 * Is m a message an MTA passes on byte for byte, apart from the header fields it adds
 * or drops? LF line ends, no NUL, lines under line_length_limit, a final newline, the
 * fields an MTA would otherwise add (Message-ID, Date, From) present, and no field that
 * `rewritten` matches (fields this MTA rewrites, in a lower-cased header).
 */
export function passesUnchanged(m: Buffer, rewritten: RegExp): boolean {
  const text = m.toString('latin1');
  const head = text.slice(0, text.indexOf('\n\n') + 1).toLowerCase();
  if (m.includes(0x0d) || m.includes(0) || !text.endsWith('\n')) return false;
  if (text.split('\n').some((l) => l.length > 990)) return false;
  return /^message-id:/m.test(head) && /^date:/m.test(head) && /^from:/m.test(head) && !rewritten.test(head);
}
