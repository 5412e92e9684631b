// The sendmail delivery method: one `sendmail -oi -f SENDER [DSN flags] -- RCPT…`
// process per message (never -oee: rejections must show in the exit status; Exim gets
// -oep, so that it does not mail its own error besides the runner's notice, and a
// recipient it names as unparsable is refused alone, the others offered again), DSN flags
// (-N/-R/-V) only for an MTA that passes them on (Postfix, sendmail 8, OpenSMTPD; never
// Exim, whose -N turns the rest of the line into recipients: formats.md checklist 12;
// nor msmtp or nullmailer: mta.ts).
// The exit status is read as sendmail itself reads a mailer's: 71/74/75 and signals
// are temporary, anything else permanent.

import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { openPlain, paramValue, xtextDecode, type Transaction } from './message.js';
import type { RecipientResult } from './result.js';
import type { MtaKind } from './mta.js';

export interface SendmailArgs {
  /** '' = null sender */
  sender: string;
  recipients: string[];
  /** RET=FULL|HDRS */
  ret?: string | undefined;
  /** ENVID, decoded */
  envid?: string | undefined;
  /** NOTIFY=… (one value for all these recipients) */
  notify?: string | undefined;
  /**
   * Exim only: `-oep`, errors on stderr and exit 1, instead of Exim's default `-oem`,
   * which also mails its own error to the sender (who would then hear twice: the runner
   * sends the notice)
   */
  errorsToStderr?: boolean;
}

/** Whether this MTA's sendmail takes -N/-R/-V as DSN options. */
export function mtaTakesDsnFlags(mta: MtaKind): boolean {
  return mta === 'postfix' || mta === 'sendmail' || mta === 'opensmtpd';
}

/** The argv after the program name. No shell is ever involved: each element is one argument. */
export function sendmailArgv(a: SendmailArgs, mta: MtaKind): string[] {
  const argv = ['-oi', ...(a.errorsToStderr && mta === 'exim' ? ['-oep'] : []), '-f', a.sender === '' ? '<>' : a.sender];
  if (mtaTakesDsnFlags(mta)) {
    if (a.notify) argv.push('-N', a.notify.toLowerCase());
    if (a.ret) argv.push('-R', a.ret.toLowerCase());
    // an ENVID with spaces or controls would not survive; Postfix also refuses non-printables
    // OpenSMTPD's enqueuer writes it into ENVID= as it is: only where xtext leaves it so
    if (a.envid && /^[\x21-\x7e]{1,100}$/.test(a.envid) && !(mta === 'opensmtpd' && /[+=]/.test(a.envid))) argv.push('-V', a.envid);
  }
  argv.push('--', ...a.recipients);
  return argv;
}

export interface ChildOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** the first bytes of stderr and stdout */
  output: string;
  /** spawn failed (ENOENT, EACCES…) */
  spawnError?: Error;
  /** killed by us: still running at the time limit (ms) */
  timedOutMs?: number;
}

/**
 * How long after a command's exit its stdout and stderr may stay open: a process it left
 * behind (a background delivery that kept our pipes) would otherwise hold the runner until
 * it ends, and the timeout's SIGKILL reaches only the command itself.
 */
export const CHILD_CLOSE_GRACE_MS = 2_000;

/**
 * The child's end: its 'close', or CHILD_CLOSE_GRACE_MS after its 'exit' when something
 * it started still holds its pipes (they are then let go: what comes later is not read).
 */
export function childEnded(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    let grace: NodeJS.Timeout | undefined;
    child.once('exit', (code, signal) => {
      grace = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        resolve({ code, signal });
      }, CHILD_CLOSE_GRACE_MS);
    });
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      if (grace) clearTimeout(grace);
      resolve({ code, signal });
    });
  });
}

