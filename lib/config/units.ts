// Durations ("30s", "15m", "5d") and sizes ("64M", "1G", 1048576) as written in the
// configuration file. Pure: each parser returns the number or a short description of
// what is wrong, and the caller names the file and key.

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
};

/** `"30s"` → 30000 (milliseconds); a string naming the problem when it is not a duration. */
export function parseDuration(text: string): number | string {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$/.exec(text.trim());
  if (!m) return `"${text}" is not a duration: write a number and a unit (ms, s, m, h, d, w), like "30s" or "5d"`;
  const ms = Math.round(Number(m[1]) * DURATION_UNITS[m[2]!]!);
  if (!Number.isSafeInteger(ms)) return `"${text}" is too long a duration`;
  return ms;
}

/** `"64M"` → 67108864 (bytes, binary multiples); a plain integer is bytes. */
export function parseSize(value: string | number | bigint): number | string {
  if (typeof value === 'number' || typeof value === 'bigint') {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 0) return `${String(value)} is not a size in bytes`;
    return n;
  }
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(value.trim());
  if (!m) return `"${value}" is not a size: write bytes or a number and K, M, G or T, like "64M"`;
  const bytes = Math.floor(Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!);
  if (!Number.isSafeInteger(bytes)) return `"${value}" is too large a size`;
  return bytes;
}

/** The inverse, for messages and `mailbag status`: 67108864 → "64M". */
export function formatSize(bytes: number): string {
  for (const [unit, n] of [['T', 1024 ** 4], ['G', 1024 ** 3], ['M', 1024 ** 2], ['K', 1024]] as const) {
    if (bytes >= n) {
      const v = bytes / n;
      return `${Number.isInteger(v) ? v : v.toFixed(1)}${unit}`;
    }
  }
  return `${bytes}`;
}

/** 90000 → "1m30s"; used for ages in `mailbag status`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  let s = Math.floor(ms / 1000);
  const parts: string[] = [];
  for (const [unit, n] of [['d', 86400], ['h', 3600], ['m', 60]] as const) {
    if (s >= n) {
      parts.push(`${Math.floor(s / n)}${unit}`);
      s %= n;
    }
    if (parts.length === 2) break;
  }
  if (parts.length < 2 && s > 0) parts.push(`${s}s`);
  return parts.join('');
}
