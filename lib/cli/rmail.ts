// `rmail [-D DOMAIN] [--config FILE] [--] RCPT…`: a UUCP rmail for uuxqt, NNCP, our
// runner's admin actions or a shell. Reads the From_ envelope lines (bang paths as
// sendmail's rmail reads them), then hands the rest of stdin to
// `sendmail -oi -f SENDER -- RCPT…` (never -oee), or over SMTP/LMTP when
// delivery.method says so. Exits 0 when the MTA took the
// message, 75 for anything temporary or unexpected, 64/65 for bad arguments or a bad
// envelope, and the MTA's permanent sysexits code (65, 67, 68, 69, 77 or 78; else 69).

import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { hostname } from 'node:os';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { loadConfig, type Config } from '../config/index.js';
import { Deliverer } from '../deliver/index.js';
import type { Transaction } from '../deliver/message.js';
import { sendNotice } from '../runner/notify.js';
import { pruneStale, readState, removeState, writeState } from '../runner/state.js';
import { InputError, MailbagError } from '../errors.js';
import { UucpEnvelopeReader, type UucpEnvelope } from '../envelope/index.js';
import { detectMta } from '../deliver/mta.js';
import { DeliveryError, permanentExit } from '../deliver/result.js';
import { checkRmailRecipients } from '../deliver/rmail.js';
import { argvAddressProblem, classifyExit, runChild, sendmailArgv } from '../deliver/sendmail.js';
import { scanOptions } from './argv.js';
import type { CliIo } from './io.js';
import { recordBound, RecordReserve } from '../runner/reserve.js';
import { openProgressSpool, stageFile } from './stage.js';

/** run/rmail-stdin/KEY: the recipients accepted of a job the caller will retry (viaSmtp) */
const STATE_DIR = 'rmail-stdin';

export const RMAIL_USAGE = `Usage: rmail [-D DOMAIN] [--config FILE] [--] RECIPIENT...

Deliver a UUCP mail (From_ envelope line, then the message) from stdin to the local
MTA with sendmail -oi -f SENDER -- RECIPIENT...
`;

export interface RmailArgs {
  configPath: string | undefined;
  recipients: string[];
  help: boolean;
}

/** Options as sendmail's rmail takes them (-D domain, -T); everything after them or `--` is a recipient. */
export function parseRmailArgs(argv: string[]): RmailArgs {
  const scan = scanOptions(argv, (a, i) => {
    if (a === '-D') {
      if (argv[++i] === undefined) throw new InputError('bad-recipient', 'rmail: -D needs a domain');
    } else if (a.startsWith('-D') || a === '-T') {
      // -Ddomain only changes sendmail's -p protocol word, which we do not pass; -T is rmail's debug flag
    } else if (a.startsWith('-')) {
      throw new InputError('bad-recipient', `rmail: unknown option or recipient beginning with "-": ${JSON.stringify(a.slice(0, 80))}`);
    } else return -1;
    return i;
  }, (message) => new MailbagError('usage', message));
  return { configPath: scan.configPath, recipients: scan.help ? [] : argv.slice(scan.rest), help: scan.help };
}

/** Read the envelope from a stream; returns it and a stream of the message that follows. */
export async function splitEnvelope(input: Readable): Promise<{ envelope: UucpEnvelope; message: Readable }> {
  const reader = new UucpEnvelopeReader();
  const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  for (;;) {
    const next = await it.next();
    const out = next.done ? reader.end() : reader.push(next.value);
    if (!out) continue;
    if (!out.ok) throw new InputError('bad-envelope', `rmail: ${out.issue.message}`);
    const rest = Buffer.from(out.value.rest);
    const ended = next.done === true;
    async function* gen(): AsyncGenerator<Buffer> {
      if (rest.length > 0) yield rest;
      if (ended) return;
      for (;;) {
        const n = await it.next();
        if (n.done) return;
        yield n.value;
      }
    }
    return { envelope: out.value.envelope, message: Readable.from(gen()) };
  }
}

/**
 * delivery.method smtp or lmtp: the message goes to a private temp file first (the
 * client re-reads it), then over one connection. Every recipient accepted: 0. Some
 * refused for good: they get a notice and the rest counts (0), all refused: the MTA's
 * permanent status (69). Anything temporary: 75.
 */
