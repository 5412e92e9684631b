// The command line most commands share: `--config FILE` (or `--config=FILE`), `--help`,
// a few on/off flags and at most a few words (a peer, a job). One parser, so every
// command words its usage errors the same way. The front doors (enqueue, mailbag-uux)
// have their own, on their hot path.

import { MailbagError } from '../errors.js';

export interface CommonArgs {
  /** --config FILE */
  config: string | undefined;
  /** --help or -h was given: print the usage, do nothing else */
  help: boolean;
  /** the flags given, by their canonical name */
  flags: Set<string>;
  /** the words that are not options, in order */
  words: string[];
}

export interface CommonArgsSpec {
  /** the command's name, for the messages (`mailbag sync`, `rsmtp`) */
  command: string;
  /** the one-line usage the messages end with */
  usage: string;
  /** flag → its canonical name (`{ '--quiet': 'quiet', '-q': 'quiet' }`) */
  flags?: Record<string, string>;
  /** options accepted and ignored (what callers of a sendmail-style tool pass) */
  ignore?: readonly string[];
  /** how many words at most (default 0) */
  words?: number;
}

/** Parse `argv`; a usage error (exit 64 family, see lib/exit.ts) for anything else. */
export function parseCommonArgs(argv: readonly string[], spec: CommonArgsSpec): CommonArgs {
  const out: CommonArgs = { config: undefined, help: false, flags: new Set(), words: [] };
  const maxWords = spec.words ?? 0;
  const usage = (what: string): MailbagError => new MailbagError('usage', `${spec.command}: ${what} (${spec.usage})`);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--config') {
      const file = argv[++i];
      if (file === undefined || file === '') throw usage('--config needs a FILE');
      out.config = file;
    } else if (a.startsWith('--config=')) {
      if (a.length === 9) throw usage('--config needs a FILE');
      out.config = a.slice(9);
    } else if (a === '--help' || a === '-h') out.help = true;
    else if (spec.flags && Object.hasOwn(spec.flags, a)) out.flags.add(spec.flags[a]!);
    else if (spec.ignore?.includes(a)) continue;
    else if (a.startsWith('-') && a !== '-') throw usage(`unknown option ${JSON.stringify(a)}`);
    else if (out.words.length < maxWords) out.words.push(a);
    else throw usage(`unexpected argument ${JSON.stringify(a)}`);
  }
  return out;
}
