import { expect, it } from 'vitest';
import { PIPE_BUF, pipePieces } from '../../../lib/lmtp/log-pipe.js';

it('cuts the log text at line ends into pieces of at most PIPE_BUF bytes; an overlong line stays one piece', () => {
  const line = (n: number, c: string): string => `${c.repeat(n - 1)}\n`;
  const text = line(1000, 'a') + line(1000, 'b') + line(1000, 'c') + line(1000, 'd') + line(1000, 'e') + line(5000, 'f') + line(10, 'g');
  const pieces = pipePieces(text);
  expect(Buffer.concat(pieces).toString()).toBe(text);
  for (const p of pieces) expect(p[p.length - 1]).toBe(10);
  expect(pieces.map((p) => p.length)).toEqual([4000, 1000, 5000, 10]);
  expect(pieces.filter((p) => p.length > PIPE_BUF).map((p) => p.toString().split('\n').length - 1)).toEqual([1]);
  expect(pipePieces('short\n').map(String)).toEqual(['short\n']);
});
