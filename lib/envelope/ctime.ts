// The 24-character ctime(3) date of a UUCP From_ line, always in UTC:
// `Sun Nov 22 04:10:00 2026` (day of month padded with a space, `Nov  2`).
// Pure; the caller passes the clock's value in.

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

function two(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/**
 * Format `date` as ctime(3) does, in UTC, without the trailing newline. Always 24
 * characters; a date outside the years 1000–9999 (or an invalid Date) throws RangeError,
 * because it could not keep that width.
 */
export function formatCtime(date: Date): string {
  const t = date.getTime();
  const year = date.getUTCFullYear();
  if (!Number.isFinite(t) || year < 1000 || year > 9999) {
    throw new RangeError(`ctime date out of range: ${String(date)}`);
  }
  const day = date.getUTCDate();
  return (
    `${DAYS[date.getUTCDay()]} ${MONTHS[date.getUTCMonth()]} ${day < 10 ? ` ${day}` : day} ` +
    `${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())} ${year}`
  );
}
