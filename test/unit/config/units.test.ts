import { describe, expect, it } from 'vitest';
import { formatDuration, formatSize, parseDuration, parseSize } from '../../../lib/config/units.js';

describe('units', () => {
  it.each([['30s', 30_000], ['15m', 900_000], ['5d', 432_000_000], ['1w', 604_800_000], [' 2h ', 7_200_000], ['10ms', 10]])(
    'duration %s', (text, ms) => expect(parseDuration(text)).toBe(ms));
  it.each(['30', 's', '5 days', '-1s', '1e3s', '30S'])('not a duration: %s', (text) => {
    expect(parseDuration(text)).toMatch(/not a duration/);
  });
  it.each([['64M', 67_108_864], ['1G', 1_073_741_824], ['10k', 10_240], ['512', 512], ['3KB', 3072], ['1.5M', 1_572_864]] as const)(
    'size %s', (text, bytes) => expect(parseSize(text)).toBe(bytes));
  it.each(['', 'M', '-1M', '1X', '1 megabyte'])('not a size: %j', (text) => expect(parseSize(text)).toMatch(/not a size/));
  it('sizes as numbers are bytes; negative and fractional ones are refused', () => {
    expect(parseSize(1000)).toBe(1000);
    expect(parseSize(-1)).toMatch(/not a size/);
    expect(parseSize(1.5)).toMatch(/not a size/);
  });
  it('formats back', () => {
    expect(formatSize(67_108_864)).toBe('64M');
    expect(formatSize(1536)).toBe('1.5K');
    expect(formatSize(12)).toBe('12');
    expect(formatDuration(90_000)).toBe('1m30s');
    expect(formatDuration(93_784_000)).toBe('1d2h');
    expect(formatDuration(500)).toBe('500ms');
    expect(formatDuration(3_600_000)).toBe('1h');
  });
});
