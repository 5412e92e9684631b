// The session driver: runs the protocol of docs/protocol.md on a Link with a
// SessionStore. Both roles run this same code — the dialer and the server differ only
// in where `peer` (the identity the other side must have) comes from. Sending and
// receiving run at once (full duplex); offers and data are pipelined, so a session
// costs a fixed number of round trips. Jobs leave our queue only on ACK or `have`.

import { SessionError, SpoolError, asMailbagError } from '../errors.js';
import type { ErrorCode } from '../exit.js';
import { formatSize } from '../config/units.js';
import { faultPoint } from '../spool/fault.js';
import { YoungGcPacer } from '../memory.js';
import { chunksOf } from '../transport/link.js';
import type { Link } from '../transport/types.js';
import { DATA_CHUNK, DATA_HEAD, FRAME, FrameDecoder, encodeFrame, encodeProgress, frameName, writeDataHead } from './frame.js';
import {
  chooseCodec, encodeAck, encodeAnswer, encodeError, encodeHello, encodeOffer, encodeRefuse,
  type BagCodec, type Hello, type Offer, type Refuse,
} from './messages.js';
import { MAX_OPEN_OFFERS, OFFER_WINDOW, SessionState, type Incoming } from './state.js';
import { usableCodecs } from '../bag/codec.js';
import { BagRefusal, LARGE_JOB, PERMANENT_REFUSALS, bagFits, planBags, type PartialWriter, type PendingBag, type QueuedJob, type ReceiveCaps, type SessionStore, type StagedBag, type Stager } from './store.js';

/**
 * incoming bags staged at once by the receiver, each while its bytes arrive. One: the
 * decompressor runs on this thread, so a second would only hold a second decompressor's
 * memory; what overlaps is the staging of one bag with its own arrival and with the
 * durability steps and commit of the bag before it. The next bag's stager starts when
 * this one is done and catches up from its partial file.
 */
const STAGERS = 1;
/**
 * DATA bytes a sender keeps in flight beyond the receiver's last PROGRESS, when both
 * sides offered flow control: what a cut link can make us send again (under 1 % of a
 * 100 MB transfer); on a link of R bytes/s and T s round trip it caps the rate at
 * FLOW_WINDOW / T (384 KiB at 100 ms: 3.9 MB/s).
 */
export const FLOW_WINDOW = 384 * 1024;
/**
 * bags a sender compresses at once (each on the bag worker thread; see lib/bag/workers.ts
 * for a pool of more than one)
 */
const BAGS_IN_FLIGHT = 1;
/**
 * the longest keepalive a peer's HELLO is believed, unless ours is longer
 * (SessionOptions.maxPeerKeepaliveMs): its idle limit is four of them, 40 min. The
 * configuration takes up to 24 days for our own, but a peer saying 24 days in its HELLO
 * must not hold the session (and its lock) through 96 days of silence
 */
export const MAX_PEER_KEEPALIVE_MS = 600_000;
/** our frames the peer has not read, past which we stop reading its own until it reads (bytes; DATA is flow-controlled far below) */
export const MAX_UNREAD_OUTPUT = 8 * 1024 * 1024;
/**
 * how long a side that ended its session (both BYEs) waits for the far command's exit
 * before the link lets it finish on its own: a far `serve` with nothing left to do exits
 * in well under this, so its exit status is still seen; one at work is not waited for
 */
export const FAR_EXIT_WAIT_MS = 1000;
/** a session with nothing but PING from the peer for this long, and nothing of ours under way, is stuck (SessionOptions.stallTimeoutMs) */
export const STALL_TIMEOUT_MS = 3_600_000;

export interface SessionOptions {
  link: Link;
  store: SessionStore;
  /** this site's name */
  site: string;
  /** the name the other side must have (dialer: the peer dialled; server: --peer) */
  peer: string;
  /** codecs we build bags with, best first (the peer's `codec` setting first) */
  codecs: BagCodec[];
  /** what we accept from the peer */
  caps: ReceiveCaps;
  /** send PING after this long without sending (default 15 s) */
  keepaliveMs?: number;
  /** give up after this long without receiving anything (default max(4 × keepalive, 30 s); at least 4 × the peer's own keepalive, from its HELLO) */
  idleTimeoutMs?: number;
  /**
   * give up after this long with nothing but PING from the peer while this side has no step
   * of its own under way (default max(1 h, the idle timeout)): a peer that only keeps the
   * link alive (a hung sender whose timer still runs, a hostile one) ends the session
   */
  stallTimeoutMs?: number;
  /**
   * the longest keepalive of the peer's HELLO believed for the idle limit (default 10 min,
   * MAX_PEER_KEEPALIVE_MS; never below our own keepalive): a peer that asks for more is
   * still taken for dead after four of these intervals of silence
   */
  maxPeerKeepaliveMs?: number;
  software?: string;
  /** read our queue and build the first bags while the handshake runs (the dialer: it knows whom it dialled) */
  scanEarly?: boolean;
  /** the same, started before the link was up (syncPeer); implies scanEarly */
  early?: EarlySend;
  /**
   * the store still opening (its recovery; serveLink): our HELLO goes out at once, as
   * nothing in it depends on the store, and nothing received is handled before this
   * resolves; a rejection ends the session with ERROR (code `spool`, `spool-full` or
   * `internal`), and the session settles only once it has settled
   */
  opened?: Promise<unknown>;
  onProgress?: (p: SessionProgress) => void;
  /** bags offered and unresolved at once at most (default OFFER_WINDOW; tests) */
  offerWindow?: number;
  /** called with one line per frame sent and received (debugging) */
  trace?: (line: string) => void;
}

export interface SessionProgress {
  sentBytes: number;
  sendTotal: number;
  receivedBytes: number;
  receiveTotal: number;
  sentJobs: number;
  receivedJobs: number;
  /** sizes of the bags committed so far (each received byte belongs to exactly one) */
  committedBagBytes: number;
}

export interface SessionResult {
  peerHello: Hello;
  sent: {
    /** bags acknowledged (or answered `have`) */
    bags: number;
    /** jobs removed from our queue on acknowledgement */
    jobs: number;
    /** bag bytes sent in DATA frames */
    bytes: number;
    /** bag bytes not sent because the peer already held them (resumed transfers) */
    skipped: number;
    /** bags the peer already had (a lost acknowledgement) */
    have: number;
  };
  received: {
    bags: number;
    jobs: number;
    duplicates: number;
    /** bag bytes received in DATA frames */
    bytes: number;
    /** job bytes committed */
    mailBytes: number;
    /** sizes of the bags committed */
    bagBytes: number;
  };
  refusedByPeer: Refuse[];
  refusedByUs: Refuse[];
  /** jobs too large for the peer's caps: moved to failed/PEER, their senders owed a notice */
  held: string[];
  /** jobs of bags the peer refused as a whole, naming none of them: sent one per bag from the next session on */
  alone: number;
  /** jobs the peer refused alone in their bag, naming none, while it took other bags: moved to failed/PEER, their senders owed a notice */
  failedAlone: string[];
  /** jobs the peer refused alone in their bag, naming none, in a session where it took no bag of ours: still queued */
  heldAlone: number;
  /** jobs left queued because the peer reads none of the codecs this side writes (its HELLO) */
  unsent: number;
  /** bags the peer offered past MAX_OPEN_OFFERS open at once: refused for now (REFUSE busy), offered again next session */
  busy: number;
  wire: { in: number; out: number };
  /** everything offered both ways was acknowledged, nothing refused or held */
  drained: boolean;
  /**
   * what the far command wrote to its stderr (the link's last few KiB, control characters
   * as '?': docs/protocol.md §4), read when called (a far side let go after both BYEs may
   * still be heard a little: over ssh2 until sshd closes after our end, through a command
   * such as ssh until the far command exits); `exited`: the far command's end was seen
   * within FAR_EXIT_WAIT_MS of the BYEs, so this is all it said. Set once the session ended
   */
  farStderr?: () => { text: string; exited: boolean };
}

