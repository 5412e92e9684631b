import { describe, expect, it } from 'vitest';
import { encodeXtext, envelopeLines, formatParams, wireAddress } from '../../../lib/lmtp/envelope.js';

describe('envelope lines', () => {
  it('re-encodes xtext and keeps parameter order and flags', () => {
    expect(encodeXtext('a+b=c d\u00e9')).toBe('a+2Bb+3Dc+20d+E9');
    expect(formatParams({ SIZE: '12', SMTPUTF8: true, ENVID: 'x=y' })).toBe(' SIZE=12 SMTPUTF8 ENVID=x+3Dy');
    expect(formatParams(false)).toBe('');
  });
  it('gives an IDN domain back in ASCII unless SMTPUTF8', () => {
    expect(wireAddress('u@bücher.example', false)).toBe('u@xn--bcher-kva.example');
    expect(wireAddress('u@bücher.example', true)).toBe('u@bücher.example');
    expect(wireAddress('u@Example.ORG', false)).toBe('u@Example.ORG');
  });
  it('builds MAIL, RCPT… and DATA with <> for the null sender', () => {
    const l = envelopeLines({ address: '', args: { RET: 'FULL' } }, [{ address: 'a@x.test', args: { NOTIFY: 'NEVER' } }], false);
    expect(l.prefix).toBe('MAIL FROM:<> RET=FULL\nRCPT TO:<a@x.test> NOTIFY=NEVER\nDATA\n');
    expect(l.sender).toBe('');
  });
});
