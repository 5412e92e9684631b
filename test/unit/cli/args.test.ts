import { describe, expect, it } from 'vitest';
import { MailbagError } from '../../../lib/errors.js';
import { parseEnqueueArgs } from '../../../lib/cli/enqueue-args.js';
import { parseUuxArgs } from '../../../lib/cli/uux-args.js';
import { enqueueArgv } from '../../../lib/cli/enqueue.js';
import { parseRmailArgs } from '../../../lib/cli/rmail.js';

function refusal(f: () => unknown): MailbagError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(MailbagError);
    return err as MailbagError;
  }
  throw new Error('no error');
}

describe('mailbag enqueue argv', () => {
  it.each([
    [['hub', '-f', 'a@x', '--', 'b@y', 'c@z'], { peer: 'hub', sender: 'a@x', recipients: ['b@y', 'c@z'] }],
    [['hub', '-f', 'a@x', 'b@y'], { peer: 'hub', sender: 'a@x', recipients: ['b@y'] }],
    [['-f', 'a@x', 'hub', 'b@y'], { peer: 'hub', sender: 'a@x', recipients: ['b@y'] }],
    [['hub', '-fa@x', '--', 'b@y'], { peer: 'hub', sender: 'a@x', recipients: ['b@y'] }],
    [['hub', '-f', '<a@x>', '--', 'b@y'], { peer: 'hub', sender: 'a@x', recipients: ['b@y'] }],
    [['hub', '-f', '', '--', 'b@y'], { peer: 'hub', sender: '', recipients: ['b@y'] }],
    [['hub', '-f', '<>', '--', 'b@y'], { peer: 'hub', sender: '', recipients: ['b@y'] }],
    [['hub', '--from=a@x', '-i', '-oi', '--', 'b@y'], { peer: 'hub', sender: 'a@x', recipients: ['b@y'] }],
    [['hub', '-f', 'a@x', '--', '-b@y'], { peer: 'hub', sender: 'a@x', recipients: ['-b@y'] }],
    [['hub', '-f', 'a@x'], { peer: 'hub', sender: 'a@x', recipients: [] }],
    [['--config', '/c.toml', 'hub', '-f', 'a', 'b'], { configPath: '/c.toml', peer: 'hub' }],
    [['hub', '--config=/c.toml', '-f', 'a', 'b'], { configPath: '/c.toml', peer: 'hub' }],
  ])('%j', (argv, want) => {
    const r = parseEnqueueArgs(argv);
    expect(r).toMatchObject({ kind: 'message', stripFromLine: true, ...want });
  });

  it('--bsmtp takes the envelope from the stream', () => {
    expect(parseEnqueueArgs(['hub', '--bsmtp'])).toEqual({ kind: 'bsmtp', peer: 'hub', configPath: undefined });
    expect(parseEnqueueArgs(['--bsmtp', '--config', 'x', 'hub'])).toEqual({ kind: 'bsmtp', peer: 'hub', configPath: 'x' });
  });

  it('--help', () => expect(parseEnqueueArgs(['--help'])).toEqual({ kind: 'help' }));

  it.each([
    [['enqueue', 'hub', '-f', 'a', 'b'], ['hub', '-f', 'a', 'b']],
    [['--config', '/c.toml', 'enqueue', 'hub'], ['--config', '/c.toml', 'hub']],
    [['--config=/c.toml', '--config', '--config=x', 'enqueue', '--', '-x'], ['--config=/c.toml', '--config', '--config=x', '--', '-x']],
  ])('mailbag.cjs runs `mailbag %j` as enqueue main(%j), leading --config moved as main.ts does', (argv, want) => {
    expect(enqueueArgv(argv)).toEqual(want);
  });

  it('enqueueArgv refuses what is not an enqueue command line', () => {
    expect(() => enqueueArgv(['status', 'enqueue'])).toThrow(/not an enqueue command line/);
    expect(() => enqueueArgv(['--config'])).toThrow(/--config needs a FILE/);
  });

  it.each([
    [[], /no PEER/],
    [['hub', 'b@y'], /no -f SENDER/],
    [['hub', '-f'], /-f needs a SENDER/],
    [['hub', '--config'], /--config needs a FILE/],
    [['hub', '-f', 'a', '-x', 'b'], /unknown option "-x"/],
    [['hub', '-f', 'a', '--bogus'], /unknown option "--bogus"/],
    [['hub', '--bsmtp', '-f', 'a'], /--bsmtp takes the envelope from the BSMTP stream/],
    [['hub', '--bsmtp', 'b@y'], /--bsmtp takes the envelope/],
  ])('%j is a usage error (75: the admin fixes the transport, the MTA keeps the mail)', (argv, what) => {
    const e = refusal(() => parseEnqueueArgs(argv));
    expect(e.code).toBe('usage');
    expect(e.exitCode).toBe(75);
    expect(e.message).toMatch(what);
  });
});

