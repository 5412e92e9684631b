// `mailbag enqueue PEER -f SENDER [--] RCPT…` and `mailbag enqueue PEER --bsmtp`: the
// front door an MTA's pipe transport calls once per message. Exits 0 only once the job
// is durable in out/PEER; every refusal is a MailbagError that lib/cli/run.ts turns into
// one `4.x.x`/`5.x.x` stderr line and its sysexits code. Never touches the network.

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
