// The command lines of the two front doors, parsed by hand (commander costs start-up
// time on a path an MTA runs once per message). Pure: argv in, a request or a thrown
// MailbagError out. `mailbag enqueue` here; uux's own syntax in uux-args.ts.

import { MailbagError } from '../errors.js';
import { scanOptions } from './argv.js';

/** What a front door was asked to do; the same for `mailbag enqueue` and `mailbag-uux`. */
export type EnqueueRequest =
  | {
    /** stdin is a message; the envelope comes from the command line */
    kind: 'message';
    peer: string;
    /** envelope sender as given; '' or '<>' is the null sender; undefined = take it from stdin's From_ line (uux without -a) */
    sender: string | undefined;
    recipients: string[];
    /**
     * stdin may start with a From_ envelope (an MTA's pipe flag F, an mbox message): take
     * it off, since an rmail receiver would read it as envelope, never as message text
     */
    stripFromLine: boolean;
    configPath: string | undefined;
  }
  | {
    /** stdin is a BSMTP stream that carries its own envelope */
    kind: 'bsmtp';
    peer: string;
    configPath: string | undefined;
  }
  | { kind: 'help' };

export const ENQUEUE_USAGE = [
  'Usage: mailbag enqueue [--config FILE] PEER -f SENDER [--] RECIPIENT...',
  '       mailbag enqueue [--config FILE] PEER --bsmtp',
  '',
  'Queue the message on stdin for PEER as an rmail job (a null sender -f \'\' or',
  '-f \'<>\' makes a BSMTP job), or queue the BSMTP stream on stdin (--bsmtp).',
  'Exits 0 once the job is durable in the spool. See docs/mailbag-enqueue.md.',
  '',
].join('\n');

function usage(message: string): MailbagError {
  return new MailbagError('usage', `${message} (usage: mailbag enqueue PEER -f SENDER -- RECIPIENT... | mailbag enqueue PEER --bsmtp)`);
}

/** Take `<addr>` as `addr`; `<>` stays the null sender. */
export function unbracket(address: string): string {
  return address.length >= 2 && address.startsWith('<') && address.endsWith('>') ? address.slice(1, -1) : address;
}

/** Parse `mailbag enqueue …` (argv after the command name). */
export function parseEnqueueArgs(argv: readonly string[]): EnqueueRequest {
  let sender: string | undefined;
  let bsmtp = false;
  const positional: string[] = [];
  const scan = scanOptions(argv, (a, i) => {
    if (a === '--bsmtp') {
      bsmtp = true;
    } else if (a === '-f' || a === '--from') {
      if (i + 1 >= argv.length) throw usage(`${a} needs a SENDER ('' or '<>' for the null sender)`);
      sender = argv[++i]!;
    } else if (a.startsWith('--from=')) {
      sender = a.slice('--from='.length);
    } else if (a.startsWith('-f')) {
      sender = a.slice(2);
    } else if (a === '-i' || a === '-oi') {
      // sendmail habit: a lone "." never ends our input anyway
    } else if (a.startsWith('-') && a !== '-') {
      throw usage(`unknown option ${JSON.stringify(a)}; recipients that begin with "-" are refused, put others after --`);
    } else {
      positional.push(a);
    }
    return i;
  }, usage);
  if (scan.help) return { kind: 'help' };
  const { configPath } = scan;
  const rest = argv.slice(scan.rest);
  const peer = positional.shift();
  if (peer === undefined) throw usage('no PEER given');
  const recipients = [...positional, ...rest];
  if (bsmtp) {
    if (sender !== undefined || recipients.length > 0) {
      throw usage('--bsmtp takes the envelope from the BSMTP stream: give neither -f nor recipients');
    }
    return { kind: 'bsmtp', peer, configPath };
  }
  if (sender === undefined) throw usage('no -f SENDER given (use -f \'\' or -f \'<>\' for the null sender)');
  return { kind: 'message', peer, sender: unbracket(sender), recipients, stripFromLine: true, configPath };
}
