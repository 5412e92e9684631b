// The job file header codec, pure: `mailbag-job 1\n`, one line of JSON, `\n`, then the
// payload to the end of the file. The decoder takes untrusted bytes (a job from a peer's
// bag, a file in our spool) and returns a Result; it refuses a wrong magic, a version it
// does not know (by name), a header over LIMITS.maxJobHeader, and any missing, ill-typed
// or unknown field. The encoder validates the same way, so what we write we can read.

import { MailbagError, type Result } from '../errors.js';
import { LIMITS } from '../limits.js';

export const JOB_MAGIC = 'mailbag-job';
export const JOB_VERSION = 1;

/** `mailbag-job 1\n`: the first line of every job file of this version */
export const JOB_MAGIC_LINE = `${JOB_MAGIC} ${JOB_VERSION}\n`;

/** the longest magic line a decoder reads before it gives up (`mailbag-job ` + 9 digits + LF) */
const MAX_MAGIC_LINE = JOB_MAGIC.length + 1 + 9 + 1;

export interface JobHeader {
  /** time-sortable id, see newJobId(); also the job's file name */
  id: string;
  /** the site the job was made on */
  from: string;
  /** the peer the job is for */
  to: string;
  /** ISO 8601 UTC, e.g. 2026-11-22T05:21:36.123Z */
  created: string;
  /** the command the far side runs: 'rmail', 'rsmtp' or an admin-whitelisted name */
  command: string;
  /** the command's arguments (rmail: the recipients; rsmtp: none) */
  args: string[];
  /** envelope sender; '' is the null sender `<>` */
  sender: string;
  /** envelope recipients */
  recipients: string[];
}

export type JobIssueCode = 'truncated' | 'bad-magic' | 'bad-version' | 'header-too-big' | 'bad-header';

export type JobIssue = { code: JobIssueCode; message: string };

const FIELDS = ['id', 'from', 'to', 'created', 'command', 'args', 'sender', 'recipients'] as const;

/** a job id: 12 lowercase hex digits of milliseconds since 1970, then 4 to 52 of [0-9a-z] */
export const JOB_ID_RE = /^[0-9a-f]{12}[0-9a-z]{4,52}$/;
/** a site or peer name; also a directory name in the spool, so no `/`, no leading `.` */
export const NAME_RE = /^[a-z0-9][a-z0-9.-]*$/;
/** a command name: what the far side looks up in its per-peer whitelist */
export const COMMAND_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const CREATED_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;
// NUL cannot pass through argv; CR and LF would split a line in every log and in uuxqt
const FORBIDDEN_CHARS_RE = /[\0\r\n]/;
// Any other C0 control, DEL and the C1 controls (U+0080-U+009F, code points of the
// decoded text: the UTF-8 bytes 0x80-0xBF of any other character are no such thing): a
// peer's text printed for the admin (status --jobs, failed) could carry a terminal escape
// sequence (ESC, or CSI U+009B and OSC U+009D on terminals that take C1). Addresses never
// hold one (the front doors refuse them, lib/envelope/address.ts); args may keep TAB,
// for an action's sake.
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\x01-\x1f\x7f-\x9f]/;
// eslint-disable-next-line no-control-regex
const ARG_CONTROL_RE = /[\x01-\x08\x0b-\x1f\x7f-\x9f]/;

export function isJobId(s: unknown): s is string {
  return typeof s === 'string' && JOB_ID_RE.test(s);
}

/** true for a valid site or peer name (`[a-z0-9][a-z0-9.-]*`, at most LIMITS.maxNameLength) */
export function isName(s: unknown): s is string {
  return typeof s === 'string' && s.length <= LIMITS.maxNameLength && NAME_RE.test(s);
}

function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function checkString(name: string, v: unknown, max: number, controls: RegExp = CONTROL_RE): string | undefined {
  if (typeof v !== 'string') return `${name} must be a string`;
  if (utf8Length(v) > max) return `${name} is longer than ${max} bytes`;
  if (FORBIDDEN_CHARS_RE.test(v)) return `${name} contains NUL, CR or LF`;
  const c = controls.exec(v);
  // the code point, never the character: this text is printed (status --jobs, logs)
  if (c) return `${name} contains a control character (U+${c[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')})`;
  return undefined;
}

function checkList(name: string, v: unknown, maxItems: number, maxItem: number, controls: RegExp = CONTROL_RE): string | undefined {
  if (!Array.isArray(v)) return `${name} must be an array of strings`;
  if (v.length > maxItems) return `${name} has ${v.length} entries, more than ${maxItems}`;
  for (let i = 0; i < v.length; i++) {
    const problem = checkString(`${name}[${i}]`, v[i], maxItem, controls);
    if (problem) return problem;
  }
  return undefined;
}

