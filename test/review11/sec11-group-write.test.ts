// sec11: a spool directory its group may write. Spool.open refuses one every user may
// write ("lets anyone rename, replace or add the files in it"), but takes 0770: every
// member of the group can then do exactly that. Seen on this machine (main at 23cf188,
// real users): spool dirs 0770 group sec11g, a member that is not the owner wrote her own
// job (From ceo@…, to victim@…) into out/hub/ and `mailbag status` as the owner counted
// it queued (2 jobs), to be bagged and relayed by the hub as this site's mail; she may as
// well unlink the owner's jobs (mail lost after the MTA was told 0). A socket inside the
// spool (the reason test/unit/spool/disk9-unused gives for allowing a group) needs only
// search (g+x) on the directories above it, never write.
// it.fails until req-sec11.md R2.
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SpoolError } from '../../lib/errors.js';
import { Spool } from '../../lib/spool/index.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-sec11-group-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function refusal(root: string): Promise<unknown> {
  return Spool.open(root).then(
    () => undefined,
    (e: unknown) => e,
  );
}

describe('sec11: a group-writable spool directory', () => {
  it('search and read for the group stay allowed (a socket inside the spool)', async () => {
    const root = join(dir, 'x');
    const spool = await Spool.open(root, { create: true });
    await spool.ensureDir('out', 'hub');
    chmodSync(root, 0o750);
    chmodSync(spool.path('out'), 0o710);
    expect(await refusal(root)).toBeUndefined();
  });

  // req-sec11.md R2 (applied)
  it('is refused as one every user may write is (the root, tmp/, a queue directory)', async () => {
    const root = join(dir, 'g');
    const spool = await Spool.open(root, { create: true });
    await spool.ensureDir('out', 'hub');
    for (const [d, mode] of [
      [root, 0o770],
      [spool.path('tmp'), 0o2770],
      [spool.path('out', 'hub'), 0o730],
    ] as const) {
      chmodSync(d, mode);
      const err = await refusal(root);
      expect(err, d).toBeInstanceOf(SpoolError);
      expect((err as Error).message, d).toMatch(new RegExp(`group .*may write ${d.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(mode 0${mode.toString(8)}\\)`));
      chmodSync(d, 0o700);
    }
  });

  // req-sec11.md R2: what the refusal prevents, by hand. A job file that is not the
  // spool owner's (another member of a writing group made it) is queued like ours today.
  it.runIf(process.getuid?.() === 0)('a job file another user made in a group-writable queue is not sent as ours', async () => {
    const root = join(dir, 'planted');
    const spool = await Spool.open(root, { create: true });
    await spool.ensureDir('out', 'hub');
    chmodSync(spool.path('out', 'hub'), 0o770);
    const id = '01a2071e3405zzzzmallory';
    const file = spool.path('out', 'hub', id);
    writeFileSync(
      file,
      `mailbag-job 1\n${JSON.stringify({ id, from: 'home', to: 'hub', created: '2026-11-23T06:35:49.000Z', command: 'rmail', args: ['victim@d.test'], sender: 'ceo@home.test', recipients: ['victim@d.test'] })}\nFrom ceo@home.test Mon Nov 23 06:35:49 2026\nSubject: forged\n\npay now\n`,
    );
    chownSync(file, 65534, 65534);
    chmodSync(file, 0o644);
    // either the spool is refused (R2) or the job is not taken as queued
    const opened = await Spool.open(root).catch(() => undefined);
    const queued = opened ? (await opened.stats('hub')).hub?.out.jobs ?? 0 : 0;
    expect(queued).toBe(0);
  });
});
