// One object that hands transactions to the local MTA by the configured method and
// answers per recipient: sendmail (a process per message), smtp or lmtp (one kept
// connection, pipelined), and for BSMTP jobs under the sendmail method the MTA's own
// batch input (Postfix `sendmail -bs` driven as an SMTP client, Exim `-bS`). The
// runner makes one Deliverer per worker and closes it when the run ends.

import { spawn } from 'node:child_process';
import type { DeliveryConfig } from '../config/types.js';
import { detectMta, type MtaKind } from './mta.js';
import { hasEightBit, type Transaction } from './message.js';
import type { RecipientResult } from './result.js';
import { childEnded, deliverWithSendmail } from './sendmail.js';
import { SmtpLinkError, SmtpSession } from './smtp-client.js';
import { deliverWithEximBatch } from './exim-bs.js';

export type { RecipientResult } from './result.js';
export type { Transaction, Recipient, BodySource } from './message.js';
export type { MtaKind } from './mta.js';

export interface DelivererOptions {
  delivery: DeliveryConfig;
  /** environment for sendmail (MAIL_CONFIG for a private Postfix, PATH) */
  env: NodeJS.ProcessEnv;
  /** our name in EHLO/LHLO */
  site: string;
}

export type Record = (tx: Transaction, results: RecipientResult[]) => Promise<void>;

function allTemporary(tx: Transaction, skip: ReadonlySet<string>, why: string, settled: readonly RecipientResult[] = []): RecipientResult[] {
  return tx.recipients.filter((r) => !skip.has(r.address)).map((r) => settled.find((s) => s.address === r.address) ?? { address: r.address, kind: 'temporary', status: '4.4.1', diagnostic: `x-mailbag; ${why}` });
}

export class Deliverer {
  private session: SmtpSession | undefined;
  private mta: MtaKind | undefined;
  private readonly closers: (() => Promise<void>)[] = [];

  constructor(private readonly o: DelivererOptions) {}

  async mtaKind(): Promise<MtaKind> {
    this.mta ??= await detectMta(this.o.delivery.sendmail, this.o.delivery.mta, this.o.env);
    return this.mta;
  }

  private async smtp(): Promise<SmtpSession> {
    if (this.session) return this.session;
    const d = this.o.delivery;
    const lmtp = d.method === 'lmtp';
    const endpoint = lmtp ? d.lmtp : d.smtp;
    if (!endpoint) throw new SmtpLinkError('delivery.lmtp is not configured');
    this.session = await SmtpSession.connect(endpoint, { lmtp, heloName: this.o.site });
    return this.session;
  }

  /** One message (an rmail job, one BSMTP transaction) to the recipients not in `skip`. */
  async deliver(tx: Transaction, skip: ReadonlySet<string>): Promise<RecipientResult[]> {
    const d = this.o.delivery;
    if (d.method === 'sendmail') {
      return deliverWithSendmail(tx, skip, { program: d.sendmail, mta: await this.mtaKind(), env: this.o.env });
    }
    // an rmail job's 8-bit body is declared as such (RFC 6152; dropped by the client
    // when the server does not offer 8BITMIME)
    if (tx.bodyUndeclared && !tx.mailParams.some((p) => /^BODY=/i.test(p)) && (await hasEightBit(tx.body))) {
      tx = { ...tx, mailParams: [...tx.mailParams, 'BODY=8BITMIME'] };
    }
    // a kept connection may have been closed by the server meanwhile: one fresh try,
    // but only when the failure came before the message was handed over
    for (let attempt = 0; ; attempt++) {
      const reused = this.session !== undefined;
      let s: SmtpSession;
      try {
        s = await this.smtp();
      } catch (e) {
        return allTemporary(tx, skip, (e as Error).message);
      }
      try {
        return await s.send(tx, skip);
      } catch (e) {
        this.session = undefined;
        s.close();
        if (!(e instanceof SmtpLinkError)) throw e;
        if (reused && attempt === 0 && !e.afterData) continue;
        // the recipients answered before the link was lost keep their answer (LMTP)
        return allTemporary(tx, skip, e.message, e.settled);
      }
    }
  }

  /** Every transaction of a BSMTP job; `record` is called (and awaited) after each. */
  async deliverBatch(txs: Transaction[], skip: (i: number) => ReadonlySet<string>, record: Record): Promise<void> {
    const d = this.o.delivery;
    if (d.method === 'sendmail') {
      const mta = await this.mtaKind();
      if (mta === 'exim') {
        return deliverWithEximBatch(txs, skip, record, { program: d.sendmail, env: this.o.env });
      }
      if (mta === 'postfix') return this.deliverPostfixBs(txs, skip, record);
    }
    for (const tx of txs) await record(tx, await this.deliver(tx, skip(tx.index)));
  }

  /** Postfix `sendmail -bs`: its smtpd on our pipes, driven like any SMTP server. */
  private async deliverPostfixBs(txs: Transaction[], skip: (i: number) => ReadonlySet<string>, record: Record): Promise<void> {
    const child = spawn(this.o.delivery.sendmail, ['-bs'], { env: this.o.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    // no stderr when the spawn failed before the program ran (EMFILE): `spawned` says so
    child.stderr?.on('data', (b: Buffer) => {
      if (stderr.length < 2000) stderr += b.toString('utf8');
    });
    const spawned = new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', (e) => resolve(e));
    });
    // its 'close', or soon after its exit when a process it left behind holds its pipes
    const exited = childEnded(child);
    let i = 0;
    try {
      const spawnError = await spawned;
      if (spawnError) throw new SmtpLinkError(`cannot run ${this.o.delivery.sendmail} -bs: ${spawnError.message}`);
      child.stdin.on('error', () => undefined);
      const s = await SmtpSession.start(child.stdout, child.stdin, { lmtp: false, heloName: this.o.site, close: () => child.stdin.end() });
      for (; i < txs.length; i++) {
        const tx = txs[i]!;
        await record(tx, await s.send(tx, skip(tx.index)));
      }
      await s.quit();
    } catch (e) {
      if (!(e instanceof SmtpLinkError)) throw e;
      const why = `${e.message}${stderr ? ` (${stderr.trim().slice(0, 200)})` : ''}`;
      // the transaction the link was lost in keeps the answers that came (a refused RCPT)
      for (const at = i; i < txs.length; i++) await record(txs[i]!, allTemporary(txs[i]!, skip(txs[i]!.index), why, i === at ? e.settled : []));
    } finally {
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    }
  }

  /** Something of the caller's to let go with this deliverer (the runner's record reserve). */
  atClose(fn: () => Promise<void>): void {
    this.closers.push(fn);
  }

  async close(): Promise<void> {
    const s = this.session;
    this.session = undefined;
    if (s) await s.quit().catch(() => undefined);
    for (const fn of this.closers.splice(0)) await fn().catch(() => undefined);
  }
}
