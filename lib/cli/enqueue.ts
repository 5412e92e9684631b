// `mailbag enqueue PEER -f SENDER [--] RCPT…` and `mailbag enqueue PEER --bsmtp`: the
// front door an MTA's pipe transport calls once per message. Exits 0 only once the job
// is durable in out/PEER; every refusal is a MailbagError that lib/cli/run.ts turns into
// one `4.x.x`/`5.x.x` stderr line and its sysexits code. Never touches the network.

import { MailbagError } from '../errors.js';
import type { CliIo } from './io.js';
import { ENQUEUE_USAGE, parseEnqueueArgs } from './enqueue-args.js';
import { runFrontDoor } from './front-door.js';

export async function main(argv: string[], io: CliIo): Promise<number> {
  const request = parseEnqueueArgs(argv);
  if (request.kind === 'help') {
    io.stdout.write(ENQUEUE_USAGE);
    return 0;
  }
  await runFrontDoor(request, io);
  return 0;
}

/**
 * The arguments main() gets from `mailbag [--config FILE]… enqueue ARGS…` (the argv of
 * `mailbag` itself): leading --config options go after the command word, as
 * lib/cli/main.ts passes them on. The package's mailbag.cjs runs `enqueue` this way,
 * straight into this module, without main.ts's table of commands.
 */
export function enqueueArgv(mailbagArgv: readonly string[]): string[] {
  const global: string[] = [];
  let i = 0;
  for (; mailbagArgv[i] === '--config' || mailbagArgv[i]?.startsWith('--config='); i++) {
    global.push(mailbagArgv[i]!);
    if (mailbagArgv[i] === '--config') {
      i++;
      if (i >= mailbagArgv.length) throw new MailbagError('usage', '--config needs a FILE');
      global.push(mailbagArgv[i]!);
    }
  }
  if (mailbagArgv[i] !== 'enqueue') throw new MailbagError('internal', `not an enqueue command line: ${JSON.stringify(mailbagArgv.slice(0, i + 1))}`);
  return [...global, ...mailbagArgv.slice(i + 1)];
}

/** main() for the argv of `mailbag` itself (see enqueueArgv). */
export async function mainFromMailbag(mailbagArgv: string[], io: CliIo): Promise<number> {
  return main(enqueueArgv(mailbagArgv), io);
}
