// A session whose last event is the peer's ACK of our last bag, arriving after our own
// ACK of the peer's bag has gone out: both sides must still send BYE and end. The link
// holds each side's ACK frames (and what follows them) until the other side has sent its
// ACK, then lets them through: the order the real sshd test met at random (both sides
// then waited for ever, their keepalives keeping the link alive).
import { Transform, type TransformCallback } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { FRAME } from '../../../lib/session/frame.js';
import { streamLink } from '../../../lib/transport/link.js';
import { enqueue, ids, makeSite, messages, session, tempDir } from '../session/sites.js';

/** one direction of the link: frames pass, except that from an ACK on they wait for `release()` */
class AckHold extends Transform {
  private pending = Buffer.alloc(0);
  private held: Buffer[] = [];
  private holding = false;
  private released = false;
  sawAck = false;
  onAck: (() => void) | undefined;

  release(): void {
    this.released = true;
    for (const f of this.held) this.push(f);
    this.held = [];
    this.holding = false;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.pending = Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 5) {
      const len = this.pending.readUInt32BE(1);
      if (this.pending.length < 5 + len) break;
      const frame = this.pending.subarray(0, 5 + len);
      this.pending = this.pending.subarray(5 + len);
      if (frame[0] === FRAME.ACK && !this.sawAck) {
        this.sawAck = true;
        this.onAck?.();
        if (!this.released) this.holding = true;
      }
      if (this.holding) this.held.push(Buffer.from(frame));
      else this.push(frame);
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    this.release();
    cb();
  }
}

describe('the end of a session', () => {
  it('the peer ACK of our last bag arriving after our own last ACK: both sides send BYE and end', async () => {
    const t = tempDir('ack-last');
    try {
      const home = await makeSite(t.dir, 'home');
      const hub = await makeSite(t.dir, 'hub');
      const up = await enqueue(home, 'hub', messages([900], 81));
      const down = await enqueue(hub, 'home', messages([1300], 82));
      const homeToHub = new AckHold();
      const hubToHome = new AckHold();
      // each side's ACK goes through only once the other side has sent its own, a little later
      homeToHub.onAck = () => setTimeout(() => hubToHome.release(), 200);
      hubToHome.onAck = () => setTimeout(() => homeToHub.release(), 200);
      const homeLink = streamLink(hubToHome, homeToHub, 'home side');
      const hubLink = streamLink(homeToHub, hubToHome, 'hub side');
      let timer: NodeJS.Timeout | undefined;
      const stuck = new Promise<'stuck'>((r) => (timer = setTimeout(() => r('stuck'), 10_000)));
      const both = Promise.all([session(home, 'hub', homeLink), session(hub, 'home', hubLink)]);
      both.catch(() => {});
      const r = await Promise.race([both, stuck]);
      clearTimeout(timer);
      if (r === 'stuck') {
        homeLink.abort();
        hubLink.abort();
        await both.catch(() => undefined);
      }
      expect(r).not.toBe('stuck');
      const [a, b] = r as Awaited<typeof both>;
      expect(a.drained && b.drained).toBe(true);
      expect(homeToHub.sawAck && hubToHome.sawAck).toBe(true);
      expect(ids(hub, 'in', 'home')).toEqual([...up.keys()]);
      expect(ids(home, 'in', 'hub')).toEqual([...down.keys()]);
    } finally {
      t.remove();
    }
  }, 30_000);
});
