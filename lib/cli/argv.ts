// The option loop that `mailbag enqueue`, `mailbag-uux` and `rmail` share, by hand (it
// runs on the front doors' start-up path, where a parser library costs time). Each
// command keeps its own options, positional rules and error wording; this walks argv,
// ends the options at `--`, stops at `--help`/`-h`, and takes `--config FILE` and
// `--config=FILE`. No imports: the bundles of the front doors pull in nothing new.

/** What scanOptions found before the options ended. */
export interface OptionScan {
  /** `--config FILE` or `--config=FILE`, the last one given */
  configPath: string | undefined;
  /** `--help` or `-h` came before the options ended: the caller prints its usage */
  help: boolean;
  /** index of the first argument after the options (past a `--` that ended them) */
  rest: number;
}

/**
 * Walk argv's options. Every argument that is none of `--`, `--help`, `-h`, `--config`
 * and `--config=…` goes to `other(a, i)`, which returns the index of the last argument it
 * used (i, or more when it takes a value from argv) or -1 to end the options before a.
 * `--config` with nothing after it throws `usage('--config needs a FILE')`.
 */
export function scanOptions(argv: readonly string[], other: (a: string, i: number) => number, usage: (message: string) => Error): OptionScan {
  let configPath: string | undefined;
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return { configPath, help: false, rest: i + 1 };
    if (a === '--help' || a === '-h') return { configPath, help: true, rest: i };
    if (a === '--config') {
      if (i + 1 >= argv.length) throw usage('--config needs a FILE');
      configPath = argv[++i];
    } else if (a.startsWith('--config=')) {
      configPath = a.slice('--config='.length);
    } else {
      const last = other(a, i);
      if (last < 0) break;
      i = last;
    }
  }
  return { configPath, help: false, rest: i };
}
