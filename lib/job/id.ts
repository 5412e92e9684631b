// Job ids: 12 lowercase hex digits of the creation time in milliseconds (fixed width, so
// ids sort by time as strings until the year 10889), then 12 lowercase hex digits of
// randomness. Safe as a file name. Uniqueness within a queue is guaranteed by the spool
// (a job is linked into place exclusively); the randomness only makes a clash unlikely.
// No node:crypto here: this runs in the enqueue front door, which must start fast, and
// Math.random is seeded per process from the OS.

let last = '';
let seq = 0;

function randomHex(digits: number): string {
  let s = '';
  while (s.length < digits) s += Math.floor(Math.random() * 0x1000000).toString(16).padStart(6, '0');
  return s.slice(0, digits);
}

/** A new job id for a job created at `now` (ms since 1970; default: the clock). */
export function newJobId(now: number = Date.now()): string {
  const time = Math.max(0, Math.floor(now)).toString(16).padStart(12, '0').slice(-12);
  // two ids made by one process in the same millisecond still sort in creation order
  if (time === last) seq++;
  else {
    last = time;
    seq = 0;
  }
  return `${time}${seq.toString(16).padStart(3, '0').slice(-3)}${randomHex(9)}`;
}

/** The creation time (ms since 1970) encoded in a job id. */
export function jobIdTime(id: string): number {
  return parseInt(id.slice(0, 12), 16);
}