/** Run a program with `input` as stdin; bounded wait; output kept to its first 4 KiB. */
export function runChild(program: string, argv: string[], input: Readable | Buffer | undefined, env: NodeJS.ProcessEnv, timeoutMs = 600_000): Promise<ChildOutcome> {
  return new Promise((resolve) => {
    let output = '';
    const keep = (b: Buffer): void => {
      if (output.length < 16384) output += b.toString('utf8').slice(0, 16384 - output.length);
    };
    let child: ChildProcess | undefined;
    if (input && !Buffer.isBuffer(input)) {
      // listened to from the start: the message file's open may fail (EMFILE) before the
      // child is there or when it never is, and a stream error without a listener ends
      // the whole process (every worker of a `mailbag run` with it)
      input.on('error', (err) => {
        // our own read failed: make sure the MTA does not take a truncated message
        child?.kill('SIGKILL');
        output += ` (reading the message failed: ${err.message})`;
      });
    }
    try {
      child = spawn(program, argv, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (err) {
      if (input && !Buffer.isBuffer(input)) input.destroy();
      resolve({ code: null, signal: null, output: '', spawnError: err as Error });
      return;
    }
    const proc = child;
    let settled = false;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      proc.kill('SIGKILL');
    }, timeoutMs);
    proc.on('error', (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (input && !Buffer.isBuffer(input)) input.destroy();
      resolve({ code: null, signal: null, output, spawnError: err });
    });
    void childEnded(proc).then(({ code, signal }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (input && !Buffer.isBuffer(input)) input.destroy();
      resolve(timedOut && signal === 'SIGKILL' ? { code, signal, output, timedOutMs: timeoutMs } : { code, signal, output });
    });
    // no pipes: the spawn failed before the program ran (out of descriptors: EMFILE,
    // ENFILE) and its 'error', listened to above, is this hand-over's outcome (temporary)
    if (!proc.stdin || !proc.stdout || !proc.stderr) return;
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    // the child may exit before reading everything: its exit status tells what happened
    proc.stdin.on('error', () => undefined);
    if (input === undefined) proc.stdin.end();
    else if (Buffer.isBuffer(input)) proc.stdin.end(input);
    else input.pipe(proc.stdin);
  });
}

const STATUS_OF_EXIT: Record<number, string> = { 65: '5.6.0', 67: '5.1.1', 68: '5.1.2', 77: '5.7.0', 78: '5.3.5' };

/** How a sendmail (or any mail command) exit reads, as sendmail reads a mailer's (deliver.c markfailure). */
export function classifyExit(o: ChildOutcome, what: string): { kind: RecipientResult['kind']; status: string; diagnostic: string } {
  const text = o.output.replace(/\s+/g, ' ').trim().slice(0, 400);
  const enhanced = /^([245])\.(\d{1,3})\.(\d{1,3})\b/.exec(text);
  if (o.spawnError) {
    return { kind: 'temporary', status: '4.3.0', diagnostic: `x-unix; cannot run ${what}: ${o.spawnError.message}` };
  }
  if (o.signal) {
    const limit = o.timedOutMs !== undefined ? `: still running after the ${o.timedOutMs / 1000} s time limit` : '';
    return { kind: 'temporary', status: '4.3.0', diagnostic: `x-unix; ${what} killed by ${o.signal}${limit}` };
  }
  if (o.code === 0) return { kind: 'accepted', status: '2.0.0', diagnostic: `x-unix; ${what} exited 0` };
  const diag = `x-unix; ${what} exited ${o.code}${text ? `: ${text}` : ''}`;
  if (o.code === 75 || o.code === 74 || o.code === 71) {
    return { kind: 'temporary', status: enhanced?.[1] === '4' ? enhanced[0] : '4.3.0', diagnostic: diag };
  }
  return { kind: 'permanent', status: enhanced?.[1] === '5' ? enhanced[0] : (STATUS_OF_EXIT[o.code ?? -1] ?? '5.3.0'), diagnostic: diag };
}

/**
 * Why sendmail would not read `address`, one argument of its command line, as that one
 * address, or undefined when it would. sendmail parses each recipient argument as an RFC
 * 822 address list: Postfix's splits `a@y.test,root` (and `a@y.test;root`, `a@y.test
 * root`, a group `g:a@y.test;root`) into two recipients, wrapped in `<…>` too (what
 * sendmail's rmail does with a comma), takes `q@x<r@y>` for r@y and drops a comment;
 * Exim's and sendmail 8's split at commas as well. So a recipient that holds, outside a
 * quoted string, a `[…]` domain literal or a backslash escape, any of `,;:<>()` or
 * ASCII white space, or a quote never closed, is not handed over: mailbag would deliver to
 * addresses other than the one it reports on, and a recipient routed or counted as one
 * (lmtpd's domains, max_recipients) would reach others (docs/security.md).
 * `"a,b"@y.test` and `a\,b@y.test` are one address and go through.
 */
