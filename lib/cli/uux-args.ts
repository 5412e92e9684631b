// uux's own command line, as MTAs' UUCP transports write it (docs/mailbag-uux.md):
//   Postfix:  uux -r -n -z -a$sender - $nexthop!rmail ($recipient)…
//   sendmail: uux - -r -z -a$g -gC $h!rmail ($u)
//   Exim:     uux - -r -a$sender_address -gC $domain_data!rmail $pipe_addresses
//             uux - -r $host!rsmtp            (use_bsmtp)
// Pure: argv in, the same EnqueueRequest `mailbag enqueue` makes, or a MailbagError.

import { InputError, MailbagError } from '../errors.js';
import { scanOptions } from './argv.js';
import { unbracket, type EnqueueRequest } from './enqueue-args.js';

export interface UuxRequest {
  request: EnqueueRequest;
  /** -j: print the job id on stdout */
  printJobId: boolean;
  /** -g grade, accepted for compatibility (jobs have no grades) */
  grade: string | undefined;
  /** notification uux would ask for: -n wins over -z */
  notify: 'none' | 'failure';
}

export const UUX_USAGE = [
  'Usage: mailbag-uux [--config FILE] [-r] [-n] [-z] [-a SENDER] [-g GRADE] [-j] - PEER!rmail (RECIPIENT)...',
  '       mailbag-uux [--config FILE] [-r] - PEER!rsmtp',
  '',
  'Accepts uux\'s command line as Postfix, sendmail and Exim UUCP transports write it',
  'and queues stdin for PEER like `mailbag enqueue`. See docs/mailbag-uux.md.',
  '',
].join('\n');

function usage(message: string): MailbagError {
  return new MailbagError('usage', message);
}

/** options of uux that take a value (glued or as the next argument) */
const WITH_VALUE = new Set(['a', 'g', 'x', 'I', 's', 'u']);
/** options that change nothing for us and are accepted */
const HARMLESS = new Set(['r', 'c', 'l', 'C', 'W', 'b']);
/** options accepted by uux that mailbag-uux cannot honour */
const REFUSED: Record<string, string> = {
  I: 'a UUCP configuration file (-I) means nothing to mailbag-uux: use --config',
  s: 'status files (-s) are not supported: mailbag reports failures by DSN',
  u: 'a requesting user (-u) is not supported: use -a SENDER',
};

/** Does the argument after a bare `-a` look like uux syntax rather than an address? */
function notAnAddress(next: string | undefined): boolean {
  return next === undefined || next.startsWith('-') || /^[^!()\s]+!(rmail|rsmtp)(\s|$)/.test(next);
}

/** What uux's own options asked for. */
interface UuxOptions {
  sender: string | undefined;
  stdin: boolean;
  printJobId: boolean;
  grade: string | undefined;
  noMail: boolean;
}

/** One of uux's own options at argv[i] into opts: the index of the last argument used, or -1 at the command. */
function uuxOption(opts: UuxOptions, argv: readonly string[], a: string, i: number): number {
  if (a === '-' || a === '-p' || a === '--stdin') {
    opts.stdin = true;
    return i;
  }
  if (a.startsWith('--')) throw usage(`unknown option ${JSON.stringify(a)}`);
  if (!a.startsWith('-')) return -1;
  // a cluster of one-letter options: -rnz, -a<sender>, -gC, -x 9
  for (let j = 1; j < a.length; j++) {
    const o = a[j]!;
    if (WITH_VALUE.has(o)) {
      let value = a.slice(j + 1);
      if (value === '') {
        if (o === 'a' && notAnAddress(argv[i + 1])) {
          // `-a$sender` with an empty sender: the null sender, not the next argument
          value = '';
        } else {
          if (i + 1 >= argv.length) throw usage(`-${o} needs a value`);
          value = argv[++i]!;
        }
      }
      if (o in REFUSED) throw usage(REFUSED[o]!);
      if (o === 'a') opts.sender = value;
      else if (o === 'g') {
        if (!/^[0-9A-Za-z]$/.test(value)) throw usage(`-g needs a grade: one of 0-9, A-Z, a-z, not ${JSON.stringify(value)}`);
        opts.grade = value;
      }
      // -x: a debugging level; nothing to debug in a spool write
      break;
    }
    if (o === 'p') opts.stdin = true;
    else if (o === 'n') opts.noMail = true;
    else if (o === 'z') {
      // mail on failure: Taylor uux's default already
    }
    else if (o === 'j') opts.printJobId = true;
    else if (HARMLESS.has(o)) {
      // -r: we never start a transfer; -c/-l/-C/-W concern file arguments, which
      // mailbag-uux refuses; -b: a failed job is reported by DSN anyway
    } else throw usage(`unknown uux option -${o}`);
  }
  return i;
}

