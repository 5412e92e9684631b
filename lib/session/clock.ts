// The wall clock's steps forward, as the queue-lifetime expiry sees them. An outgoing job's
// id holds the wall time it was made; one made while this clock was weeks behind (a board
// without a real-time clock that booted at its last shutdown's time, a site offline until
// its link brings NTP up) looked weeks old once NTP set the clock right, and bounced at the
// next expiry. The kernel's time since boot (CLOCK_BOOTTIME: /proc/uptime, counting
// suspend) does not step: between two readings in one boot, wall time gone by beyond it
// is a step of the wall clock. Each one seen is kept in SPOOL/run/clock-steps with the
// old clock's reading at the time it was seen (`cutoff`): a job made at or before it was
// made by the clock before the step, and its age counts from its id time plus the step.
// Written once per boot (the reference reading) and once per step seen; read at every
// expiry. Not on Linux (no /proc/uptime, no boot_id): no steps are seen, as before.

import { readFile } from 'node:fs/promises';
import type { Spool } from '../spool/spool.js';

/** a step smaller than this is left alone (it moves an expiry by less than it) */
export const MIN_STEP_MS = 3_600_000;
/** steps kept (the oldest go first) */
const MAX_STEPS = 32;
const FILE = 'clock-steps';
const MAGIC = 'mailbag-clock 1\n';

export interface ClockStep {
  /** the clock before the step read this when the step was seen (ms) */
  cutoff: number;
  /** how far it stepped forward (ms) */
  add: number;
}

/** where the boot clock stands: the boot's id and ms since it (suspend included) */
export interface BootReading {
  boot: string;
  sinceBootMs: number;
}

interface Record {
  boot: string;
  /** the reference reading: wall and boot clock at once */
  wall: number;
  sinceBootMs: number;
  steps: ClockStep[];
}

/** This boot's reading, or undefined where the kernel does not give one. */
export async function readBootClock(): Promise<BootReading | undefined> {
  try {
    const [boot, uptime] = await Promise.all([readFile('/proc/sys/kernel/random/boot_id', 'utf8'), readFile('/proc/uptime', 'utf8')]);
    const s = Number.parseFloat(uptime.split(' ')[0] ?? '');
    if (!Number.isFinite(s) || boot.trim() === '') return undefined;
    return { boot: boot.trim(), sinceBootMs: Math.round(s * 1000) };
  } catch {
    return undefined;
  }
}

async function load(spool: Spool): Promise<Record | undefined> {
  try {
    const text = await readFile(spool.path('run', FILE), 'utf8');
    if (!text.startsWith(MAGIC)) return undefined;
    const r = JSON.parse(text.slice(MAGIC.length)) as Record;
    if (typeof r.boot !== 'string' || typeof r.wall !== 'number' || typeof r.sinceBootMs !== 'number' || !Array.isArray(r.steps)) return undefined;
    return { ...r, steps: r.steps.filter((s) => typeof s?.cutoff === 'number' && typeof s?.add === 'number') };
  } catch {
    return undefined; // none yet, or damaged: steps are forgotten, as without this record
  }
}

async function save(spool: Spool, r: Record): Promise<void> {
  await spool.ensureDir('run');
  await spool.commitFile(`run/${FILE}`, Buffer.from(`${MAGIC}${JSON.stringify(r)}\n`), { label: 'run' });
}

/**
 * The steps seen so far, this reading's included (`now` the wall clock, `reading` the boot
 * clock at the same moment). A record of another boot is the reference for nothing: this
 * boot's first reading becomes it, and the steps of earlier boots are kept. A failure to
 * write the record loses a step, never the expiry: the steps known are returned.
 */
export async function clockSteps(spool: Spool, now: number, reading: BootReading | undefined): Promise<ClockStep[]> {
  const r = await load(spool);
  if (!reading) return r?.steps ?? [];
  // another boot, or the same boot id with less time since boot (a container whose uptime
  // is its own, restarted): a new reference, no step measured against the old one
  if (!r || r.boot !== reading.boot || reading.sinceBootMs < r.sinceBootMs) {
    await save(spool, { boot: reading.boot, wall: now, sinceBootMs: reading.sinceBootMs, steps: r?.steps ?? [] }).catch(() => undefined);
    return r?.steps ?? [];
  }
  const step = now - r.wall - (reading.sinceBootMs - r.sinceBootMs);
  if (step < MIN_STEP_MS) {
    // the reference follows the boot clock (at most one write per MIN_STEP_MS of it): a
    // restart of a container whose uptime is its own is then seen by its uptime going
    // back, not taken for a step of the whole run before it and the downtime (review10a)
    if (reading.sinceBootMs - r.sinceBootMs >= MIN_STEP_MS) await save(spool, { boot: reading.boot, wall: now, sinceBootMs: reading.sinceBootMs, steps: r.steps }).catch(() => undefined);
    return r.steps;
  }
  const steps = [...r.steps, { cutoff: now - step, add: step }].slice(-MAX_STEPS);
  // the new reference: the same step is not seen again
  await save(spool, { boot: reading.boot, wall: now, sinceBootMs: reading.sinceBootMs, steps }).catch(() => undefined);
  return steps;
}

/** A job's time of making (its id time) on the clock of now: each later step added. */
export function onTodaysClock(made: number, steps: readonly ClockStep[]): number {
  let t = made;
  for (const s of steps) if (t <= s.cutoff) t += s.add;
  return t;
}