export function argvAddressProblem(address: string): string | undefined {
  address = withoutRoute(address);
  let quoted = false;
  let literal = false;
  for (let i = 0; i < address.length; i++) {
    const c = address[i]!;
    if (c === '\\') {
      if (i === address.length - 1) return 'ends in a backslash';
      i++;
    } else if (quoted) {
      if (c === '"') quoted = false;
    } else if (literal) {
      if (c === ']') literal = false;
    } else if (c === '"') quoted = true;
    else if (c === '[') literal = true;
    else if (/[,;:<>() \t\v\f]/.test(c)) return `holds ${c === ' ' ? 'a space' : c === '\t' ? 'a tab' : /[,;:<>()]/.test(c) ? `"${c}"` : 'white space'} outside quotes, which sendmail reads as another address or several`;
  }
  if (quoted) return 'has a quote that is never closed';
  if (literal) return 'has a "[" that is never closed';
  return undefined;
}

/**
 * `@a.test,@b.test:user@c.test` → `user@c.test`: an obsolete source route is accepted and
 * ignored (RFC 5321 §4.1.1.3, Appendix C), as Postfix's sendmail did with it on its command
 * line. Anything else comes back as it was.
 */
export function withoutRoute(address: string): string {
  const m = /^@[^,:;<>()"\\\s[\]]+(?:,@[^,:;<>()"\\\s[\]]+)*:(.+)$/s.exec(address);
  return m ? m[1]! : address;
}