const PEER_CODES: Record<string, ErrorCode> = {
  'protocol': 'protocol',
  // the far side refused our identity (a key forced to another --peer, a peer it does not
  // know): a configuration error that retrying will not fix, as a changed host key is
  'peer-refused': 'auth',
  'locked': 'locked',
  'timeout': 'timeout',
  'spool': 'peer-refused',
  'spool-full': 'peer-refused',
};

interface InBag {
  offer: Offer;
  writer: PartialWriter | undefined;
  /** bytes the partial file holds */
  length: number;
  /** its stager while one runs */
  stager?: Stager | undefined;
  /** staged (undefined: the session ended first); settles once every byte is read */
  staged?: Promise<StagedBag | undefined>;
  /** the partial file closed, once complete */
  closed?: Promise<void>;
}

class Session {
  private readonly o: SessionOptions;
  private readonly state = new SessionState();
  private readonly decoder = new FrameDecoder();
  private readonly link: Link;
  /** young collections paced by the bag bytes moved either way (lib/memory.ts: bounded memory) */
  private readonly gcPacer = new YoungGcPacer();
  private bytesOut = 0;
  // the idle clock and the keepalive on the monotonic clock: a step of the wall clock (NTP
  // at boot, an hour forward) is no silence of the peer, nor a step back a reprieve
  private lastSent = performance.now();
  private lastRecv = performance.now();
  /** the last frame from the peer other than PING: the session moved */
  private lastMoved = performance.now();
  /** our last DATA frame: a sender whose peer reports no PROGRESS (an old one) moves the session so */
  private lastDataSent = Number.NEGATIVE_INFINITY;
  private settled = false;
  private resolve!: (r: SessionResult) => void;
  private reject!: (e: Error) => void;
  readonly result: Promise<SessionResult>;
  private timer: NodeJS.Timeout | undefined;
  private readonly ours = new Map<string, PendingBag>();
  private readonly dataQueue: { bag: string; from: number }[] = [];
  private pumping = false;
  private earlySend: EarlySend | undefined;
  private senderDone: Promise<void> = Promise.resolve();
  private readonly incoming = new Map<string, InBag>();
  private commitChain: Promise<void> = Promise.resolve();
  /** the pump, waiting for PROGRESS (flow control) */
  private progressWaiters: (() => void)[] = [];
  /** DATA bytes we wrote to partial bags (what our PROGRESS frames report) */
  private dataWritten = 0;
  /** bags being staged now, and the commits waiting for a slot */
  private staging = 0;
  private readonly stageWaiters: (() => void)[] = [];
  private ackChain: Promise<void> = Promise.resolve();
  private busy = 0;
  /** the jobs to send one per bag (SessionStore.aloneJobs), read with our queue; updated on refusals */
  private alone: Map<string, number> | undefined;
  private aloneChain: Promise<void> = Promise.resolve();
  /** bags of ours refused as a whole in this session, forgotten once the list is written (settleAlone) */
  private readonly refusedWhole: string[] = [];
  /** jobs the peer refused alone in their bag, naming none (judgeSuspects) */
  private readonly suspects: { id: string; reason: string }[] = [];
  /** bags of ours the peer acknowledged or said it has, in this session */
  private taken = 0;
  /** bags we refused in this session (not `busy`): at most MAX_OPEN_OFFERS (refusing()) */
  private readonly refusedNow = new Set<string>();
  /**
   * local steps that follow an acknowledgement — the sender removing acknowledged jobs,
   * the receiver moving committed ones into in/PEER/ — which BYE does not wait for (the
   * ledger line or the `.acked` marker already decides them, and a crash leaves them to
   * the recovery), but the session's result does
   */
  private readonly tails = new Set<Promise<unknown>>();
  private byeSent = false;
  private senderStarted = false;
  /** the peer's HELLO received and found right */
  private helloSeen = false;
  private readonly helloGate = gate();
  private readonly res: SessionResult;
  private sendTotal = 0;
  private receiveTotal = 0;