describe('mailbag-uux argv: the lines MTAs write', () => {
  const split = (line: string): string[] => line.split(' ');
  it.each([
    // Postfix master.cf.dist, several recipients
    ['-r -n -z -afrom@a.example - hub!rmail (r1@b.example) (r2@c.example)', 'hub', 'from@a.example', ['r1@b.example', 'r2@c.example'], 'none'],
    // Postfix with null_sender= : the glued -a is empty
    ['-r -n -z -a - hub!rmail (r1@b.example)', 'hub', '', ['r1@b.example'], 'none'],
    // separate -a
    ['-r -n -z -a from@a.example - hub!rmail (r1@b.example)', 'hub', 'from@a.example', ['r1@b.example'], 'none'],
    // -p instead of -
    ['-r -z -afrom@a.example -p hub!rmail (r1@b.example)', 'hub', 'from@a.example', ['r1@b.example'], 'failure'],
    // -z alone: mail on failure (Taylor's default anyway)
    ['-r -z -afrom@a.example - hub!rmail (r1@b.example)', 'hub', 'from@a.example', ['r1@b.example'], 'failure'],
    // -n wins over -z whatever the order
    ['-r -z -n -afrom@a.example - hub!rmail (r1@b.example)', 'hub', 'from@a.example', ['r1@b.example'], 'none'],
    // clustered flags
    ['-rnz -afrom@a.example - hub!rmail (r1@b.example)', 'hub', 'from@a.example', ['r1@b.example'], 'none'],
    // sendmail MAILER(uucp): uux - -r -z -a$g -gC $h!rmail ($u)
    ['- -r -z -ahost!user -gC hub!rmail (user@b.example) (x!y)', 'hub', 'host!user', ['user@b.example', 'x!y'], 'failure'],
    // sendmail with an empty $g
    ['- -r -z -a -gC hub!rmail (user@b.example)', 'hub', '', ['user@b.example'], 'failure'],
    // Exim Debian README: uux - -r -a$sender_address -gC $domain_data!rmail $pipe_addresses
    ['- -r -afrom@a.example -gC hub.example.org!rmail r1@b.example r2@b.example', 'hub.example.org', 'from@a.example', ['r1@b.example', 'r2@b.example'], 'failure'],
    // Exim with an empty sender_address
    ['- -r -a -gC hub!rmail r1@b.example', 'hub', '', ['r1@b.example'], 'failure'],
    // Exim spec 20.8: uux -r - host!rmail local_part (no -a: the sender comes from the From_ line)
    ['-r - hub!rmail user', 'hub', undefined, ['user'], 'failure'],
    // separate -g, -x level, -b, -c, -C, -W, -j
    ['-r -g C -x 9 -b -c -C -W -j -afrom@a.example - hub!rmail (r@b)', 'hub', 'from@a.example', ['r@b'], 'failure'],
    // -a as the last option before the command
    ['-r - -a hub!rmail (r@b)', 'hub', '', ['r@b'], 'failure'],
    // an <addr> sender loses its brackets
    ['-r -a<from@a.example> - hub!rmail (r@b)', 'hub', 'from@a.example', ['r@b'], 'failure'],
    // only one pair of parentheses is stripped
    ['-r -afrom@a - hub!rmail ((r@b))', 'hub', 'from@a', ['(r@b)'], 'failure'],
    // an empty (): an empty recipient, refused later by the address check
    ['-r -afrom@a - hub!rmail ()', 'hub', 'from@a', [''], 'failure'],
    // --config before uux options
    ['--config /etc/x.toml -r -afrom@a - hub!rmail (r@b)', 'hub', 'from@a', ['r@b'], 'failure'],
  ])('uux %s', (line, peer, sender, recipients, notify) => {
    const r = parseUuxArgs(split(line));
    expect(r.request).toMatchObject({ kind: 'message', peer, recipients, stripFromLine: true });
    expect((r.request as { sender: unknown }).sender).toBe(sender);
    expect((r as { notify: string }).notify).toBe(notify);
  });

  it('details: -j, -g, --config', () => {
    const r = parseUuxArgs(split('--config=/c.toml -j -gA -r -afrom@a - hub!rmail (r@b)'));
    expect(r).toEqual({
      request: { kind: 'message', peer: 'hub', sender: 'from@a', recipients: ['r@b'], stripFromLine: true, configPath: '/c.toml' },
      printJobId: true, grade: 'A', notify: 'failure',
    });
  });

  it('the command and its arguments in one word, as uux also allows', () => {
    const r = parseUuxArgs(['-r', '-afrom@a', '-', 'hub!rmail (r1@b) (r2@c)']);
    expect(r.request).toMatchObject({ kind: 'message', peer: 'hub', recipients: ['r1@b', 'r2@c'] });
  });

  it.each([
    '- -r hub!rsmtp',
    '-r - hub!rsmtp',
    '-r -n -z -afrom@a - hub!rsmtp',
    '- -r -gC hub!rsmtp',
  ])('rsmtp: uux %s is a BSMTP job', (line) => {
    expect(parseUuxArgs(split(line)).request).toEqual({ kind: 'bsmtp', peer: 'hub', configPath: undefined });
  });

  it.each([
    ['-r -afrom@a - hub!rmail r!file', 'bad-recipient', 64, /is a uux file reference/],
    ['-r -afrom@a - hub!rmail (r@b) other!path/file', 'bad-recipient', 64, /file reference/],
    ['-r -afrom@a - hub!rmail >out', 'bad-recipient', 64, /redirection/],
    ['-r -afrom@a hub!rmail (r@b)', 'usage', 75, /stdin is not spooled/],
    ['-r -afrom@a -', 'usage', 75, /no command given/],
    ['-r -afrom@a - rmail (r@b)', 'usage', 75, /names no peer/],
    ['-r -afrom@a - !rmail (r@b)', 'usage', 75, /names no peer/],
    ['-r -afrom@a - a!b!rmail (r@b)', 'usage', 75, /several hosts/],
    ['-r -afrom@a - hub!rnews', 'usage', 75, /"rnews" is not supported/],
    ['-r - hub!rsmtp (r@b)', 'usage', 75, /takes no arguments/],
    ['-r -q -afrom@a - hub!rmail (r@b)', 'usage', 75, /unknown uux option -q/],
    ['-r --bogus - hub!rmail (r@b)', 'usage', 75, /unknown option "--bogus"/],
    ['-r -I /etc/uucp/config - hub!rmail (r@b)', 'usage', 75, /use --config/],
    ['-r -s status - hub!rmail (r@b)', 'usage', 75, /status files/],
    ['-r -u root - hub!rmail (r@b)', 'usage', 75, /requesting user/],
    ['-r -g !! - hub!rmail (r@b)', 'usage', 75, /-g needs a grade/],
    ['-r -g', 'usage', 75, /-g needs a value/],
  ])('uux %s is refused (%s, %d)', (line, code, exit, what) => {
    const e = refusal(() => parseUuxArgs(split(line)));
    expect(e.code).toBe(code);
    expect(e.exitCode).toBe(exit);
    expect(e.message).toMatch(what);
  });

  it('--help', () => expect(parseUuxArgs(['--help']).request).toEqual({ kind: 'help' }));
});