async function viaSmtp(config: Config, sender: string, recipients: string[], message: Readable, io: CliIo): Promise<number> {
  const spool = await openProgressSpool(config, 'rmail', io.stderr);
  // the message's copy: in SPOOL/tmp/, where the spool's cleanup finds it if we are killed
  const staged = await stageFile(spool, 'rmail-message');
  const d = new Deliverer({ delivery: config.delivery, env: io.env, site: config.site || hostname() });
  let room: RecordReserve | undefined;
  try {
    const file = staged.path;
    // the caller retries a 75 with the same job (uuxqt: the same command line and D.
    // file): the recipients the MTA accepted are kept under the hash of both, in the
    // spool's run/rmail-stdin/, so the retry does not send them the message again
    const hash = createHash('sha256').update(`${sender}\0${recipients.join('\0')}\0`);
    await pipeline(message, new Transform({
      transform(chunk: Buffer, _e, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
    }), createWriteStream(file, { flags: 'wx', mode: 0o600 }));
    const key = hash.digest('hex');
    if (spool) await pruneStale(spool, STATE_DIR, config.ledgerRetentionMs, new Date());
    // one that does not read: readState's spool failure (75), not the recipients it kept sent again
    const kept = spool ? await readState(spool, STATE_DIR, key) : undefined;
    // a record found is not removed when this run settles: an identical job (the same
    // sender, recipients and bytes: the same KEY) may have exited 75 with it and rely on it
    // at its retry, which would send the recipients it accepted the message again without
    // it (as rsmtp's records found, docs/rsmtp.md); it goes after ledger_retention
    // (one that holds no recipient accepted spares nobody anything: it goes)
    const relied = (kept?.tx['0']?.accepted.length ?? 0) > 0;
    const settle = async (): Promise<void> => {
      if (spool && !relied) await removeState(spool, STATE_DIR, key);
    };
    const accepted = new Set(kept?.tx['0']?.accepted ?? []);
    // the record is taken before the MTA gets anything: one that could not be written after
    // a partial acceptance (a full or read-only spool) would make each retry send the
    // message again to the recipients accepted, for as long as that lasts
    if (spool) await writeState(spool, STATE_DIR, key, { attempts: 0, tx: { '0': { accepted: [...accepted], failed: [], noticed: false } } });
    // and room for the record after it: a disk that fills while the MTA has the message must
    // not leave the recipients it accepted unrecorded (the retry would send to them again)
    if (spool) room = await RecordReserve.reserve(spool, 'rmail-reserve', [recordBound(recipients, false)]);
    const keep = async (now: string[]): Promise<void> => {
      await room!.write(spool!, STATE_DIR, key, { attempts: 0, tx: { '0': { accepted: [...accepted, ...now], failed: [], noticed: false } } }, (l) => io.stderr.write(`rmail: ${l}\n`));
    };
    const tx: Transaction = { index: 0, sender, mailParams: [], recipients: recipients.map((address) => ({ address, params: [] })), body: { path: file, start: 0, end: undefined, stuffed: false }, line: 0, bodyUndeclared: true };
    const results = await d.deliver(tx, accepted);
    const temporary = results.find((r) => r.kind === 'temporary');
    if (temporary) {
      const now = results.filter((r) => r.kind === 'accepted').map((r) => r.address);
      if (now.length > 0) {
        if (spool) await keep(now);
        else io.stderr.write('rmail: no spool to remember progress in: a retry will send the message again to the recipients accepted now\n');
      }
      throw new DeliveryError(temporary, 75);
    }
    const refused = results.filter((r) => r.kind === 'permanent');
    if (refused.length === recipients.length) {
      await settle();
      throw new DeliveryError(refused[0]!, 69);
    }
    if (refused.length > 0) {
      const sent = await sendNotice(d, { site: config.site || hostname(), now: new Date(), log: (l) => io.stderr.write(`${l}\n`) }, {
        sender, recipients: refused.map((r) => ({ recipient: r.address, status: r.status, diagnostic: r.diagnostic })),
        reason: 'the mail system refused a recipient permanently', jobId: 'rmail', created: new Date().toISOString(), tx,
      });
      if (!sent) {
        // the caller retries the job for the notice: the accepted stay recorded so that
        // they get nothing again (the refused are offered again, refused again, noticed)
        const now = results.filter((r) => r.kind === 'accepted').map((r) => r.address);
        if (spool) await keep(now);
        else io.stderr.write('rmail: no spool to remember progress in: a retry will send the message again to the recipients accepted now\n');
        throw new DeliveryError({ kind: 'temporary', status: '4.3.0', diagnostic: 'x-mailbag; the failure notice could not be sent yet' }, 75);
      }
    }
    await settle();
    return 0;
  } finally {
    await d.close();
    await room?.release();
    await staged.remove();
  }
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  const args = parseRmailArgs(argv);
  if (args.help) {
    io.stdout.write(RMAIL_USAGE);
    return 0;
  }
  checkRmailRecipients(args.recipients);
  const config = loadConfig({ path: args.configPath, env: io.env, cwd: io.cwd });
  const { envelope, message } = await splitEnvelope(io.stdin);
  // a recipient sendmail would read as other addresses or several (`a@y,root`) goes the
  // per-recipient way, where it fails alone and its sender is told (docs/security.md)
  if (config.delivery.method !== 'sendmail' || args.recipients.some((r) => argvAddressProblem(r) !== undefined)) {
    return viaSmtp(config, envelope.sender, args.recipients, message, io);
  }
  const program = config.delivery.sendmail;
  const mta = await detectMta(program, config.delivery.mta, io.env);
  const out = await runChild(program, sendmailArgv({ sender: envelope.sender, recipients: args.recipients }, mta), message, io.env);
  const c = classifyExit(out, program);
  if (c.kind === 'accepted') return 0;
  if (c.kind === 'temporary') throw new DeliveryError(c, 75);
  throw new DeliveryError(c, permanentExit(out.code));
}