  constructor(o: SessionOptions) {
    this.o = o;
    this.link = o.link;
    this.result = new Promise((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    this.result.catch(() => {});
    this.res = {
      peerHello: undefined as unknown as Hello,
      sent: { bags: 0, jobs: 0, bytes: 0, skipped: 0, have: 0 },
      received: { bags: 0, jobs: 0, duplicates: 0, bytes: 0, mailBytes: 0, bagBytes: 0 },
      refusedByPeer: [],
      refusedByUs: [],
      held: [],
      alone: 0,
      failedAlone: [],
      heldAlone: 0,
      unsent: 0,
      busy: 0,
      wire: { in: 0, out: 0 },
      drained: false,
    };
  }

  private get keepalive(): number {
    return this.o.keepaliveMs ?? 15_000;
  }

  start(): void {
    this.send(
      encodeHello({
        site: this.o.site,
        peer: this.o.peer,
        codecs: usableCodecs(this.o.trace),
        maxBag: this.o.caps.maxBag,
        maxExpanded: this.o.caps.maxExpanded,
        maxJobs: this.o.caps.maxJobs,
        maxJob: this.o.caps.maxJob,
        keepalive: this.keepalive,
        software: this.o.software ?? 'mailbag',
        progress: true,
      }),
    );
    this.state.progressOffered = true;
    const ownIdle = this.o.idleTimeoutMs ?? Math.max(4 * this.keepalive, 30_000);
    const peerCap = Math.max(this.keepalive, this.o.maxPeerKeepaliveMs ?? MAX_PEER_KEEPALIVE_MS);
    this.timer = setInterval(() => {
      const now = performance.now();
      // the peer pings by its own keepalive (its HELLO), which may be longer than ours: it is
      // dead only after four of its intervals go by in silence (a dialer with keepalive =
      // "60s" against a hub's default was cut at 60 s of silence, while it was alive)
      const theirs = this.res.peerHello?.keepalive ?? 0;
      const idle = Math.max(ownIdle, 4 * Math.min(theirs, peerCap));
      const stall = this.o.stallTimeoutMs ?? Math.max(STALL_TIMEOUT_MS, idle);
      // while the store opens nothing is read, so silence says nothing about the link
      if (!this.opening && now - this.lastRecv > idle) {
        this.fail(new SessionError('timeout', `nothing received from ${this.o.peer} for ${Math.round((now - this.lastRecv) / 1000)} s: the link is dead`), true);
        return;
      }
      // keepalives alone, for longer than any step of the peer's takes, while nothing of
      // ours is under way (staging, a commit, an ACK's removals) and no DATA of ours went out
      // (a slow link to a peer without PROGRESS): the peer holds the session (and its lock)
      // without moving it. A sender waiting for PROGRESS that never comes counts too
      if (!this.opening && this.staging === 0 && this.busy === 0 && now - Math.max(this.lastMoved, this.lastDataSent) > stall) {
        this.fail(new SessionError('timeout', `${this.o.peer} sent nothing but keepalives for ${Math.round((now - this.lastMoved) / 1000)} s: the session does not move`), true);
        return;
      }
      if (now - this.lastSent >= this.keepalive && !this.byeSent) this.send(encodeFrame(FRAME.PING));
    }, Math.max(10, Math.min(1000, Math.floor(this.keepalive / 2))));
    // the dialer reads its queue and builds its first bags while the handshake runs
    if (this.o.scanEarly || this.o.early) this.startSender();
    this.reading = this.readLoop();
    void this.link.done.then((end) => {
      this.linkEnded = true;
      this.wakeSender();
      if (!this.settled && !(this.byeSent && this.state.byeReceived)) {
        const why = end.error?.message ?? 'the link closed';
        this.fail(new SessionError(end.error?.code === 'host-key' || end.error?.code === 'auth' ? end.error.code : 'link', `session with ${this.o.peer} broke: ${why}${end.stderr ? ` (${end.stderr.split('\n').slice(-3).join(' | ')})` : ''}`), false);
      }
    });
  }

  private send(buf: Buffer, raw = false): boolean {
    if (buf[0] === FRAME.DATA) this.lastDataSent = performance.now();
    if (this.o.trace && !raw && buf.length >= 5 && buf[0] !== FRAME.DATA && buf[0] !== FRAME.PROGRESS) this.o.trace(`${this.o.site} > ${frameName(buf[0]!)} ${buf.subarray(5, 120).toString('latin1')}`);
    if (this.settled && !this.closing) return false;
    this.bytesOut += buf.length;
    this.lastSent = performance.now();
    const out = this.link.output;
    if (out.destroyed || out.writableEnded) return false;
    return out.write(buf);
  }

  private closing = false;
  /** the store still opening (SessionOptions.opened): nothing is read meanwhile */
  private opening = false;
  private linkEnded = false;
  private reading: Promise<void> = Promise.resolve();
  private pumpDone: Promise<void> = Promise.resolve();
  /** both BYEs passed: the session succeeded */
  private ended = false;

  private async drain(): Promise<void> {
    const out = this.link.output;
    if (!out.writableNeedDrain || out.destroyed) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        out.off('drain', done);
        out.off('close', done);
        out.off('error', done);
        resolve();
      };
      out.on('drain', done);
      out.on('close', done);
      out.on('error', done);
      // a transport torn down without 'close' on this stream (an SSH channel) must not hold us
      void this.link.done.then(done);
    });
  }

  /**
   * resolves when what was written so far has been handed to the transport, or when the
   * link has ended (a write callback of a stream torn down mid-write may never come: the
   * session would then never settle, and sync exit with Node's 13 instead of 75)
   */
  private flushed(): Promise<void> {
    return new Promise((resolve) => {
      const out = this.link.output;
      if (out.destroyed || out.writableEnded) return resolve();
      out.write(Buffer.alloc(0), () => resolve());
      void this.link.done.then(() => resolve());
    });
  }

  private async readLoop(): Promise<void> {
    try {
      // frames that come meanwhile wait in the link's input (bounded: an unread stream
      // stops reading its source); the idle clock starts when they can be read
      if (this.o.opened) {
        this.opening = true;
        try {
          await this.o.opened;
        } finally {
          this.opening = false;
          this.lastRecv = this.lastMoved = performance.now();
        }
      }
      for await (const chunk of chunksOf(this.link.input)) {
        // after both BYEs, read on to the far side's EOF so the link can close cleanly
        if (this.ended) continue;
        if (this.settled) break;
        this.lastRecv = performance.now();
        const frames = this.decoder.push(chunk);
        if (!frames.ok) {
          this.fail(new SessionError('protocol', `${this.o.peer}: ${frames.issue.message}`), true);
          return;
        }
        for (const f of frames.value) {
          if (f.type !== FRAME.PING) this.lastMoved = performance.now();
          if (this.o.trace && f.type !== FRAME.DATA && f.type !== FRAME.PROGRESS) this.o.trace(`${this.o.site} < ${frameName(f.type)} ${f.payload.subarray(0, 115).toString('latin1')}`);
          // a peer that sends frames we answer at once (OFFERs past the open-offer cap,
          // REFUSE busy) and reads none of our answers must not make us hold them all
          // (bounded memory): past this much unread, we handle its next frame once it has
          // read ours; the idle timer ends a peer that never does
          if (this.link.output.writableLength > MAX_UNREAD_OUTPUT) {
            await this.drain();
            if (this.settled && !this.ended) return;
          }
          const m = this.state.receive(f);
          if (!m.ok) {
            this.fail(new SessionError('protocol', `${this.o.peer}: ${m.issue.message}`), true);
            return;
          }
          await this.handle(m.value);
          // a frame handled is a frame received: a chunk of many frames (10,000 OFFERs, each
          // a stat) can take longer to handle than the idle limit, and the peer was not silent
          this.lastRecv = performance.now();
          if (this.settled && !this.ended) return;
        }
      }
    } catch (err) {
      this.fail(err, true);
      return;
    }
    if (!this.settled && !(this.byeSent && this.state.byeReceived)) {
      // the link's `done` says why, with the far side's stderr; wait for it briefly
      const end = await Promise.race([this.link.done, new Promise<undefined>((r) => setTimeout(() => r(undefined), 2000).unref())]);
      if (!this.settled) {
        const tail = end?.stderr ? ` (${end.stderr.split('\n').slice(-3).join(' | ')})` : '';
        this.fail(new SessionError('link', `session with ${this.o.peer} broke: the link closed before the session ended${tail}`), false);
      }
    }
  }

  private async handle(m: Incoming): Promise<void> {
    switch (m.kind) {
      case 'hello':
        return this.onHello(m.hello);
      case 'error': {
        const code = PEER_CODES[m.error.code] ?? 'peer-refused';
        this.fail(new SessionError(code, `${this.o.peer} refused: ${m.error.message} (${m.error.code})`), false);
        return;
      }
      case 'ping':
        return;
      case 'bye':
        this.checkFinish();
        return;
      case 'offer':
        if (m.over) {
          // nothing is kept of it: the count and one REFUSE, in the order of the offers
          this.res.busy++;
          this.send(encodeRefuse({ bag: m.offer.bag, code: 'busy', message: `more than ${MAX_OPEN_OFFERS} bags offered and not yet resolved: offer it again next session` }));
          return;
        }
        return this.onOffer(m.offer);
      case 'data':
        return this.onData(m.bag, m.offset, m.chunk, m.complete);
      case 'done':
        this.checkFinish();
        return;
      case 'answer':
        if ('have' in m.answer) {
          this.taken++;
          this.wakeSender();
          this.res.sent.have++;
          this.res.sent.skipped += this.ours.get(m.answer.bag)?.size ?? 0;
          this.onAcked(m.answer.bag);
        } else {
          this.res.sent.skipped += m.answer.from;
          this.dataQueue.push({ bag: m.answer.bag, from: m.answer.from });
          if (!this.pumping) this.pumpDone = this.pump();
        }
        return;
      case 'ack':
        this.taken++;
        this.wakeSender();
        this.onAcked(m.ack.bag);
        // the peer's ACK of our last bag may be the last thing this side waits for (our own
        // ACKs went out before it): BYE now, or nothing would ever send it
        this.checkFinish();
        return;
      case 'progress':
        this.wakeSender();
        return;
      case 'refuse':
        this.wakeSender();
        this.res.refusedByPeer.push(m.refuse);
        this.track(this.onRefused(m.refuse, this.ours.get(m.refuse.bag)?.jobs ?? []));
        this.ours.delete(m.refuse.bag);
        this.checkFinish();
        return;
    }
  }

  /**
   * What a refusal of one of our bags does to its jobs (docs/protocol.md §3 step 5). `busy`:
   * nothing, the bag is offered again next session. A job of the bag named, for good: that
   * job fails, the others go in a new bag. Any other refusal is of the bag as a whole: the
   * same jobs in the same bag would be the same bytes, refused again every session, so they
   * go one per bag from the next session on (SessionStore.aloneJobs). A job refused so alone
   * is a suspect, judged at the session's end (judgeSuspects); one refused `bad-hash` alone
   * is sent once more first, built again and from byte 0 (a partial a crash of the far
   * machine damaged is refused so). A bag of one job too large for the peer fails at once.
   * The list is written once, at the session's end (settleAlone), not per refusal
   */
  private async onRefused(r: Refuse, jobs: readonly string[]): Promise<void> {
    if (r.code === 'busy') return;
    const said = `${r.message} (${r.code})`;
    if (r.job && PERMANENT_REFUSALS.has(r.code) && jobs.includes(r.job)) {
      // one job the peer will never take must not hold the others of its bag back
      await this.o.store.failRefusedJob(r.bag, r.job, `${this.o.peer} refused the job: ${said}`);
      return;
    }
    const only = jobs.length === 1 ? jobs[0]! : undefined;
    if (only !== undefined && r.code === 'too-big') {
      // over the peer's cap on a bag's size: a bag of one job is made of the same bytes every
      // time, so the job fails for good (5.3.4). A bag of several goes one per bag below
      await this.o.store.failRefusedJob(r.bag, only, `${this.o.peer} refused it: its bag is larger than ${this.o.peer} accepts (${r.message})`, '5.3.4');
      return;
    }
    if (jobs.length === 0) {
      // not a bag of ours under way: forgotten
      await this.o.store.discardBag(r.bag);
      return;
    }
    // one update of the list in memory at a time: refusals come in pipelined
    const step = this.aloneChain.then(async () => {
      const alone = (this.alone ??= await this.o.store.aloneJobs());
      if (only !== undefined && (r.code !== 'bad-hash' || (alone.get(only) ?? 0) > 0)) {
        this.suspects.push({ id: only, reason: `${this.o.peer} refused its bag, sent alone, as a whole: ${said}` });
      }
      for (const id of jobs) alone.set(id, (alone.get(id) ?? 0) + (r.code === 'bad-hash' && only !== undefined ? 1 : 0));
      // written once at the session's end, the bag forgotten after it (settleAlone): a
      // refusal per bag must not rewrite the whole list (N bags of N listed jobs: N² stats,
      // N fsyncs). Until then the bag stays pending and its jobs unlisted: a crash offers
      // it once more next session
      this.refusedWhole.push(r.bag);
      if (only === undefined) this.res.alone += jobs.length;
    });
    this.aloneChain = step.catch(() => undefined);
    await step;
  }

  /**
   * At the session's end (and best effort when it fails): the alone list is written once,
   * then the bags refused as a whole in this session are forgotten. The list first: a
   * crash between leaves pending bags of listed jobs, which the next session forgets when
   * they hold several (offerAndBuild) and offers again when they hold one
   */
  private async settleAlone(): Promise<void> {
    if (this.refusedWhole.length === 0 || !this.alone) return;
    await this.o.store.setAloneJobs(this.alone);
    for (const bag of this.refusedWhole.splice(0)) await this.o.store.discardBag(bag);
  }

  /**
   * At the session's end (both BYEs: every refusal is in): the jobs the peer refused alone
   * in their bag, naming none, fail for good (failed/PEER/, their senders told) when the
   * peer took some other bag of ours in this session: it takes mail, and not these. When it
   * took none, the fault may be the peer's alone (a far side that refuses every bag): they
   * stay queued, alone, until a session shows which, or queue_lifetime ends them, as for a
   * peer that cannot be reached; every session says so meanwhile
   */
  private async judgeSuspects(): Promise<void> {
    if (this.suspects.length === 0) return;
    if (this.taken === 0) {
      this.res.heldAlone = this.suspects.length;
      return;
    }
    for (const s of this.suspects) {
      if (await this.o.store.failQueuedJob(s.id, s.reason, '5.3.0')) this.res.failedAlone.push(s.id);
    }
  }

  private onHello(h: Hello): void {
    this.res.peerHello = h;
    // a wrong identity is a configuration error (auth: exit 77, not retried as 75 is): a
    // key forced to another --peer, a remote_command or host that is not the peer's
    if (h.site !== this.o.peer) {
      this.fail(new SessionError('auth', `this link is for peer ${this.o.peer}, not ${h.site}`), true, 'peer-refused');
      return;
    }
    if (h.peer !== this.o.site) {
      this.fail(new SessionError('auth', `${h.site} expected to talk to ${h.peer}, but this site is ${this.o.site} (its key for ${this.o.site} may be forced to --peer ${h.peer})`), true, 'peer-refused');
      return;
    }
    this.helloSeen = true;
    this.helloGate.open();
    this.earlySend?.stop();
    this.startSender();
  }

  private startSender(): void {
    if (this.senderStarted) return;
    this.senderStarted = true;
    this.senderDone = this.sender().catch((err: unknown) => this.fail(err, true));
  }

  // ----- sending our queue -----

  /**
   * What we have queued for the peer, read from the spool (pending bags and queued job
   * sizes), and for the dialer the bags built before HELLO. The dialer starts this before
   * the peer's HELLO arrives (syncPeer: before the link is even up), so the scan and the
   * first bags overlap the handshake; the server only after HELLO (nothing of a queue is
   * read for a client whose identity is wrong).
   */
  private early(): EarlySend {
    this.earlySend ??= this.o.early ?? new EarlySend({ store: this.o.store, codecs: this.o.codecs, caps: this.o.caps, ...(this.o.trace ? { trace: this.o.trace } : {}), site: this.o.site, build: !this.helloSeen });
    return this.earlySend;
  }

  /** resolves when the peer's HELLO has been received and checked, or the session ended */
  private helloChecked(): Promise<void> {
    return this.helloGate.promise;
  }

  private async sender(): Promise<void> {
    const early = this.early();
    try {
      const { pending, queued: all, alone } = await early.scan;
      this.alone = alone;
      const bags = await early.bags;
      await this.offerAndBuild(bags, pending, all, alone);
    } finally {
      // whatever happened, no bag built before HELLO is still being sealed behind our back
      early.stop();
      await early.settled();
    }
  }

  private async offerAndBuild(early: EarlyBag[], pending: PendingBag[], all: QueuedJob[], alone: ReadonlyMap<string, number>): Promise<void> {
    await this.helloChecked();
    if (this.settled) return;
    const theirs = this.res.peerHello;
    const codec = chooseCodec(this.o.codecs, theirs.codecs);
    const caps = { maxBag: theirs.maxBag, maxExpanded: theirs.maxExpanded, maxJobs: theirs.maxJobs, maxJob: theirs.maxJob };
    const inBags = new Set<string>();
    // a pending bag of a large job (alone in its bag, §3: a cut or crash left it) waits for
    // the small mail queued since: it is offered with the large bags, after the small ones,
    // where it went first and held every new small message behind the rest of the
    // attachment (req-audit11 R1)
    const largePending: PendingBag[] = [];
    for (const p of pending) {
      if (this.settled) return;
      // a bag of several jobs one of which is to go alone: the peer refused a bag of it as a
      // whole, and a crash came before this bag was forgotten (onRefused)
      if (!bagFits(p, theirs.codecs, caps) || (p.jobs.length > 1 && p.jobs.some((j) => alone.has(j)))) {
        await this.o.store.discardBag(p.bag);
        continue;
      }
      for (const j of p.jobs) inBags.add(j);
      if (p.sizes.some((n) => n >= LARGE_JOB)) {
        largePending.push(p);
        continue;
      }
      await this.offerWhenOpen(p);
      if (this.settled) return;
    }
    // the bags built before HELLO that the plan with the peer's codec and caps also makes
    const queued = all.filter((j) => !inBags.has(j.id));
    const plan = codec ? planBags(queued, caps, alone) : { bags: [], held: [] };
    let kept = 0;
    while (kept < early.length && early[kept]!.codec === codec && sameJobs(early[kept]!.group, plan.bags[kept])) kept++;
    if (!codec) {
      // nothing we can build is readable there: the jobs stay queued, and the session is
      // not drained (sync exits 75 saying why; it said 0, session after session)
      this.res.unsent = queued.length;
      // the early bags go too
      for (const e of early) await this.o.store.discardBag((await e.sealed).bag);
      // pending bags are in a codec the peer reads (bagFits)
      for (const p of largePending) {
        if (this.settled) return;
        await this.offerWhenOpen(p);
      }
    } else {
      // too large for the peer, now and on every later try: failed for good, the sender told.
      // A bag built before HELLO of such a job may still be reading its file (the bag
      // worker reaches it when it starts that bag): it is written first, then discarded
      // below (the plan holds no held job), so the move to failed/ cannot fail that bag
      const heldIds = new Set(plan.held.map((j) => j.id));
      await Promise.allSettled(early.filter((e) => e.group.some((j) => heldIds.has(j.id))).map((e) => e.written));
      for (const j of plan.held) {
        const cap = j.size > caps.maxJob + 1024 * 1024 ? `its limit of ${formatSize(caps.maxJob)} per message` : `its limit of ${formatSize(caps.maxExpanded)} per bag`;
        if (await this.o.store.failQueuedJob(j.id, `${j.size} bytes, larger than ${this.o.peer} accepts (${cap})`, '5.3.4')) this.res.held.push(j.id);
      }
      // BAGS_IN_FLIGHT bags are compressed at a time (a compressor's memory each); the
      // next starts as soon as one before is written, while that one is made durable and
      // offered; offers go out in the order of the plan
      const seals: Promise<PendingBag>[] = early.map((e) => e.sealed);
      // the last bag built before HELLO may still be compressing: it counts
      const building = new Set<Promise<unknown>>(early.map((e) => e.written));
      for (const slot of building) void slot.then(() => building.delete(slot));
      let offering: Promise<void> = Promise.resolve();
      let sealFailed = false;
      // the large pending bags, once, in the order of the plan: before its first bag of a
      // large job, or after its last bag
      let largeOffered = false;
      const offerLarge = (): void => {
        if (largeOffered) return;
        largeOffered = true;
        for (const p of largePending) {
          offering = offering.then(async () => {
            if (!this.settled && this.state.canOffer(p.bag)) await this.offerWhenOpen(p);
          });
        }
      };
      const large = (group: readonly QueuedJob[]): boolean => group.some((j) => j.size >= LARGE_JOB);
      // the early bags first, each as soon as it is sealed, in order
      for (const [i, e] of early.entries()) {
        // (one not kept is discarded below: its jobs are in the plan's bags)
        if (i < kept && large(e.group)) offerLarge();
        offering = offering.then(async () => {
          const bag = await e.sealed;
          if (this.settled) return;
          // a kept bag is the one the plan for the peer makes (its codec, jobs, sizes): it is
          // offered as a bag built now would be, also when its compressed size is over the
          // peer's maxBag (refused too-big, visibly; dropped here, its jobs stayed queued
          // with nothing said, session after session)
          if (i < kept && this.state.canOffer(bag.bag)) await this.offerWhenOpen(bag);
          else {
            // built for caps or a codec the peer does not have: its jobs are in the bags below
            this.o.trace?.(`${this.o.site} - discarding ${bag.bag.slice(0, 12)}, built before HELLO for other caps`);
            await this.o.store.discardBag(bag.bag);
          }
        });
        offering.catch(() => void (sealFailed = true));
      }
      // the early bags not kept are discarded before any bag is built again: a bag of the
      // same jobs built now has the same bytes and name (a large job alone in its bag), and
      // a discard after its seal removed its files (ENOENT when it was sent)
      if (kept < early.length) await offering.catch(() => undefined);
      try {
        for (const group of plan.bags.slice(kept)) {
          if (large(group)) offerLarge();
          while (building.size >= BAGS_IN_FLIGHT) await Promise.race(building);
          // a bag that could not be made durable ends the session (below) before the next is built
          if (this.settled || sealFailed) break;
          this.o.trace?.(`${this.o.site} - building a bag of ${group.length} jobs`);
          const { sealed } = startBag(this.o.store, group, codec, building);
          seals.push(sealed);
          offering = offering.then(async () => {
            const bag = await sealed;
            if (this.settled || !this.state.canOffer(bag.bag)) return;
            await this.offerWhenOpen(bag);
          });
          offering.catch(() => void (sealFailed = true));
        }
        offerLarge();
        offering.catch(() => void (sealFailed = true));
        await offering;
        if (this.settled) return;
      } finally {
        // a failure (or the session's end) leaves no bag being written or sealed behind our back
        await Promise.allSettled([...building, ...seals]);
      }
    }
    this.state.doneSent = true;
    this.send(encodeFrame(FRAME.DONE));
    this.checkFinish();
  }

  /**
   * offer `p` once fewer than OFFER_WINDOW of our offers are unresolved (the receiver
   * holds a little for each; it ends a session that keeps more than MAX_OPEN_OFFERS open)
   */
  private async offerWhenOpen(p: PendingBag): Promise<void> {
    while (this.state.outstanding >= (this.o.offerWindow ?? OFFER_WINDOW) && !this.settled && !this.linkEnded) await this.progressed();
    if (this.settled) return;
    this.offer(p);
  }

  private offer(p: PendingBag): void {
    this.ours.set(p.bag, p);
    const offer: Offer = { bag: p.bag, size: p.size, codec: p.codec, jobs: p.jobs.length };
    this.state.offered(offer);
    this.sendTotal += p.size;
    this.send(encodeOffer(offer));
  }

  private wakeSender(): void {
    const w = this.progressWaiters;
    this.progressWaiters = [];
    for (const f of w) f();
  }

  /** resolves at the next PROGRESS, or when the session or the link ends (wakeSender) */
  private progressed(): Promise<void> {
    return new Promise((resolve) => this.progressWaiters.push(resolve));
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.dataQueue.length > 0 && !this.settled) {
        const { bag, from } = this.dataQueue.shift()!;
        const p = this.ours.get(bag);
        // resolved meanwhile (a peer that acknowledged it before its DATA): nothing to send
        if (!p) continue;
        let offset = from;
        const half = Math.floor(p.size / 2);
        /** one DATA frame: its chunk copied in after the head, sent in one write (two SSH packets) */
        const sendFrame = async (frame: Buffer, n: number): Promise<boolean> => {
          if (this.settled) return false;
          // flow control: never more than FLOW_WINDOW bytes past what the peer has written
          if (this.res.peerHello.progress) {
            while (this.state.dataSent - this.state.progress >= FLOW_WINDOW && !this.settled && !this.linkEnded) await this.progressed();
            if (this.settled) return false;
          }
          this.state.dataSent += n;
          writeDataHead(frame, bag, offset, n);
          const ok = this.send(n === DATA_CHUNK ? frame : frame.subarray(0, DATA_HEAD + n), true);
          const before = offset;
          offset += n;
          this.res.sent.bytes += n;
          this.gcPacer.moved(n);
          this.progress();
          if (before < half && offset >= half) {
            await this.flushed();
            faultPoint('session-sender-mid-bag');
          }
          if (!ok) await this.drain();
          return true;
        };
        if (offset < p.size) {
          let frame: Buffer | undefined;
          let filled = 0;
          // each chunk read as itself (no concatenation of what the read-ahead holds)
          for await (const chunk of chunksOf(this.o.store.openBag(bag, from, p.size), 1)) {
            for (let i = 0; i < chunk.length; ) {
              frame ??= Buffer.allocUnsafe(DATA_HEAD + DATA_CHUNK);
              const k = Math.min(DATA_CHUNK - filled, chunk.length - i);
              chunk.copy(frame, DATA_HEAD + filled, i, i + k);
              filled += k;
              i += k;
              if (filled === DATA_CHUNK) {
                if (!(await sendFrame(frame, filled))) return;
                frame = undefined;
                filled = 0;
              }
            }
          }
          if (frame && filled > 0 && !(await sendFrame(frame, filled))) return;
          if (offset !== p.size) {
            // the file is shorter than the bag offered (cut on disk): the peer would wait for
            // the rest for ever, both sides' keepalives keeping the link alive. The bag goes
            // (its jobs stay queued and are bagged again) and the session ends
            await this.o.store.discardBag(bag);
            throw new SpoolError(`bag ${bag.slice(0, 12)} in ${this.o.site}'s spool is shorter than offered (${offset} of ${p.size} bytes): removed, its jobs go in a new bag next session`);
          }
        }
        this.o.trace?.(`${this.o.site} - sent all of ${bag.slice(0, 12)}`);
        this.state.sentAll(bag);
      }
    } catch (err) {
      this.fail(err, true);
    } finally {
      this.pumping = false;
    }
  }

  private onAcked(bag: string): void {
    // resolved: the sender keeps nothing of it (its job ids and sizes) for the rest of the session
    this.ours.delete(bag);
    this.ackChain = this.ackChain.then(async () => {
      const removed = await this.o.store.acked(bag);
      this.o.trace?.(`${this.o.site} - removed ${removed} jobs of ${bag.slice(0, 12)}`);
      this.res.sent.bags++;
      this.res.sent.jobs += removed;
      faultPoint('session-sender-after-remove');
      this.progress();
    });
    // not in `busy`: our BYE follows the peer's ACK (§4), not the removals, which run on
    // while the link closes; the session's result waits for them (tail)
    this.tail(this.ackChain);
  }

  /** a local step after an acknowledgement: the result waits for it, BYE does not */
  private tail(p: Promise<unknown>): void {
    this.tails.add(p);
    p.then(
      () => this.tails.delete(p),
      (err: unknown) => {
        this.tails.delete(p);
        this.fail(err, true);
      },
    );
  }

  /** count an async step, so the session does not end before it has finished */
  private track(p: Promise<unknown>): void {
    this.busy++;
    p.then(
      () => {
        this.busy--;
        this.checkFinish();
      },
      (err: unknown) => {
        this.busy--;
        this.fail(err, true);
      },
    );
  }

  // ----- receiving theirs -----

  /**
   * a bag we refuse, kept for the result (sync prints each); false, the session ended,
   * past MAX_OPEN_OFFERS in one session: an offer refused at once is never open, so a peer
   * offering such bags without end would grow this (and the state) without bound
   */
  private refusing(r: Refuse): boolean {
    if (this.res.refusedByUs.length >= MAX_OPEN_OFFERS) {
      this.fail(new SessionError('protocol', `${this.o.peer}: more than ${MAX_OPEN_OFFERS} bags refused in one session`), true);
      return false;
    }
    this.res.refusedByUs.push(r);
    this.refusedNow.add(r.bag);
    return true;
  }

  private async onOffer(offer: Offer): Promise<void> {
    const refuse = (code: string, message: string): void => {
      const r = { bag: offer.bag, code, message };
      if (!this.refusing(r)) return;
      this.send(encodeRefuse(r));
      this.state.resolvedIncoming(offer.bag);
    };
    const refuseDropping = async (code: string, message: string): Promise<void> => {
      await this.o.store.dropPartial(offer.bag);
      refuse(code, message);
    };
    // an honest sender offers a bag once a session (one refused `busy` at the next): a peer
    // offering again a bag this side acknowledged, answered `have` (each answered at once and
    // forgotten) or refused would keep the session busy for ever. What was committed before
    // stays committed
    const again = this.refusedNow.has(offer.bag) ? 'refused it' : this.o.store.hasBag(offer.bag) && this.o.store.answeredBefore(offer.bag) ? 'acknowledged it or said it has it' : undefined;
    if (again) {
      this.fail(new SessionError('protocol', `${this.o.peer} offered bag ${offer.bag.slice(0, 12)} again after this side had ${again}, in the same session`), true);
      return;
    }
    // refused at the offer, for good (its sender forgets it, §3): a partial of it from an
    // earlier session (the caps since lowered) is resumed by nobody
    if (!(usableCodecs() as string[]).includes(offer.codec)) return refuseDropping('protocol', `unknown codec ${offer.codec}`);
    if (offer.size > this.o.caps.maxBag) return refuseDropping('too-big', `bag of ${offer.size} bytes is over the cap of ${this.o.caps.maxBag}`);
    if (offer.jobs > this.o.caps.maxJobs) return refuseDropping('too-big', `bag of ${offer.jobs} jobs is over the cap of ${this.o.caps.maxJobs}`);
    if (this.o.store.hasBag(offer.bag)) {
      this.send(encodeAnswer({ bag: offer.bag, have: true }));
      this.state.resolvedIncoming(offer.bag);
      this.checkFinish();
      return;
    }
    const from = await this.o.store.partialLength(offer.bag, offer.size);
    const b: InBag = { offer, writer: undefined, length: from };
    this.incoming.set(offer.bag, b);
    this.receiveTotal += offer.size - from;
    this.send(encodeAnswer({ bag: offer.bag, from }));
    this.state.answeredFrom(offer.bag, from);
    // a bag of many jobs is made durable with one syncfs: its helper starts now
    this.o.store.expectCommit(offer.jobs);
    // staging starts now, from byte 0 of what we hold, and follows the bytes as they come
    this.startStaging(b);
    if (from === offer.size) this.scheduleCommit(b);
  }

  /**
   * Stage an incoming bag while it arrives (docs/protocol.md §5): decompress, validate
   * and write its jobs into HASH.d/ as its bytes reach the partial file, one bag at a
   * time (STAGERS), so that at its last byte only the hash and the commit are left.
   */
  private startStaging(b: InBag): void {
    const { bag, codec, size } = b.offer;
    b.staged = this.stageSlot(async () => {
      if (this.settled) return undefined;
      this.o.trace?.(`${this.o.site} - staging ${bag.slice(0, 12)} from byte 0 (${b.length} of ${size} here)`);
      const st = this.o.store.beginStage(bag, codec, this.o.caps, size, b.length);
      b.stager = st;
      try {
        return await st.done;
      } finally {
        b.stager = undefined;
      }
    });
    b.staged.catch(() => {});
  }

  private async onData(bag: string, offset: number, chunk: Buffer, complete: boolean): Promise<void> {
    const b = this.incoming.get(bag)!;
    b.writer ??= await this.o.store.openPartial(bag, offset);
    await b.writer.write(chunk);
    b.length = b.writer.length;
    b.stager?.grew(b.length);
    this.res.received.bytes += chunk.length;
    this.gcPacer.moved(chunk.length);
    if (this.res.peerHello.progress) {
      // written to the partial (it survives a crash of this process): the sender may go on
      this.dataWritten += chunk.length;
      this.send(encodeProgress(this.dataWritten));
    }
    this.progress();
    const half = Math.floor(b.offer.size / 2);
    if (offset < half && offset + chunk.length >= half) faultPoint('session-mid-bag');
    if (complete) {
      this.o.trace?.(`${this.o.site} - received all of ${bag.slice(0, 12)}`);
      // not fsynced: what is committed are the staged job files, made durable before the
      // ledger line; the partial only serves a resume, whose hash check catches bytes a
      // crash of the machine lost (and a syncfs of the commit writes it anyway)
      const writer = b.writer;
      b.writer = undefined;
      b.closed = writer.close(false);
      b.closed.catch(() => {});
      this.scheduleCommit(b);
    }
  }

  /** run `f` when fewer than STAGERS bags are being staged (FIFO) */
  private async stageSlot<T>(f: () => Promise<T>): Promise<T> {
    while (this.staging >= STAGERS) await new Promise<void>((r) => this.stageWaiters.push(r));
    this.staging++;
    try {
      return await f();
    } finally {
      this.staging--;
      this.stageWaiters.shift()?.();
    }
  }

  /**
   * Commit a complete bag once its stager has read every byte and found the hash and
   * every entry good (it ran while the bytes arrived); the commit point and ACK follow
   * one bag at a time, in the order the bags completed (docs/protocol.md §5).
   */
  private scheduleCommit(b: InBag): void {
    const offer = b.offer;
    this.commitChain = this.commitChain.then(async () => {
      try {
        await b.closed;
        const st = await b.staged;
        if (!st) return;
        if (this.settled) {
          await this.o.store.dropStaged(st);
          return;
        }
        this.o.trace?.(`${this.o.site} - committing ${offer.bag.slice(0, 12)}`);
        const r = await this.o.store.commitStaged(st);
        this.res.received.bags++;
        this.res.received.jobs += r.committed.length;
        this.res.received.duplicates += r.duplicates;
        this.res.received.mailBytes += r.bytes;
        this.res.received.bagBytes += offer.size;
        faultPoint('session-before-ack');
        this.send(encodeAck({ bag: offer.bag, jobs: r.committed.length, duplicates: r.duplicates }));
        // committed (the ledger line is durable): the ACK need not wait for the moves into
        // in/PEER/ (a crash leaves them to the recovery), nor the next bag's commit
        this.tail(this.o.store.moveCommitted(offer.bag));
        await this.flushed();
        faultPoint('session-after-ack');
      } catch (err) {
        if (!(err instanceof BagRefusal)) throw err;
        if (this.settled) return;
        if (err.overCap) {
          // over a cap we announced in our HELLO (expanded size, entries, a job's size), which
          // an honest sender plans within: a decompression bomb, or a broken peer. Refused
          // and the session goes on, a peer could make us inflate one after another until
          // MAX_OPEN_OFFERS refusals (hours of a core); it ends here (its partial is gone)
          this.fail(new SessionError('protocol', `${this.o.peer} sent bag ${offer.bag.slice(0, 12)} past the caps this side announced in its HELLO (${err.message})`), true);
          return;
        }
        const r = { bag: offer.bag, code: err.code, message: err.message, ...(err.job ? { job: err.job } : {}) };
        if (!this.refusing(r)) return;
        this.send(encodeRefuse(r));
      }
      this.state.resolvedIncoming(offer.bag);
      // resolved: nothing of it is kept (the job ids and sizes of its staged record, the
      // offer), or a long session of many bags would hold every one until it ends (DESIGN.md:
      // bounded memory); offered again, it is a new offer
      if (this.incoming.get(offer.bag) === b) this.incoming.delete(offer.bag);
      this.progress();
    });
    this.track(this.commitChain);
  }

  // ----- the end -----

  private checkFinish(): void {
    if (this.settled) return;
    if (!this.byeSent && this.busy === 0 && this.state.finished) {
      this.byeSent = true;
      this.send(encodeFrame(FRAME.BYE));
    }
    if (this.byeSent && this.state.byeReceived) void this.finish();
  }

  private async finish(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    this.ended = true;
    this.closing = true;
    clearInterval(this.timer);
    this.res.wire = { in: this.decoder.bytesIn, out: this.bytesOut };
    const r = this.res;
    r.drained = r.refusedByPeer.length === 0 && r.refusedByUs.length === 0 && r.held.length === 0 && r.unsent === 0 && r.busy === 0;
    // every refusal is in: the alone list is written once and the suspects are judged
    // while the link closes
    this.tail(this.aloneChain.then(() => this.settleAlone()).then(() => this.judgeSuspects()));
    // the link closes while removals and moves run on; the result waits for them
    const tails = Promise.all([...this.tails]);
    tails.catch(() => {}); // awaited below, after the link has closed
    // the far command's exit after both BYEs is its own business (a far serve moves the jobs
    // it committed into in/PEER/ and hands them to its MTA before it exits): waited for
    // briefly, then the link lets it go on without us (LinkEnd.detached), where it waited up
    // to CLOSE_GRACE_MS and tore the link down
    const end = await this.link.close({ detachAfterMs: FAR_EXIT_WAIT_MS });
    // the far side's stderr as it is when asked (the transports keep its tail: lib/transport/link.ts)
    const tail = (this.link as { stderrTail?: { text(): string } }).stderrTail;
    r.farStderr = () => ({ text: tail ? tail.text() : end.stderr, exited: !end.detached });
    // both BYEs passed, the link closed or let go; the moves of committed jobs into in/PEER/
    // and the removals of acknowledged ones maybe still under way (the recoveries finish them)
    faultPoint('session-after-bye');
    try {
      while (this.tails.size > 0) await Promise.all([...this.tails]);
      await tails;
    } catch (err) {
      this.reject(asMailbagError(err));
      return;
    }
    this.resolve(r);
  }

  private progress(): void {
    this.o.onProgress?.({
      sentBytes: this.res.sent.bytes,
      sendTotal: this.sendTotal,
      receivedBytes: this.res.received.bytes,
      receiveTotal: this.receiveTotal,
      sentJobs: this.res.sent.jobs,
      receivedJobs: this.res.received.jobs,
      committedBagBytes: this.res.received.bagBytes,
    });
  }

  private fail(err: unknown, tellPeer: boolean, peerCode?: string): void {
    if (this.settled) return;
    this.settled = true;
    this.wakeSender();
    this.helloGate.open();
    this.earlySend?.stop();
    this.o.early?.stop();
    this.closing = true;
    clearInterval(this.timer);
    const e = asMailbagError(err);
    const input = this.link.input;
    // a far side that is already gone cannot read an ERROR: tear down at once, so the
    // session lock is free for its next attempt
    if (tellPeer && (input.readableEnded || input.destroyed || this.link.output.destroyed)) tellPeer = false;
    if (tellPeer) {
      const out = this.link.output;
      // what nobody reads (a store that failed to open: nothing was) is read and dropped,
      // so the far side's close after our ERROR ends the link now, not the 2 s below
      if (!input.destroyed && input.listenerCount('data') === 0 && input.listenerCount('readable') === 0) input.resume();
      if (!out.destroyed && !out.writableEnded) {
        out.write(encodeError({ code: peerCode ?? (e.code === 'protocol' || e.code === 'timeout' ? e.code : e.code === 'locked' ? 'locked' : e.code === 'spool-full' ? 'spool-full' : e.code === 'spool' ? 'spool' : 'internal'), message: e.message }));
        out.end();
      }
      // let the ERROR frame reach the far side, then tear down. Not unref'd: the session's
      // rejection waits for the link's end, and a process with nothing else left must not
      // exit (0, unsaid) before this bound has torn the link down
      const t = setTimeout(() => this.link.abort(e), 2000);
      void this.link.done.then(() => clearTimeout(t));
    } else {
      this.link.abort(e);
    }
    // settle only when no commit or removal of ours is still running: the caller
    // releases the session lock next, and another session may start at once; after an
    // ERROR we sent, also only once the link is down (the far side has read it and
    // ended, or the 2 s above passed): a far `serve` still opening its store when we
    // refused its HELLO is done with its spool by then
    for (const b of this.incoming.values()) b.stager?.stop();
    const linkDown = tellPeer ? [this.link.done] : [];
    // the refusals taken so far: the alone list written once, those bags forgotten (best
    // effort: left undone, the bags are offered again next session, nothing lost)
    const alone = this.aloneChain.then(() => this.settleAlone()).catch(() => undefined);
    void Promise.allSettled([alone, this.reading, this.pumpDone, this.commitChain, this.ackChain, this.senderDone, ...this.tails, ...[...this.incoming.values()].map((b) => b.staged), ...linkDown])
      .then(async () => {
        // a commit that was running when this failed still sends its ACK and starts its
        // moves (a tail) after the line above was read: wait for those too
        while (this.tails.size > 0) await Promise.allSettled([...this.tails]);
      })
      .then(() => Promise.allSettled([...this.incoming.values()].map((b) => b.writer?.close(false))))
      .then(() => this.reject(e));
  }
}