/** What a parser makes of argv: its result, or the error's class, code, exit status and exact message. */
function outcome(f: () => unknown): unknown {
  try {
    return { ok: f() };
  } catch (err) {
    expect(err).toBeInstanceOf(MailbagError);
    const e = err as MailbagError;
    return { error: { name: e.name, code: e.code, exitCode: e.exitCode, message: e.message } };
  }
}

describe('the options the three front doors share (--, --help/-h, --config FILE), to the letter', () => {
  const ENQUEUE_TAIL = ' (usage: mailbag enqueue PEER -f SENDER -- RECIPIENT... | mailbag enqueue PEER --bsmtp)';
  const enqueueUsage = (message: string): unknown => ({ error: { name: 'MailbagError', code: 'usage', exitCode: 75, message: `${message}${ENQUEUE_TAIL}` } });
  const msg = (peer: string, sender: string, recipients: string[], configPath?: string): unknown => ({
    ok: { kind: 'message', peer, sender, recipients, stripFromLine: true, configPath },
  });
  it.each<[string[], unknown]>([
    [['-h'], { ok: { kind: 'help' } }],
    [['hub', '-f', 'a', '--config', 'c', '--help', '-x'], { ok: { kind: 'help' } }],
    [['hub', '-f', 'a', '--', '--help', '-h'], msg('hub', 'a', ['--help', '-h'])],
    [['hub', '-f', 'a', '--', '--config', 'c'], msg('hub', 'a', ['--config', 'c'])],
    [['--config'], enqueueUsage('--config needs a FILE')],
    [['hub', '-f', 'a', '--config'], enqueueUsage('--config needs a FILE')],
    [['--config', '--', 'hub', '-f', 'a'], msg('hub', 'a', [], '--')],
    [['--config', '--help', 'hub', '-f', 'a'], msg('hub', 'a', [], '--help')],
    [['--config=', 'hub', '-f', 'a'], msg('hub', 'a', [], '')],
    [['--config', 'one', '--config=two', 'hub', '-f', 'a'], msg('hub', 'a', [], 'two')],
    [['--', 'hub', '-f', 'a'], enqueueUsage('no PEER given')],
    [['hub', '-f', 'a', '-', 'b'], msg('hub', 'a', ['-', 'b'])],
    [['hub', '-f', 'a', '--'], msg('hub', 'a', [])],
  ])('mailbag enqueue %j', (argv, want) => {
    expect(outcome(() => parseEnqueueArgs(argv))).toEqual(want);
  });

  const uuxUsage = (message: string): unknown => ({ error: { name: 'MailbagError', code: 'usage', exitCode: 75, message } });
  const uux = (recipients: string[], configPath?: string): unknown => ({
    ok: { request: { kind: 'message', peer: 'hub', sender: 'a', recipients, stripFromLine: true, configPath }, printJobId: false, grade: undefined, notify: 'failure' },
  });
  it.each<[string[], unknown]>([
    [['-h'], { ok: { request: { kind: 'help' } } }],
    [['-r', '-aa', '--config', 'c', '-h', 'hub!rmail'], { ok: { request: { kind: 'help' } } }],
    [['--config'], uuxUsage('--config needs a FILE')],
    [['-r', '-aa', '-', '--config'], uuxUsage('--config needs a FILE')],
    [['--config', '-r', '-aa', '-', 'hub!rmail', '(r@b)'], uux(['r@b'], '-r')],
    [['--config=', '-aa', '-', 'hub!rmail', '(r@b)'], uux(['r@b'], '')],
    [['--config', 'one', '--config=two', '-aa', '-', 'hub!rmail', '(r@b)'], uux(['r@b'], 'two')],
    [['-aa', '-', '--', 'hub!rmail', '(r@b)'], uux(['r@b'])],
    [['-aa', '--stdin', 'hub!rmail', '(r@b)'], uux(['r@b'])],
    [['-aa', '-', 'hub!rmail', '--help', '--config=x'], uux(['--help', '--config=x'])],
    [['-aa', '-', '--'], uuxUsage('no command given: expected PEER!rmail or PEER!rsmtp')],
    [['-aa', '--', '-', 'hub!rmail'], uuxUsage('command "-" names no peer: write PEER!rmail or PEER!rsmtp')],
  ])('mailbag-uux %j', (argv, want) => {
    expect(outcome(() => parseUuxArgs(argv))).toEqual(want);
  });

  const rmailHelp = (configPath?: string): unknown => ({ ok: { configPath, recipients: [], help: true } });
  const rmailArgs = (recipients: string[], configPath?: string): unknown => ({ ok: { configPath, recipients, help: false } });
  const rmailRefusal = (message: string): unknown => ({ error: { name: 'InputError', code: 'bad-recipient', exitCode: 64, message } });
  it.each<[string[], unknown]>([
    [[], rmailArgs([])],
    [['--help'], rmailHelp()],
    [['-h', 'a@y'], rmailHelp()],
    [['--config', '/c', '-D', 'd', '-h'], rmailHelp('/c')],
    [['--config'], { error: { name: 'MailbagError', code: 'usage', exitCode: 75, message: '--config needs a FILE' } }],
    [['--config', '/c', 'a@y'], rmailArgs(['a@y'], '/c')],
    [['--config=/c', '-T', 'a@y'], rmailArgs(['a@y'], '/c')],
    [['--config', '--', '--', '-a@y'], rmailArgs(['-a@y'], '--')],
    [['--config', 'one', '--config=two', 'a@y'], rmailArgs(['a@y'], 'two')],
    [['a@y', '--help', '--config', 'c'], rmailArgs(['a@y', '--help', '--config', 'c'])],
    [['--', '--help'], rmailArgs(['--help'])],
    [['-Ddom', '-T', '-D', 'x', 'a@y'], rmailArgs(['a@y'])],
    [['-D'], rmailRefusal('rmail: -D needs a domain')],
    [['-x', 'a@y'], rmailRefusal('rmail: unknown option or recipient beginning with "-": "-x"')],
    [['-'], rmailRefusal('rmail: unknown option or recipient beginning with "-": "-"')],
  ])('rmail %j', (argv, want) => {
    expect(outcome(() => parseRmailArgs(argv))).toEqual(want);
  });
});
