// `mailbag-uux`: uux's own command line, as Postfix, sendmail and Exim UUCP transports
// write it, mapped onto the same front door as `mailbag enqueue`: `PEER!rmail (rcpt)…`
// queues an rmail job (the MTA's From_ line on stdin is replaced by ours), `PEER!rsmtp`
// a checked BSMTP job. Exit statuses as `mailbag enqueue` (docs/exit-codes.md).

import type { CliIo } from './io.js';
import { parseUuxArgs, UUX_USAGE } from './uux-args.js';
import { runFrontDoor } from './front-door.js';

export async function main(argv: string[], io: CliIo): Promise<number> {
  const parsed = parseUuxArgs(argv);
  if (parsed.request.kind === 'help' || !('printJobId' in parsed)) {
    io.stdout.write(UUX_USAGE);
    return 0;
  }
  const { ref } = await runFrontDoor(parsed.request, io);
  if (parsed.printJobId) io.stdout.write(`${ref.id}\n`);
  return 0;
}
