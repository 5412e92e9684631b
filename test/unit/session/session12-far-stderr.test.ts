// session12: what the far `mailbag serve` writes to its stderr after the bags (its run step:
// the hub's runner lines) reached no user of `mailbag sync`: the link kept it as a tail for
// error messages only, and since the dialer lets a far command still at work go about a
// second after both BYEs, the far side's exit is not seen either. The session's result now
// reads that tail when asked (farStderr), so sync prints, when it is done with its own
// work and without waiting for anything, each line that has reached it as `PEER said: …`,
// and one line saying that the far side is still at work when it is, with where to look.

import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { farLines } from '../../../lib/cli/sync.js';
import { SessionError } from '../../../lib/errors.js';
import { BaseLink } from '../../../lib/transport/link.js';
import { createPair } from '../../../lib/transport/pair.js';
import { enqueue, ids, makeSite, messages, session, tempDir, type Site } from './sites.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

async function sites(label: string): Promise<{ hub: Site; home: Site }> {
  const t = tempDir(label);
  cleanups.push(t.remove);
  return { hub: await makeSite(t.dir, 'hub'), home: await makeSite(t.dir, 'home') };
}

/**
 * a dialer's link whose far side goes on after both BYEs, as a far serve at its run step
 * does over ssh: the dialer's close() lets it go (detach) after FAR_EXIT_WAIT_MS; the far
 * end (serve on stdio) is done once its output has finished
 */
function detachingPair(): { dialer: BaseLink; far: BaseLink } {
  const toFar = new PassThrough();
  const toDialer = new PassThrough();
  const teardown = (error: Error | undefined): void => {
    for (const l of [dialer, far]) l.settle({ ok: false, error: new SessionError('link', `aborted${error ? `: ${error.message}` : ''}`) });
    toFar.destroy();
    toDialer.destroy();
  };
  const dialer: BaseLink = new BaseLink({ input: toDialer, output: toFar, describe: 'dialer', teardown, detach: () => {} });
  const far: BaseLink = new BaseLink({ input: toFar, output: toDialer, describe: 'far', teardown, closeWithoutEof: true });
  return { dialer, far };
}

describe('the far side\'s stderr after a session (session12)', () => {
  it('a far side that exited: every line it wrote is in the result, and sync prints each as PEER said', async () => {
    const { hub, home } = await sites('s12-far-exit');
    const up = [...(await enqueue(home, 'hub', messages([1500, 2500], 21))).keys()].sort();
    const [a, b] = createPair();
    // what reaches the dialer's link from the far side's stderr (the transports pipe it in)
    (a as BaseLink).stderrTail.write('hub/queue: 2 jobs\n');
    const [mine] = await Promise.all([session(home, 'hub', a), session(hub, 'home', b)]);
    expect(ids(hub, 'in', 'home')).toEqual(up);
    expect(mine.farStderr?.()).toEqual({ text: 'hub/queue: 2 jobs', exited: true });
    expect(farLines('hub', mine)).toEqual(['hub said: hub/queue: 2 jobs']);
  });

  it('a far side let go at work: said so, with where to look; lines that still reach this side after the session are read when asked', async () => {
    const { hub, home } = await sites('s12-far-detach');
    const up = [...(await enqueue(home, 'hub', messages([1800], 22))).keys()];
    const { dialer, far } = detachingPair();
    dialer.stderrTail.write('mailbag serve: home: sent 0 jobs, received 1\n');
    const [mine] = await Promise.all([session(home, 'hub', dialer), session(hub, 'home', far)]);
    expect(ids(hub, 'in', 'home')).toEqual(up);
    const atWork = 'hub: its mailbag serve went on after the session (its run step); what it says from then on is not shown here: mailbag status and mailbag failed on hub show how its jobs went';
    expect(mine.farStderr?.()).toEqual({ text: 'mailbag serve: home: sent 0 jobs, received 1', exited: false });
    expect(farLines('hub', mine)).toEqual(['hub said: mailbag serve: home: sent 0 jobs, received 1', atWork]);
    // a line that comes in after the session (through a command transport, until the far exit)
    dialer.stderrTail.write(`home/${up[0]}: done\n`);
    expect(farLines('hub', mine)).toEqual(['hub said: mailbag serve: home: sent 0 jobs, received 1', `hub said: home/${up[0]}: done`, atWork]);
  });

  it('the far side\'s text is printed with its controls as ? (it is the peer\'s)', async () => {
    const { hub, home } = await sites('s12-far-controls');
    const [a, b] = createPair();
    (a as BaseLink).stderrTail.write('evil \x1b]0;pwned\x07 \x9b2J line\n');
    const [mine] = await Promise.all([session(home, 'hub', a), session(hub, 'home', b)]);
    const lines = farLines('hub', mine);
    expect(lines).toEqual(['hub said: evil ?]0;pwned? ?2J line']);
  });
});
