// `rsmtp [--config FILE]`: a batched-SMTP stream on stdin (Exim's use_bsmtp shape, with
// or without HELO/QUIT and ESMTP parameters) to the local MTA, transaction by
// transaction: through Postfix `sendmail -bs` driven as an SMTP client, Exim `-bS`
// (parameters stripped, only the transactions after a failure offered again), the
// smtp/lmtp method, or one sendmail per transaction. One result line per transaction
// on stdout; a recipient refused for good gets its sender an RFC 3464 notice.
// Exit 0 when every transaction is settled, 75 when some must be retried, 65 for a batch
// that is malformed or cut short (a retry of the same input cannot do better). Progress
// is kept in the spool's run/rsmtp-stdin/, one record per transaction named by the hash
// of the input up to that transaction's end: a retry of the same input, or of the whole
// input after one cut short (its writer died mid-stream), skips what was settled.

import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { unlink, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { loadConfig } from '../config/index.js';
import { InputError } from '../errors.js';
import { indexBsmtp } from '../deliver/bsmtp-index.js';
import { Deliverer } from '../deliver/index.js';
import { paramValue, xtextDecode, type Transaction } from '../deliver/message.js';
import { DeliveryError, type RecipientResult } from '../deliver/result.js';
import { sendNotice } from '../runner/notify.js';
import { emptyState, pruneStale, readState, statePath, writeState, type RunState } from '../runner/state.js';
import type { CliIo } from './io.js';
import { parseCommonArgs } from './options.js';
import { recordBound, recordedDiagnostic, RecordReserve } from '../runner/reserve.js';
import { openProgressSpool, stageFile } from './stage.js';

export const RSMTP_USAGE = `Usage: rsmtp [--config FILE]

Deliver a batched-SMTP stream from stdin to the local MTA, one result line per
transaction on stdout.
`;

const STATE_PEER = 'rsmtp-stdin';

export async function main(argv: string[], io: CliIo): Promise<number> {
  // -bS, -i, -oi: what callers used to a sendmail-style rsmtp may pass; harmless
  const args = parseCommonArgs(argv, { command: 'rsmtp', usage: 'usage: rsmtp [--config FILE]', ignore: ['-bS', '-i', '-oi'] });
  if (args.help) {
    io.stdout.write(RSMTP_USAGE);
    return 0;
  }
  const config = loadConfig({ path: args.config, env: io.env, cwd: io.cwd });
  // no spool: no memory across retries (see EXIT STATUS in docs/rsmtp.md)
  const spool = await openProgressSpool(config, 'rsmtp', io.stderr);
  // the input's copy: in SPOOL/tmp/, where the spool's cleanup finds it if we are killed
  const staged = await stageFile(spool, 'rsmtp-input');
  let room: RecordReserve | undefined;
  try {
    const file = staged.path;
    const hash = createHash('sha256');
    let size = 0;
    const max = config.limits.maxBagExpanded;
    await pipeline(
      io.stdin,
      new Transform({
        transform(chunk: Buffer, _e, cb) {
          size += chunk.length;
          if (size > max) {
            cb(new InputError('too-big', `rsmtp: input larger than ${max} bytes`));
            return;
          }
          hash.update(chunk);
          cb(null, chunk);
        },
      }),
      createWriteStream(file, { flags: 'wx', mode: 0o600 }),
    );
    // the name of the record an earlier mailbag (before per-transaction records) kept for
    // this whole input: read once, so an upgrade between two tries repeats nothing
    const legacyKey = hash.digest('hex');
    const idx = await indexBsmtp(file, 0);
    const keys = await prefixHashes(file, idx.transactions.map((tx) => tx.body.end!)); // indexBsmtp sets every end
    if (spool) await pruneStale(spool, STATE_PEER, config.ledgerRetentionMs, new Date());
    // a record that does not read is the spool failure readState names (75, docs/spool.md
    // R8): taken as no progress, every transaction it settled would be delivered again
    const legacy = spool ? await readState(spool, STATE_PEER, legacyKey) : undefined;
    // one record per transaction, `tx[INDEX]` of a RunState named by its prefix hash
    const state: RunState = emptyState();
    // the records this run found: an earlier run's, of this input or of another batch with
    // the same first transactions (the same KEY), whose pending retry may rely on them
    const found = new Set<string>();
    for (const tx of idx.transactions) {
      const own = spool ? await readState(spool, STATE_PEER, keys[tx.index]!) : undefined;
      if (own) found.add(keys[tx.index]!);
      const p = own?.tx[String(tx.index)] ?? legacy?.tx[String(tx.index)];
      if (p) state.tx[String(tx.index)] = p;
    }
    // room for the records kept before anything is handed over (RecordReserve): a disk
    // that fills after the MTA took a transaction must not leave it unrecorded, or the
    // caller's retry delivers it again
    const save = async (tx: Transaction): Promise<void> => {
      const p = state.tx[String(tx.index)];
      if (!spool || !p) return;
      const rec = { attempts: 0, tx: { [String(tx.index)]: p } };
      if (room) await room.write(spool, STATE_PEER, keys[tx.index]!, rec, (l) => io.stderr.write(`rsmtp: ${l}\n`));
      else await writeState(spool, STATE_PEER, keys[tx.index]!, rec);
    };
    // a retry renews the records it relies on, so ledger_retention counts from the caller's
    // last try (uuxqt retries a 75 without limit), not from the run that settled them
    // (review9a's E2): exim -bS leaves a settled transaction out of its stream (record()
    // never rewrites it), and an upgrade's whole-input record is never rewritten (its
    // transactions get records of their own here)
    if (spool) {
      const now = new Date();
      for (const tx of idx.transactions) {
        if (!state.tx[String(tx.index)]) continue;
        // not there (the legacy record's transactions) or not ours to touch: written anew
        await utimes(statePath(spool, STATE_PEER, keys[tx.index]!), now, now).catch(() => save(tx));
      }
    }
    // the spool must take a record before the MTA gets anything: one that cannot (full,
    // read-only) would fail only after transaction 1 was handed over, and every retry of
    // this input would deliver it again for as long as that lasts
    if (spool && keys.length > 0) {
      const first = state.tx['0'];
      await writeState(spool, STATE_PEER, keys[0]!, { attempts: 0, tx: first ? { '0': first } : {} });
      // two records a transaction may write after its hand-over: its result, then `noticed`
      // once its failure notice went out (the runner's recordSizes counts the same two)
      room = await RecordReserve.reserve(spool, 'rsmtp-reserve', idx.transactions.flatMap((tx) => {
        const b = recordBound(tx.recipients.map((r) => r.address));
        return [b, b];
      }));
    }
    const site = config.site || hostname();
    const d = new Deliverer({ delivery: config.delivery, env: io.env, site });
    const settled = (tx: Transaction): Set<string> => {
      const p = state.tx[String(tx.index)];
      return new Set(p ? [...p.accepted, ...p.failed.map((f) => f.address)] : []);
    };
    let temporary = false;
    let acceptedNow = 0;
    const record = async (tx: Transaction, results: RecipientResult[]): Promise<void> => {
      const p = (state.tx[String(tx.index)] ??= { accepted: [], failed: [], noticed: false });
      for (const r of results) {
        if (r.kind === 'accepted') {
          p.accepted.push(r.address);
          acceptedNow++;
        } else if (r.kind === 'permanent') {
          // bounded, so that the reserve covers the record (a notice needs no more)
          p.failed.push({ address: r.address, status: r.status, diagnostic: recordedDiagnostic(r.diagnostic, tx.recipients.length) });
          p.noticed = false;
        } else {
          temporary = true;
          state.lastError = `<${r.address}> ${r.diagnostic}`;
        }
      }
      await save(tx);
      // no results: every recipient was settled by an earlier run of this same input
      const outcome = results.length ? results.map((r) => `<${r.address}> ${r.kind} ${r.diagnostic}`).join('; ') : 'settled by an earlier run of this input';
      io.stdout.write(`transaction ${tx.index + 1} (line ${tx.line}) from <${tx.sender}>: ${outcome}\n`);
    };
    try {
      await d.deliverBatch(idx.transactions, (i) => settled(idx.transactions[i]!), record);
      for (const tx of idx.transactions) {
        const p = state.tx[String(tx.index)];
        if (!p || p.noticed || p.failed.length === 0) continue;
        const sent = await sendNotice(d, { site, now: new Date(), log: (l) => io.stderr.write(`${l}\n`) }, {
          sender: tx.sender,
          recipients: p.failed.map((f) => {
            const r = tx.recipients.find((x) => x.address === f.address);
            const orcpt = r ? paramValue(r.params, 'ORCPT') : undefined;
            return { recipient: f.address, status: f.status, diagnostic: f.diagnostic, originalRecipient: orcpt ? xtextDecode(orcpt) : undefined };
          }),
          reason: 'the mail system refused a recipient permanently',
          jobId: `rsmtp-${keys[tx.index]!.slice(0, 16)}`,
          created: new Date().toISOString(),
          tx,
        });
        if (sent) p.noticed = true;
        else temporary = true;
        await save(tx);
      }
    } finally {
      await d.close();
    }
    if (temporary) {
      if (!spool && acceptedNow > 0) io.stderr.write('rsmtp: no spool to remember progress in: a retry may repeat transactions already accepted\n');
      throw new DeliveryError({ kind: 'temporary', status: '4.0.0', diagnostic: `x-mailbag; some transactions must be retried: ${state.lastError ?? 'temporary failure'}` }, 75);
    }
    if (idx.problem) {
      // a batch cut short: the caller may yet run the whole one (its writer died
      // mid-stream and it retries); what was settled here stays recorded for it, until
      // the ledger's retention (runner/state.ts pruneStale)
      if (!spool && acceptedNow > 0) io.stderr.write('rsmtp: no spool to remember progress in: a run of the whole batch will repeat the transactions accepted now\n');
      throw new InputError('bad-bsmtp', `rsmtp: ${idx.problem} (the transactions before it were delivered)`);
    }
    if (spool) {
      // without QUIT, a stream whose writer died exactly between two messages reads as
      // whole: the caller's run of the whole batch would deliver these again. Their records
      // stay, pruned after ledger_retention like a cut run's (review9a's E3). With QUIT, only
      // the records this run made go: one it found may be another batch's (an identical
      // first transaction), whose retry would deliver that transaction again without it;
      // it is renewed above and goes after ledger_retention
      if (idx.quit) for (const k of keys) if (!found.has(k)) await unlink(statePath(spool, STATE_PEER, k)).catch(() => undefined);
      // every transaction it settled has a record of its own by now
      if (legacy) await unlink(statePath(spool, STATE_PEER, legacyKey)).catch(() => undefined);
      await spool.fsyncDir('run', STATE_PEER).catch(() => undefined);
    }
    return 0;
  } finally {
    await room?.release();
    await staged.remove();
  }
}

/**
 * The SHA-256 of the input's first `ends[i]` bytes, for each i (ascending): a
 * transaction's key. Equal for the same transaction at the same place of the same batch,
 * whether the input ran on after it or was cut short; different for the same message
 * elsewhere (a second copy in one batch is a second delivery).
 */
async function prefixHashes(path: string, ends: number[]): Promise<string[]> {
  const out: string[] = [];
  const h = createHash('sha256');
  let pos = 0;
  let i = 0;
  const stream = createReadStream(path);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let at = 0;
      while (i < ends.length && ends[i]! <= pos + chunk.length) {
        h.update(chunk.subarray(at, ends[i]! - pos));
        at = ends[i]! - pos;
        out.push(h.copy().digest('hex'));
        i++;
      }
      if (i === ends.length) break;
      h.update(chunk.subarray(at));
      pos += chunk.length;
    }
  } finally {
    stream.destroy();
  }
  for (; i < ends.length; i++) out.push(h.copy().digest('hex'));
  return out;
}
