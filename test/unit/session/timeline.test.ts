// bench/relay.ts's traceTimeline: where a relayed session's time went, read from both
// ends' MAILBAG_TRACE lines (the format lib/session/session.ts and the CLIs write).

import { describe, expect, it } from 'vitest';
import { traceTimeline } from '../../../bench/relay.js';

const serve = `12:17:50.675 serve: process started; 12:17:50.705 configuration loaded
12:17:50.718 hub > HELLO mailbag-session 1
{"site":"hub"}
12:17:50.720 hub < HELLO mailbag-session 1
{"site":"home"}
12:17:50.754 hub - received all of 53eeef3b8096
12:17:50.875 hub > ACK {"bag":"53ee","jobs":34,"duplicates":0}
12:17:51.152 hub - received all of ea5393002c04
12:17:51.187 hub > ACK {"bag":"9f37","jobs":488,"duplicates":0}
12:17:51.225 hub > ACK {"bag":"ea53","jobs":334,"duplicates":0}
12:17:51.225 hub > BYE 
12:17:51.298 hub < BYE 
`;
const sync = `12:17:50.221 sync: process started; 12:17:50.247 configuration loaded
12:17:50.267 home > HELLO mailbag-session 1
12:17:51.229 home < BYE 
12:17:51.263 home - removed 488 jobs of 9f379690484a
12:17:51.298 home - removed 334 jobs of ea5393002c04
12:17:51.298 home > BYE 
`;

describe('traceTimeline', () => {
  it('reads the HELLO, the last byte and ACK, both BYEs and the last removal', () => {
    expect(traceTimeline(serve, sync)).toBe(
      "HELLO at +0.499 s, HELLO→serve's BYE 0.505 s, last byte→last ACK 0.073 s, last ACK→sync's BYE 0.073 s, sync's last removal +0.000 s from its BYE",
    );
  });

  it("adds sync's BYE to its exit when the bench saw the exit, on the trace's clock (UTC time of day)", () => {
    expect(traceTimeline(serve, sync, new Date('2026-11-22T12:17:51.341Z'))).toBe(
      "HELLO at +0.499 s, HELLO→serve's BYE 0.505 s, last byte→last ACK 0.073 s, last ACK→sync's BYE 0.073 s, sync's last removal +0.000 s from its BYE, sync's BYE→its exit 0.043 s",
    );
    // an exit before the BYE (another day's clock) gives no figure
    expect(traceTimeline(serve, sync, new Date('2026-11-22T00:00:01.000Z'))).not.toContain('exit');
  });

  it('says nothing when a side has no BYE (a broken session) or nothing was removed', () => {
    expect(traceTimeline(serve, sync.replace(/.*home > BYE.*\n/g, ''))).toBeUndefined();
    expect(traceTimeline(serve, sync.replace(/.*removed.*\n/g, ''))).toBeUndefined();
  });
});
