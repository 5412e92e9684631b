// bench/relay.ts's traceEnds: a relayed session's start and end on one clock, read from
// both ends' MAILBAG_TRACE lines (the format lib/cli/sync.ts, serve.ts, the transports and
// lib/session/session.ts write).

import { describe, expect, it } from 'vitest';
import { traceEnds } from '../../../bench/relay.js';

const serve = `12:17:50.675 serve: process started; 12:17:50.705 configuration loaded
12:17:50.718 hub > HELLO mailbag-session 1
{"site":"hub"}
12:17:50.740 hub < HELLO mailbag-session 1
{"site":"home"}
12:17:51.225 hub > ACK {"bag":"ea53","jobs":334,"duplicates":0}
12:17:51.225 hub > BYE 
12:17:51.228 hub < BYE 
12:17:51.250 serve: session over
12:17:51.256 serve: stage worker stopped
`;
const syncCommand = `12:17:50.221 sync: process started; 12:17:50.247 configuration loaded
12:17:50.259 command: ssh spawned (pid 4242)
12:17:50.267 home > HELLO mailbag-session 1
12:17:51.226 home < BYE 
12:17:51.227 home > BYE 
12:17:51.270 command: ssh exited (status 0)
12:17:51.274 sync: session over
`;

describe('traceEnds', () => {
  it("gives the start's steps after sync's start and the end's after serve's BYE (command transport)", () => {
    expect(traceEnds(serve, syncCommand)).toBe(
      "start (s after sync's): sync's configuration +0.026, ssh spawned +0.038, serve started +0.454, serve's configuration +0.484, serve's HELLO +0.497, sync's HELLO read +0.519; " +
        "end (s after serve's BYE): serve's session over +0.025, its stage worker stopped +0.031, ssh exited +0.045, sync's session over +0.049",
    );
  });

  it("names ssh2's early TCP connection instead, and leaves out the steps a trace lacks", () => {
    const ssh2 = syncCommand.replace(/.*command: ssh spawned.*\n/, '12:17:50.248 ssh: opening a TCP connection to 127.0.0.1:22 before ssh2 is loaded\n').replace(/.*command: ssh exited.*\n/, '');
    const line = traceEnds(serve.replace(/.*stage worker stopped.*\n/, ''), ssh2);
    expect(line).toContain('TCP opened +0.027');
    expect(line).not.toContain('ssh spawned');
    expect(line).not.toContain('ssh exited');
    expect(line).not.toContain('stage worker');
    expect(line).toContain("sync's session over +0.049");
  });

  it("says nothing without sync's start or serve's BYE", () => {
    expect(traceEnds(serve, syncCommand.replace(/.*process started.*\n/, ''))).toBeUndefined();
    expect(traceEnds(serve.replace(/.*> BYE.*\n/, ''), syncCommand)).toBeUndefined();
  });
});
