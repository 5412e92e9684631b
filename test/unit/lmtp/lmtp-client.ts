// A tiny LMTP client for the tests: connect to a unix socket or a TCP port, send
// command lines, read (multi-line) replies, send a message with DATA and read one
// reply per accepted recipient. Every read is bounded by a timeout.

import { connect, type Socket } from 'node:net';

export interface Reply {
  code: number;
  lines: string[];
  /** all lines joined with "\n", without the codes */
  text: string;
  /** the whole reply as received (first line) */
  raw: string;
}

export class LmtpClient {
  private buf = '';
  private readonly replies: Reply[] = [];
  private waiters: (() => void)[] = [];
  private closedFlag = false;

  private constructor(private readonly sock: Socket, private readonly timeoutMs: number) {
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      this.buf += d;
      this.parse();
    });
    sock.on('close', () => {
      this.closedFlag = true;
      this.wake();
    });
    sock.on('error', () => undefined);
  }

  static connect(where: string | number, timeoutMs = 10_000): Promise<LmtpClient> {
    return new Promise((resolve, reject) => {
      const sock = typeof where === 'number' ? connect(where, '127.0.0.1') : connect(where);
      sock.once('error', reject);
      sock.once('connect', () => {
        sock.off('error', reject);
        resolve(new LmtpClient(sock, timeoutMs));
      });
    });
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private parse(): void {
    let lines: string[] = [];
    for (;;) {
      const nl = this.buf.indexOf('\r\n');
      if (nl < 0) break;
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 2);
      lines.push(line);
      if (line.length < 4 || line[3] === ' ') {
        this.replies.push({
          code: Number(line.slice(0, 3)),
          lines: lines.map((l) => l.slice(4)),
          text: lines.map((l) => l.slice(4)).join('\n'),
          raw: lines[0]!,
        });
        lines = [];
      }
    }
    if (lines.length) this.buf = lines.map((l) => `${l}\r\n`).join('') + this.buf;
    this.wake();
  }

  /** the next reply; rejects after the timeout or when the connection closed first */
  async read(): Promise<Reply> {
    const deadline = Date.now() + this.timeoutMs;
    while (this.replies.length === 0) {
      if (this.closedFlag) throw new Error('connection closed while waiting for a reply');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${this.timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.replies.shift()!;
  }

  write(data: string | Buffer): void {
    this.sock.write(data);
  }

  /** write and wait until the socket takes more (backpressure), bounded by the timeout */
  async writeDrained(data: string | Buffer): Promise<void> {
    if (this.sock.write(data)) return;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`socket did not drain within ${this.timeoutMs} ms`)), this.timeoutMs);
      this.sock.once('drain', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  async cmd(line: string): Promise<Reply> {
    this.sock.write(`${line}\r\n`);
    return this.read();
  }

  /** DATA, the message (CRLF made, dot-stuffed here), ".", then one reply per recipient. */
  async data(message: Buffer | string, recipients: number): Promise<Reply[]> {
    const go = await this.cmd('DATA');
    if (go.code !== 354) return [go];
    this.sock.write(stuff(message));
    this.sock.write('.\r\n');
    const out: Reply[] = [];
    for (let i = 0; i < recipients; i++) out.push(await this.read());
    return out;
  }

  /** LHLO + MAIL + RCPTs; returns the RCPT replies */
  async envelope(from: string, rcpts: string[]): Promise<Reply[]> {
    const m = await this.cmd(from);
    if (m.code !== 250) throw new Error(`MAIL refused: ${m.raw}`);
    const out: Reply[] = [];
    for (const r of rcpts) out.push(await this.cmd(r));
    return out;
  }

  end(): void {
    this.sock.end();
  }

  destroy(): void {
    this.sock.destroy();
  }
}

/** LF or CRLF text → CRLF, every line starting with "." gets another. */
export function stuff(message: Buffer | string): Buffer {
  const text = Buffer.isBuffer(message) ? message.toString('latin1') : Buffer.from(message, 'utf8').toString('latin1');
  let crlf = text.replace(/\r?\n/g, '\r\n');
  if (!crlf.endsWith('\r\n')) crlf += '\r\n';
  return Buffer.from(crlf.replace(/^\./gm, '..'), 'latin1');
}
