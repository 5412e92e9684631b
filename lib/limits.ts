// Every cap mailbag enforces, each with why. Configuration may lower or raise the
// ones marked configurable; the rest protect parsers from hostile input.

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

export const LIMITS = {
  /** default largest message (payload) accepted into a job; configurable (limits.max_message_size) */
  maxMessageSize: 64 * MiB,
  /** hard ceiling for a job payload whatever the configuration says: a bag entry larger than this is hostile */
  maxJobSizeCeiling: 4 * GiB,
  /** a bag's job entry name (the ustar name field holds 100 bytes; longer would need pax or GNU headers, which bags refuse) */
  maxBagEntryName: 100,
  /** default cap on a bag's decompressed bytes (tar headers included) when the caller passes none; configurable (limits.max_bag_expanded) */
  maxBagExpanded: 1 * GiB,
  /** default cap on entries in one bag when the caller passes none; configurable (limits.max_jobs_per_bag) */
  maxJobsPerBag: 10000,
  /** a job header (command, arguments, envelope) fits in this: it is JSON on one line */
  maxJobHeader: 1 * MiB,
  /** recipients (arguments) in one job: sendmail and Postfix handle far fewer per message comfortably */
  maxRecipients: 1000,
  /** one address: RFC 5321 path limit is 256 octets; leave room for bang paths and quoting */
  maxAddressLength: 1000,
  /** one argument of a job command */
  maxArgLength: 1000,
  /** a UUCP From_ envelope line; sendmail's rmail refuses 2048 bytes or more */
  maxFromLine: 2047,
  /** `>From` continuation lines in one envelope (each adds a bang-path hop) */
  maxFromLines: 64,
  /** a BSMTP command line (MAIL, RCPT…); RFC 5321 says 512, ESMTP parameters need more */
  maxBsmtpCommandLine: 4 * KiB,
  /** a line of message text inside BSMTP DATA; RFC 5321 says 1000, real mail has longer, Exim takes 5000+ */
  maxBsmtpTextLine: 1 * MiB,
  /** transactions in one BSMTP job */
  maxBsmtpTransactions: 10000,
  /** a peer or site name: [a-z0-9][a-z0-9.-]* */
  maxNameLength: 64,
  /** how long a partial tmp file of a dead process is kept before cleanup removes it anyway (pid reuse) */
  staleTmpMs: 24 * 60 * 60 * 1000,
} as const;

export const UNITS = { KiB, MiB, GiB } as const;