/** Why a value is not a valid job header, or undefined when it is one. */
export function jobHeaderProblem(h: unknown): string | undefined {
  if (typeof h !== 'object' || h === null || Array.isArray(h)) return 'the header is not a JSON object';
  const o = h as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!(FIELDS as readonly string[]).includes(k)) return `unknown field ${JSON.stringify(k.slice(0, 64))}`;
  }
  for (const k of FIELDS) {
    if (!Object.hasOwn(o, k)) return `missing field "${k}"`;
  }
  if (!isJobId(o.id)) return `id ${JSON.stringify(String(o.id).slice(0, 80))} is not a job id (12 hex digits of time, then [0-9a-z])`;
  if (!isName(o.from)) return `from ${JSON.stringify(String(o.from).slice(0, 80))} is not a site name ([a-z0-9][a-z0-9.-]*, at most ${LIMITS.maxNameLength})`;
  if (!isName(o.to)) return `to ${JSON.stringify(String(o.to).slice(0, 80))} is not a peer name ([a-z0-9][a-z0-9.-]*, at most ${LIMITS.maxNameLength})`;
  if (typeof o.created !== 'string' || !CREATED_RE.test(o.created) || Number.isNaN(Date.parse(o.created))) {
    return 'created must be an ISO 8601 UTC time like 2026-11-22T05:21:36.123Z';
  }
  if (typeof o.command !== 'string' || !COMMAND_RE.test(o.command)) return 'command must match [a-z0-9][a-z0-9._-]* (at most 64)';
  return (
    checkList('args', o.args, LIMITS.maxRecipients, LIMITS.maxArgLength, ARG_CONTROL_RE) ??
    checkString('sender', o.sender, LIMITS.maxAddressLength) ??
    checkList('recipients', o.recipients, LIMITS.maxRecipients, LIMITS.maxAddressLength)
  );
}

/**
 * The magic line, the header as one line of JSON, and LF: the bytes a job file starts
 * with. Throws MailbagError 'bad-job' for a header that the decoder would refuse.
 */
export function encodeJobHeader(header: JobHeader): Buffer {
  const problem = jobHeaderProblem(header);
  if (problem) throw new MailbagError('bad-job', `cannot write job: ${problem}`);
  // fixed field order, so equal headers give equal bytes (golden tests, content hashes)
  const ordered: JobHeader = {
    id: header.id,
    from: header.from,
    to: header.to,
    created: header.created,
    command: header.command,
    args: [...header.args],
    sender: header.sender,
    recipients: [...header.recipients],
  };
  const json = JSON.stringify(ordered);
  const bytes = Buffer.from(`${JOB_MAGIC_LINE}${json}\n`, 'utf8');
  if (bytes.length - JOB_MAGIC_LINE.length > LIMITS.maxJobHeader) {
    throw new MailbagError('bad-job', `cannot write job: header is over ${LIMITS.maxJobHeader} bytes`);
  }
  return bytes;
}

export interface DecodedHeader {
  header: JobHeader;
  /** bytes taken by the magic line and the header line: the payload starts here */
  length: number;
}

// made on first use: a front door only encodes headers
let fatalUtf8: TextDecoder | undefined;

function fail(code: JobIssueCode, message: string): { ok: false; issue: JobIssue } {
  return { ok: false, issue: { code, message } };
}

/**
 * Decode the start of a job file. `bytes` may hold the payload too (it is left alone),
 * or only a prefix of the file: then the result is `truncated` unless the prefix is
 * already wrong. Reads at most MAX_JOB_PREFIX bytes of it.
 */
export function decodeJobHeader(bytes: Uint8Array): Result<DecodedHeader, JobIssueCode> {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magicEnd = buf.indexOf(0x0a);
  const magicSpan = magicEnd === -1 ? buf.subarray(0, MAX_MAGIC_LINE) : buf.subarray(0, magicEnd);
  const prefix = `${JOB_MAGIC} `;
  // compare what we have against the magic even when the line is incomplete, so a
  // short wrong file is called wrong, not truncated
  const have = magicSpan.toString('latin1');
  if (!prefix.startsWith(have.slice(0, prefix.length))) {
    return fail('bad-magic', `not a mailbag job file (it does not start with "${JOB_MAGIC} ")`);
  }
  if (magicEnd === -1) {
    if (buf.length >= MAX_MAGIC_LINE) return fail('bad-magic', 'not a mailbag job file (no end to its first line)');
    const digits = have.slice(prefix.length);
    if (!/^\d*$/.test(digits)) return fail('bad-magic', 'not a mailbag job file (bad version field)');
    return fail('truncated', 'job file ends inside its first line');
  }
  const versionText = have.slice(prefix.length);
  if (!/^[0-9]{1,9}$/.test(versionText) || magicEnd > MAX_MAGIC_LINE) {
    return fail('bad-magic', 'not a mailbag job file (bad version field)');
  }
  const version = Number(versionText);
  if (version !== JOB_VERSION) {
    return fail('bad-version', `job format version ${version} is not supported; this mailbag reads version ${JOB_VERSION}`);
  }
  const start = magicEnd + 1;
  const scanEnd = Math.min(buf.length, start + LIMITS.maxJobHeader + 1);
  const lineEnd = buf.subarray(0, scanEnd).indexOf(0x0a, start);
  if (lineEnd === -1) {
    if (scanEnd - start > LIMITS.maxJobHeader) {
      return fail('header-too-big', `job header is over ${LIMITS.maxJobHeader} bytes`);
    }
    return fail('truncated', 'job file ends inside its header line');
  }
  if (lineEnd - start > LIMITS.maxJobHeader) return fail('header-too-big', `job header is over ${LIMITS.maxJobHeader} bytes`);
  let text: string;
  try {
    text = (fatalUtf8 ??= new TextDecoder('utf-8', { fatal: true })).decode(buf.subarray(start, lineEnd));
  } catch {
    return fail('bad-header', 'job header is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return fail('bad-header', `job header is not JSON: ${(err as Error).message}`);
  }
  const problem = jobHeaderProblem(value);
  if (problem) return fail('bad-header', `bad job header: ${problem}`);
  return { ok: true, value: { header: value as JobHeader, length: lineEnd + 1 } };
}

/** the most bytes decodeJobHeader ever needs to see before it can answer */
export const MAX_JOB_PREFIX = MAX_MAGIC_LINE + LIMITS.maxJobHeader + 1;
