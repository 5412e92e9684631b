// fidelity10: which sendmail is behind delivery.sendmail, from its real answer to `-bV`
// (each text below is what the real program printed here: Debian 12's sendmail-bin
// 8.17, nullmailer 2.2, OpenSMTPD 6.8's smtpctl, msmtp 1.8.23, unpacked into a private
// directory), and the flags each is given. Before, any answer naming "sendmail" meant
// sendmail 8: nullmailer and OpenSMTPD were taken for it (and msmtp would have been given
// -V, which it refuses with exit 64, a permanent failure), while sendmail 8 itself, which
// does not name itself, was 'unknown' and lost its DSN flags.
import { describe, expect, it } from 'vitest';
import { classifyVersionProbe } from '../../../lib/deliver/mta.js';
import { mtaTakesDsnFlags, sendmailArgv } from '../../../lib/deliver/sendmail.js';

const NULLMAILER = `usage: sendmail [flags] [recipients] <message
Nullmailer sendmail emulator
  -B         Ignored
  -bm        Read mail from standard input (default)
  -bs        Handle SMTP commands on standard input
  -N         Ignored
  -R         Ignored
  -V         Ignored
/usr/sbin/sendmail: unknown option string: '-bV'
`;

describe('MTA kinds from -bV', () => {
  it('sendmail 8, OpenSMTPD, nullmailer and msmtp are told apart', () => {
    expect(classifyVersionProbe(64, 'Invalid operation mode V\n', '/usr/libexec/sendmail/sendmail')).toBe('sendmail');
    expect(classifyVersionProbe(1, 'usage: sendmail [-tv] [-f from] [-F name] to ...\n', '/usr/sbin/smtpctl')).toBe('opensmtpd');
    // installed without its setgid bit (or run by a test): the same program
    expect(classifyVersionProbe(1, 'sendmail: this program must be setgid opensmtpq\n', '/usr/sbin/sendmail')).toBe('opensmtpd');
    expect(classifyVersionProbe(1, NULLMAILER, '/usr/sbin/sendmail')).toBe('nullmailer');
    expect(classifyVersionProbe(64, 'msmtp: unsupported operation mode bV\n', '/usr/bin/msmtp')).toBe('msmtp');
    expect(classifyVersionProbe(64, 'msmtp: unsupported operation mode bV\n', '/usr/sbin/sendmail')).toBe('msmtp');
    // a program that only names itself sendmail: the plain interface
    expect(classifyVersionProbe(1, 'usage: sendmail [options] recipient...\n', '/usr/local/sbin/sendmail')).toBe('unknown');
  });

  const dsn = { sender: 's@x', recipients: ['q@z'], notify: 'SUCCESS,DELAY', ret: 'HDRS', envid: 'e1' };
  it('DSN flags go to sendmail 8, Postfix and OpenSMTPD only', () => {
    for (const mta of ['sendmail', 'postfix', 'opensmtpd'] as const) {
      expect(mtaTakesDsnFlags(mta)).toBe(true);
      expect(sendmailArgv(dsn, mta)).toEqual(['-oi', '-f', 's@x', '-N', 'success,delay', '-R', 'hdrs', '-V', 'e1', '--', 'q@z']);
    }
    // msmtp refuses -V (exit 64) and fails a message whose -N its server cannot carry;
    // nullmailer ignores all three: the plain interface
    for (const mta of ['msmtp', 'nullmailer', 'unknown'] as const) {
      expect(mtaTakesDsnFlags(mta)).toBe(false);
      expect(sendmailArgv(dsn, mta)).toEqual(['-oi', '-f', 's@x', '--', 'q@z']);
      expect(sendmailArgv({ sender: '', recipients: ['q@z'] }, mta)).toEqual(['-oi', '-f', '<>', '--', 'q@z']);
    }
  });

  it("OpenSMTPD's enqueuer writes ENVID= as given: an ENVID xtext would change is left out", () => {
    expect(sendmailArgv({ ...dsn, envid: 'a+b' }, 'opensmtpd')).not.toContain('-V');
    expect(sendmailArgv({ ...dsn, envid: 'a+b' }, 'sendmail')).toContain('-V');
  });
});