/**
 * The dialer's sending side before the peer's HELLO: reads the queue and builds bags of
 * the queued jobs with this side's own first codec and its own caps as the guess for the
 * peer's (docs/protocol.md §2), until stop() (the HELLO arrived, the session ended, or
 * the link could not be made). Started by syncPeer before the link is up — the SSH
 * handshake, sshd and the far `serve` start-up take 0.3–0.7 s — or by the session. The
 * bags are ordinary pending bags (§6), durable and named; the session offers those the
 * plan for the peer's codec and caps also makes and discards the rest.
 */
export class EarlySend {
  /** pending bags of earlier sessions and the queued jobs */
  readonly scan: Promise<{ pending: PendingBag[]; queued: QueuedJob[]; alone: Map<string, number> }>;
  /** the bags started before stop(), each with its own sealing; resolves at stop() */
  readonly bags: Promise<EarlyBag[]>;
  private stopped = false;
  private readonly stopGate = gate();
  private readonly built: EarlyBag[] = [];

  constructor(private readonly o: { store: SessionStore; codecs: BagCodec[]; caps: ReceiveCaps; site: string; trace?: (line: string) => void; ready?: Promise<unknown>; build?: boolean }) {
    this.scan = (async () => {
      await o.ready;
      const pending = await o.store.pendingBags();
      const queued = await o.store.queuedJobs(new Set());
      const alone = await o.store.aloneJobs();
      return { pending, queued, alone };
    })();
    this.scan.catch(() => {});
    this.bags = o.build === false ? this.scan.then(() => []) : this.build();
    this.bags.catch(() => {});
  }

