// `npm run bench -- deliver [--messages N] [--concurrency C] [--rounds R]`: the runner
// handing N corpus messages (rmail jobs) to a real, private Postfix, by the sendmail
// method (one `sendmail -oi -f S -- R` process per message) against the smtp method
// (pipelined SMTP over kept connections to Postfix's smtpd), side by side in one run.
// Two figures per method: the hand-over (runJobs from start until every job is done:
// Postfix has taken it) and end to end (until all N are in the Maildir). Every round
// checks that exactly N messages arrived, so it measured real work.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { loadConfig } from '../lib/config/index.js';
import { newJobId } from '../lib/job/index.js';
import { runJobs } from '../lib/runner/runner.js';
import { Spool } from '../lib/spool/index.js';
import { corpusFiles, haveCorpus } from '../test/helpers/corpus.js';
import { readMaildir } from '../test/helpers/maildir.js';
import { waitFor } from '../test/helpers/mta-common.js';
import { havePostfix, startPostfix } from '../test/helpers/postfix.js';

interface Options {
  messages: number;
  concurrency: number;
  rounds: number;
}

function parse(argv: string[]): Options {
  const o: Options = { messages: 1000, concurrency: 4, rounds: 1 };
  for (let i = 0; i < argv.length; i++) {
    const v = Number(argv[i + 1]);
    if (argv[i] === '--messages') o.messages = v;
    else if (argv[i] === '--concurrency') o.concurrency = v;
    else if (argv[i] === '--rounds') o.rounds = v;
    else throw new Error(`unknown option ${argv[i]}`);
    i++;
  }
  return o;
}

function sample(n: number): Buffer[] {
  const files = corpusFiles('bulk');
  const step = Math.max(1, Math.floor(files.length / n));
  const out: Buffer[] = [];
  for (let i = 0; out.length < n; i = (i + step) % files.length) out.push(readFileSync(files[i]!));
  return out;
}

export async function main(argv: string[]): Promise<number> {
  const o = parse(argv);
  if (!havePostfix() || !haveCorpus()) return 69;
  const msgs = sample(o.messages);
  const bytes = msgs.reduce((a, m) => a + m.length, 0);
  const pf = await startPostfix({ smtp: true, mailboxes: ['user'], mainCf: ['message_size_limit = 0', 'virtual_mailbox_limit = 0'] });
  const dir = mkdtempSync(join(tmpdir(), 'mailbag-bench-deliver-'));
  const rows: Array<{ method: string; round: number; handoverMs: number; endToEndMs: number }> = [];
  try {
    let delivered = 0;
    for (let round = 1; round <= o.rounds; round++) {
      for (const method of ['sendmail', 'smtp'] as const) {
        const site = join(dir, `${method}-${round}`);
        const file = join(dir, `${method}-${round}.toml`);
        writeFileSync(file, ['site = "bench"', `spool = "${site}"`, '[delivery]', `method = "${method}"`, 'sendmail = "/usr/sbin/sendmail"', 'mta = "postfix"', `smtp = "127.0.0.1:${pf.smtpPort}"`, `concurrency = ${o.concurrency}`, '[peers.hub]', 'transport = "command"', 'command = ["true"]'].join('\n'));
        const config = loadConfig({ path: file, env: {} });
        const spool = await Spool.open(site, { create: true });
        for (let i = 0; i < msgs.length; i++) {
          const h = { id: newJobId(), from: 'hub', to: 'bench', created: new Date().toISOString(), command: 'rmail', args: ['user@maildir.test'], sender: `b${i}@bench.test`, recipients: ['user@maildir.test'] };
          await spool.writeJob('in', 'hub', h, Buffer.concat([Buffer.from(`From b${i}@bench.test  Sun Nov 22 04:10:00 2026\n`), msgs[i]!]));
        }
        const t0 = process.hrtime.bigint();
        const s = await runJobs({ config, spool, env: { ...process.env, MAIL_CONFIG: pf.configDir } });
        const t1 = process.hrtime.bigint();
        if (s.done !== msgs.length) throw new Error(`${method}: ${JSON.stringify(s)}`);
        delivered += msgs.length;
        await waitFor(() => readMaildir(pf.maildir('user')).length >= delivered, 600_000, `${delivered} messages in the Maildir`, 50);
        const t2 = process.hrtime.bigint();
        rows.push({ method, round, handoverMs: Number(t1 - t0) / 1e6, endToEndMs: Number(t2 - t0) / 1e6 });
        process.stderr.write(`round ${round} ${method}: hand-over ${(Number(t1 - t0) / 1e6).toFixed(0)} ms, end to end ${(Number(t2 - t0) / 1e6).toFixed(0)} ms\n`);
        rmSync(site, { recursive: true, force: true });
      }
    }
    if (readMaildir(pf.maildir('user')).length !== delivered) throw new Error('the Maildir holds more messages than were sent');
  } finally {
    await pf.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const mean = (m: string, k: 'handoverMs' | 'endToEndMs') => rows.filter((r) => r.method === m).reduce((a, r) => a + r[k], 0) / o.rounds;
  const line = (m: string) => {
    const h = mean(m, 'handoverMs');
    const e = mean(m, 'endToEndMs');
    return `| ${m} | ${h.toFixed(0)} ms | ${(h / o.messages).toFixed(2)} ms | ${((o.messages * 1000) / h).toFixed(0)} | ${e.toFixed(0)} ms | ${((o.messages * 1000) / e).toFixed(0)} |`;
  };
  process.stdout.write([
    `${o.messages} corpus messages (${(bytes / 1048576).toFixed(1)} MiB), concurrency ${o.concurrency}, ${o.rounds} round(s), ${cpus().length} CPUs, ${cpus()[0]?.model ?? '?'}`,
    '',
    '| method | hand-over | per message | msg/s | end to end (in Maildir) | msg/s |',
    '|---|---|---|---|---|---|',
    line('sendmail'),
    line('smtp'),
    '',
    `smtp vs sendmail: hand-over ${(mean('sendmail', 'handoverMs') / mean('smtp', 'handoverMs')).toFixed(1)} x, end to end ${(mean('sendmail', 'endToEndMs') / mean('smtp', 'endToEndMs')).toFixed(1)} x`,
    '',
  ].join('\n'));
  return 0;
}