export interface SendmailOptions {
  program: string;
  mta: MtaKind;
  env: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/**
 * Deliver one transaction with sendmail, skipping recipients in `skip`. Recipients with
 * different NOTIFY values go in separate calls (the command line has one -N); each
 * call's outcome is its recipients' result.
 */
export async function deliverWithSendmail(tx: Transaction, skip: ReadonlySet<string>, o: SendmailOptions): Promise<RecipientResult[]> {
  const results: RecipientResult[] = [];
  const todo = tx.recipients.filter((r) => {
    if (skip.has(r.address)) return false;
    const problem = argvAddressProblem(r.address);
    if (problem === undefined) return true;
    results.push({ address: r.address, kind: 'permanent', status: '5.1.3', diagnostic: `x-mailbag; not handed to sendmail: the recipient ${problem}` });
    return false;
  });
  const dsn = mtaTakesDsnFlags(o.mta);
  const groups = new Map<string, string[]>();
  // the mailbox handed to sendmail (a source route dropped) → the recipients as the job
  // names them (`@a:u@x` and `u@x` in one transaction: one mailbox, handed over once, and
  // its outcome is both recipients')
  const given = new Map<string, string[]>();
  for (const r of todo) {
    const key = dsn ? (paramValue(r.params, 'NOTIFY') ?? '') : '';
    const mailbox = withoutRoute(r.address);
    const named = given.get(mailbox);
    if (named) {
      named.push(r.address);
      continue;
    }
    given.set(mailbox, [r.address]);
    groups.set(key, [...(groups.get(key) ?? []), mailbox]);
  }
  const namedAs = (mailbox: string): string[] => given.get(mailbox) ?? [mailbox];
  const ret = paramValue(tx.mailParams, 'RET');
  const envidRaw = paramValue(tx.mailParams, 'ENVID');
  for (const [notify, recipients] of groups) {
    let todo = recipients;
    // each round answers at least one recipient: Exim names the ones it cannot parse
    for (let round = 0; todo.length > 0 && round < recipients.length; round++) {
      const argv = sendmailArgv({ sender: tx.sender, recipients: todo, ret, envid: envidRaw === undefined ? undefined : xtextDecode(envidRaw), notify: notify || undefined, errorsToStderr: true }, o.mta);
      const out = await runChild(o.program, argv, openPlain(tx.body), o.env, o.timeoutMs);
      const c = eximShortage(sizeRefusal(classifyExit(out, 'sendmail'), out, o.mta), out, o.mta);
      const bad = c.kind === 'permanent' && o.mta === 'exim' ? eximBadRecipients(out.output, todo) : new Map<string, string>();
      if (bad.size === 0) {
        for (const mailbox of todo) for (const address of namedAs(mailbox)) results.push({ address, ...c });
        break;
      }
      // Exim took none of them for these: they are refused, the others have no answer yet
      for (const [mailbox, line] of bad) for (const address of namedAs(mailbox)) results.push({ address, kind: 'permanent', status: '5.1.3', diagnostic: `x-unix; sendmail exited ${out.code}: ${line}` });
      todo = todo.filter((a) => !bad.has(a));
    }
  }
  return results;
}

/**
 * Postfix's sendmail refuses a message over message_size_limit with exit 75 (`sendmail:
 * fatal: SENDER(UID): message file too big`): temporary by its status, but the same
 * message is refused at every attempt, for the whole queue lifetime. It is final, 5.3.4,
 * what Postfix's smtpd answers for it (552 5.3.4).
 */
export function sizeRefusal(c: ReturnType<typeof classifyExit>, out: ChildOutcome, mta: MtaKind): ReturnType<typeof classifyExit> {
  if (mta !== 'postfix' || c.kind !== 'temporary' || out.code !== 75 || !/^\S*sendmail: fatal: .*: message file too big$/m.test(out.output)) return c;
  return { kind: 'permanent', status: '5.3.4', diagnostic: c.diagnostic };
}

/**
 * Exim's sendmail exits 1 for every error of a local submission, states that pass too:
 * its spool short of room (`exim: insufficient disk space`: less free than
 * check_spool_space, 10M in Debian's configuration; `exim: Spool write error (No space
 * left on device) while receiving message from …`), for which Postfix's smtpd answers 452
 * 4.3.1 and Exim's own -bS 451, and a configuration that does not read (`Exim
 * configuration error in line N of FILE`: being edited; Postfix's sendmail answers 75 for
 * its main.cf). Temporary: the job and its notice are tried again.
 */
export function eximShortage(c: ReturnType<typeof classifyExit>, out: ChildOutcome, mta: MtaKind): ReturnType<typeof classifyExit> {
  if (mta !== 'exim' || c.kind !== 'permanent' || out.code !== 1) return c;
  if (/^exim: (insufficient disk space|Spool write error \((No space left on device|Disk quota exceeded)\))/m.test(out.output)) return { kind: 'temporary', status: '4.3.1', diagnostic: c.diagnostic };
  if (/\bExim configuration error in line \d+ of /.test(out.output)) return { kind: 'temporary', status: '4.3.5', diagnostic: c.diagnostic };
  return c;
}

/**
 * The recipients an Exim run with -oep refused as unparsable (`exim: bad recipient address
 * "X": domain missing or malformed`, one line each; Exim then takes the message for none),
 * keyed by the address as given, with its line. Only addresses among `given` count.
 */
export function eximBadRecipients(output: string, given: string[]): Map<string, string> {
  const out = new Map<string, string>();
  // Exim prints the address through string_printing(): a byte outside printable ASCII as
  // an escape (`jörg@@x` is printed `j\303\266rg@@x`), so each is compared in that form
  const printed = new Map(given.map((a) => [eximPrinting(a), a]));
  for (const m of output.matchAll(/^exim: bad recipient address "(.*)": .*$/gm)) {
    const address = printed.get(m[1]!);
    if (address !== undefined) out.set(address, m[0].slice(0, 300));
  }
  return out;
}

/** An address as Exim's string_printing() shows it (tab kept, as Exim 4.96 does). */
export function eximPrinting(address: string): string {
  const named: Record<number, string> = { 8: '\\b', 10: '\\n', 11: '\\v', 12: '\\f', 13: '\\r' };
  let s = '';
  for (const b of Buffer.from(address, 'utf8')) {
    if ((b >= 0x20 && b < 0x7f) || b === 9) s += String.fromCharCode(b);
    else s += named[b] ?? `\\${b.toString(8).padStart(3, '0')}`;
  }
  return s;
}