/** Parse uux's command line (argv after the program name). */
export function parseUuxArgs(argv: readonly string[]): UuxRequest | { request: { kind: 'help' } } {
  const o: UuxOptions = { sender: undefined, stdin: false, printJobId: false, grade: undefined, noMail: false };
  const scan = scanOptions(argv, (a, i) => uuxOption(o, argv, a, i), usage);
  const { sender, stdin, printJobId, grade, noMail } = o;
  if (scan.help) return { request: { kind: 'help' } };
  const { configPath } = scan;
  const i = scan.rest;
  // the command: PEER!rmail or PEER!rsmtp, possibly with its arguments in the same word
  const commandWord = argv[i];
  if (commandWord === undefined) throw usage('no command given: expected PEER!rmail or PEER!rsmtp');
  const words = commandWord.trim().split(/\s+/);
  const args = [...words.slice(1), ...argv.slice(i + 1)];
  const m = /^([^!]*)!([^!]+)$/.exec(words[0]!);
  if (!m) {
    if (!words[0]!.includes('!')) throw usage(`command ${JSON.stringify(words[0])} names no peer: write PEER!rmail or PEER!rsmtp`);
    throw usage(`command ${JSON.stringify(words[0])} routes through several hosts; mailbag-uux sends to one peer: PEER!rmail`);
  }
  const [, peer, command] = m as unknown as [string, string, string];
  if (peer === '') throw usage(`command ${JSON.stringify(words[0])} names no peer: write PEER!rmail or PEER!rsmtp`);
  if (!stdin) throw usage('stdin is not spooled: give - (or -p), as MTA transports do');
  // Taylor uux mails on failure unless told not to, so -z changes nothing and -n wins
  const notify = noMail ? 'none' : 'failure';
  if (command === 'rsmtp') {
    if (args.length > 0) throw usage(`${peer}!rsmtp takes no arguments: the envelope is in the BSMTP stream`);
    return { request: { kind: 'bsmtp', peer, configPath }, printJobId, grade, notify };
  }
  if (command !== 'rmail') {
    throw usage(`command ${JSON.stringify(command)} is not supported: mailbag-uux queues ${peer}!rmail and ${peer}!rsmtp`);
  }
  const recipients = args.map(uuxArgument);
  return {
    request: { kind: 'message', peer, sender: sender === undefined ? undefined : unbracket(sender), recipients, stripFromLine: true, configPath },
    printJobId,
    grade,
    notify,
  };
}

/** One rmail argument: `(addr)` loses its parentheses; a bare `host!file` is a file reference. */
function uuxArgument(arg: string): string {
  if (arg.length >= 2 && arg.startsWith('(') && arg.endsWith(')')) return arg.slice(1, -1);
  if (arg.includes('!')) {
    throw new InputError('bad-recipient', `argument ${JSON.stringify(arg)} is a uux file reference (host!file); put an address with "!" in parentheses: (${arg})`);
  }
  if (/^[<>|]/.test(arg)) {
    throw new InputError('bad-recipient', `argument ${JSON.stringify(arg)} is a uux redirection, which mailbag-uux does not support`);
  }
  return arg;
}