  /** build no more bags */
  stop(): void {
    this.stopped = true;
    this.stopGate.open();
  }

  /** every bag started here is sealed or failed */
  async settled(): Promise<void> {
    await this.bags.catch(() => undefined);
    await Promise.allSettled(this.built.map((e) => e.sealed));
  }

  private async build(): Promise<EarlyBag[]> {
    const { pending, queued, alone } = await this.scan;
    const codec = this.o.codecs[0];
    if (!codec) return this.built;
    const inPending = new Set(pending.flatMap((p) => p.jobs));
    const building = new Set<Promise<unknown>>();
    for (const group of planBags(queued.filter((j) => !inPending.has(j.id)), this.o.caps, alone).bags) {
      // stop() ends this at once: the bag being built is offered when it is sealed
      while (building.size >= BAGS_IN_FLIGHT && !this.stopped) await Promise.race([...building, this.stopGate.promise]);
      if (this.stopped) break;
      this.o.trace?.(`${this.o.site} - building a bag of ${group.length} jobs (before HELLO)`);
      const { sealed, slot } = startBag(this.o.store, group, codec, building);
      if (this.built.length === 0) void sealed.then(() => !this.stopped && faultPoint('session-sender-before-hello'), () => {});
      this.built.push({ group, codec, written: slot, sealed });
    }
    // the caller waits for the HELLO (stop) before it offers anything
    await this.stopGate.promise;
    return this.built;
  }
}

