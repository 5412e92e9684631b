// review12 (req-review12.md F3): b57940b keeps a recipient that sendmail would read as
// several addresses off sendmail's command line in the runner (deliverWithSendmail), and
// docs/security.md says "with method = "sendmail" a recipient is handed to sendmail only
// when it reads as that one address". mailbag's own rmail (lib/cli/rmail.ts main, what
// uuxqt runs) under method = "sendmail" still hands its arguments to sendmail as they are
// (runChild(program, sendmailArgv({ recipients: args.recipients }))): one argument
// `victim@maildir.test,other@maildir.test` reaches two mailboxes with the real Postfix
// sendmail. The fix (req-review12.md F3): such a recipient goes the per-recipient way
// (viaSmtp → Deliverer → deliverWithSendmail: refused 5.1.3, its sender told). Applied by the lead (session 12).
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main as rmail } from '../../lib/cli/rmail.js';
import { Spool } from '../../lib/spool/index.js';
import { havePostfix, POSTFIX_SENDMAIL, startPostfix, type PostfixInstance } from '../helpers/postfix.js';

const present = havePostfix();
let pf: PostfixInstance | undefined;
const dir = mkdtempSync(join(tmpdir(), 'mailbag-review12-rmail-'));

describe.runIf(present)('review12: mailbag rmail, method sendmail, a recipient sendmail splits', () => {
  beforeAll(async () => {
    pf = await startPostfix({ mailboxes: ['victim', 'other'] });
  }, 120_000);
  afterAll(async () => {
    await pf?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is not handed to sendmail as one argument', async () => {
    const config = join(dir, 'mailbag.toml');
    writeFileSync(config, `site = "home"\nspool = "${join(dir, 'spool')}"\n[delivery]\nmethod = "sendmail"\nsendmail = "${POSTFIX_SENDMAIL}"\n`);
    await Spool.open(join(dir, 'spool'), { create: true });
    const input = 'From alice@hub.example  Sun Nov 22 04:10:00 2026\nSubject: t\n\nhello\n';
    const code = await rmail(['--config', config, 'victim@maildir.test,other@maildir.test'], {
      stdin: Readable.from([Buffer.from(input)]), stdout: new PassThrough(), stderr: new PassThrough(),
      env: { ...process.env, MAIL_CONFIG: pf!.configDir }, cwd: dir, isTTY: false,
    }).catch((e: unknown) => (e as { exitCode?: number }).exitCode ?? 75);
    await pf!.waitQueueEmpty();
    const count = (box: string): number => {
      const n = join(pf!.maildir(box), 'new');
      return existsSync(n) ? readdirSync(n).length : 0;
    };
    // b57940b: exit 0, victim 1, other 1 (one recipient, two deliveries)
    expect({ code, victim: count('victim'), other: count('other') }).toEqual({ code: 69, victim: 0, other: 0 });
  });
});