/** A bag built before the peer's HELLO (EarlySend). */
interface EarlyBag {
  group: QueuedJob[];
  codec: BagCodec;
  /** settles when its bytes are written (the compressor is free) */
  written: Promise<unknown>;
  /** durable and named */
  sealed: Promise<PendingBag>;
}

/** A promise opened once, from outside. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/** The same jobs in the same order. */
function sameJobs(a: readonly QueuedJob[], b: readonly QueuedJob[] | undefined): boolean {
  return b !== undefined && a.length === b.length && a.every((j, i) => j.id === b[i]!.id);
}

/** Run one session on `link` until both sides are done; rejects with SessionError when it breaks. */
export async function runSession(options: SessionOptions): Promise<SessionResult> {
  const s = new Session(options);
  s.start();
  return s.result;
}

/** Tell a client why no session can run (locked, unknown peer) and close. */
export async function refuseSession(link: Link, code: string, message: string): Promise<void> {
  const out = link.output;
  out.write(encodeError({ code, message }));
  await link.close();
}

/**
 * Start compressing a bag of `group`: its seal (durable and named, §6), and a slot that
 * settles when the compressor is free again, kept in `building` until then (the callers
 * count bags in flight with it).
 */
function startBag(store: SessionStore, group: QueuedJob[], codec: BagCodec, building: Set<Promise<unknown>>): { sealed: Promise<PendingBag>; slot: Promise<void> } {
  const written = store.writeBagFile(group, codec);
  const sealed = written.then((w) => w.sealed);
  sealed.catch(() => {});
  const slot = written.then(() => undefined, () => undefined);
  building.add(slot);
  void slot.then(() => building.delete(slot));
  return { sealed, slot };
}
