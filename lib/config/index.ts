// Loads and validates mailbag.toml. Search order: `--config FILE`, $MAILBAG_CONFIG,
// /etc/mailbag/mailbag.toml, else built-in defaults (the checkout's spool/). Every key
// is checked: an unknown key or a wrong type is a ConfigError naming the file, the key
// and what is wrong. Synchronous and cheap, because the enqueue front doors load it once
// per message (they are bundled into one file, so even the TOML parser costs no lookups).
// In a command run as its own process, started as root on a spool another user owns,
// loading the configuration is where the process becomes that user (lib/spool/owner.ts).

import { closeSync, fstatSync, openSync, readFileSync, readlinkSync, realpathSync, statSync, statfsSync, type Stats } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseToml } from 'smol-toml';
import { ConfigError } from '../errors.js';
import { LIMITS } from '../limits.js';
import { becomeSpoolOwner, ownerToBecome, spoolOwnerSwitchArmed } from '../spool/owner.js';
import { formatDuration, parseDuration, parseSize } from './units.js';
import type {
  Codec, Config, DeliveryConfig, DeliveryMethod, Endpoint, HostPort, LimitsConfig, LmtpConfig,
  MtaFlavour, PeerConfig, PeerTransport,
} from './types.js';

export type * from './types.js';
export { formatDuration, formatSize, parseDuration, parseSize } from './units.js';

/** The system-wide configuration file, used when neither --config nor $MAILBAG_CONFIG is given. */
export const SYSTEM_CONFIG = '/etc/mailbag/mailbag.toml';

/** A site or peer name: lower case letters, digits, dots and dashes. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9.-]*$/;
/** A job command or action name. */
const COMMAND_PATTERN = /^[a-z0-9][a-z0-9._-]*$/;
const BUILTIN_COMMANDS = ['rmail', 'rsmtp'];
/** The keys of a peer that only the built-in SSH client reads (transport = "ssh"). */
const SSH_ONLY_KEYS = ['host', 'port', 'user', 'identity', 'agent', 'known_hosts', 'remote_command', 'connect_timeout'];

// units of the defaults below (written out, not parsed: see Table.duration and Table.size)
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const DAY = 24 * 60 * MINUTE;
const MIB = 1024 * 1024;
/**
 * The longest duration that may become a timer: Node's timers hold at most 2^31 - 1 ms
 * (24.8 days) and fire after 1 ms for anything longer, so connect_timeout = "30d" failed
 * every connection at once and keepalive = "30d" sent a keepalive every millisecond.
 */
const MAX_TIMER_MS = 24 * DAY;

export interface LoadConfigOptions {
  /** `--config FILE` from the command line (relative to cwd) */
  path?: string | undefined;
  /** the environment ($MAILBAG_CONFIG); default process.env */
  env?: NodeJS.ProcessEnv;
  /** directory a relative --config or $MAILBAG_CONFIG is resolved against; default process.cwd() */
  cwd?: string;
  /** the system file to try third; default /etc/mailbag/mailbag.toml (tests point it elsewhere) */
  systemFile?: string;
  /** where the package lives, for the default spool; default packageRoot() (tests point it elsewhere) */
  packageRoot?: string;
}

/**
 * Find, read and validate the configuration (see the search order above). In a process
 * armed for it (lib/spool/owner.ts), started as root on a spool that belongs to another
 * user, the process becomes that user here, before anything else is opened, and the
 * configuration is read again as that user: the run is the one the owner would make
 * (a file the owner cannot read fails as it would for the owner; the defaults that
 * depend on HOME are the owner's).
 */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const asRoot = process.geteuid?.() === 0;
  const { config, file, st } = findConfig(options);
  // as root, before anything the file names is run or the spool's owner is taken on
  if (asRoot && file !== undefined) checkRootsFile(file, st!, config);
  if (!spoolOwnerSwitchArmed()) return config;
  let spool: string;
  try {
    spool = config.spool;
  } catch {
    return config; // no spool is set (an installed package): the command that needs one says so
  }
  const owner = becomeSpoolOwner(spool);
  if (!owner) return config;
  try {
    // read again as the owner: the file read now is checked too (the one checked above may
    // have been replaced since, by whoever may write a directory above it)
    const again = findConfig(options);
    if (asRoot && again.file !== undefined) checkRootsFile(again.file, again.st!, again.config, owner.uid);
    return again.config;
  } catch (err) {
    // say why root's command reads as another user (a file only root can read)
    if (err instanceof ConfigError) err.message += ` (read as uid ${owner.uid}${owner.user ? ` (${owner.user})` : ''}, the owner of the spool ${spool}, which this command started as root became)`;
    throw err;
  }
}

function findConfig(options: LoadConfigOptions): { config: Config; file: string | undefined; st?: Stats } {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  // packageRoot() only where the default spool is needed (validate, spoolNotSet): a
  // config that names its spool, as an MTA's front door's does, never makes the module's
  // URL and path (about 2M instructions per message in the front-door bundles)
  const root = options.packageRoot;
  const explicit = options.path ?? (env.MAILBAG_CONFIG || undefined);
  // `--config ""` (or `--config=`): resolved, it would be the current directory
  if (explicit === '') throw new ConfigError('--config names no file: give the path of the configuration file');
  if (explicit !== undefined) {
    const file = resolve(cwd, explicit);
    const { text, st } = readConfigFile(file, true)!;
    return { config: parseConfig(text, file, root), file, st };
  }
  const system = options.systemFile ?? SYSTEM_CONFIG;
  const read = readConfigFile(system, false);
  if (read === undefined) return { config: defaultConfig(root), file: undefined };
  return { config: parseConfig(read.text, system, root), file: system, st: read.st };
}

/** `uid N (name)`, the name from /etc/passwd when it has one (an error's words only) */
function uidName(uid: number): string {
  try {
    const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.split(':')[2] === String(uid));
    const name = line?.split(':')[0];
    return name ? `uid ${uid} (${name})` : `uid ${uid}`;
  } catch {
    return `uid ${uid}`;
  }
}

/**
 * A command started as root takes a configuration file only when no one but root (and
 * the spool's owner, whom the command becomes) could have written it: the file names
 * the programs mailbag runs (delivery.sendmail, actions, a peer's command) and the spool
 * whose owner a root command becomes, so whoever may write it, or replace it in its
 * directory, could run their program as root the next time an admin runs any command.
 * OpenSSH's rule for its own files. The file and the directory it is named in (and the
 * directory it really is in, through a symbolic link) are owned by root or that owner,
 * and neither its group nor every user may write them (a directory with the sticky bit
 * may be: no one can replace root's file there). /dev/null and pipes hold nothing
 * anyone can put there. A process that is not root keeps the o+w rule (readConfigFile):
 * a user's own file is theirs.
 */
function checkRootsFile(file: string, st: Stats, config: Config, became?: number): void {
  if (!st.isFile()) return;
  let becomes: number | undefined = became;
  if (becomes === undefined) {
    try {
      becomes = spoolOwnerSwitchArmed() ? ownerToBecome(config.spool, 0)?.uid : undefined;
    } catch {
      becomes = undefined; // no spool set, or one not reachable: root stays root
    }
  }
  const trusted = (uid: number): boolean => uid === 0 || uid === becomes;
  const whom = becomes === undefined ? 'root' : `root or ${uidName(becomes)}, the owner of the spool a command started as root becomes`;
  const why = 'and it names the spool and the programs a mailbag command started as root runs';
  if (!trusted(st.uid)) {
    throw new ConfigError(`the configuration file is owned by ${uidName(st.uid)}, not by ${whom}, ${why}: chown root: ${file} && chmod go-w ${file}`, { file });
  }
  if (st.mode & 0o022) {
    throw new ConfigError(`its group or every user may write the configuration file (mode 0${(st.mode & 0o7777).toString(8)}), ${why}: chmod go-w ${file}`, { file });
  }
  // every directory above it, as named and as it really is, up to / (OpenSSH's safe_path):
  // whoever may write any of them may replace what is below
  const dirs = new Set<string>();
  const above = (d: string): void => {
    for (;;) {
      dirs.add(d);
      const up = dirname(d);
      if (up === d) return;
      d = up;
    }
  };
  above(dirname(file));
  try {
    above(dirname(realpathSync.native(file)));
  } catch {
    // read a moment ago: gone since, the next read says so
  }
  for (const dir of dirs) {
    const d = statSync(dir);
    if (!trusted(d.uid)) {
      throw new ConfigError(`the configuration file's directory ${dir} is owned by ${uidName(d.uid)}, not by ${whom}, who may replace the file there, ${why}: keep the file in a directory of root's, such as /etc/mailbag`, { file });
    }
    if (d.mode & 0o022 && !(d.mode & 0o1000)) {
      throw new ConfigError(`its group or every user may write the configuration file's directory ${dir} (mode 0${(d.mode & 0o7777).toString(8)}) and so replace the file, ${why}: chmod go-w ${dir}`, { file });
    }
  }
}

/** The configuration used when there is no file: the checkout's spool, the host's name. */
export function defaultConfig(root: string = packageRoot()): Config {
  return validate({}, undefined, root, root);
}

/** What `file` links to when it is a symbolic link; undefined when it is none or not there. */
function linkTarget(file: string): string | undefined {
  try {
    return readlinkSync(file);
  } catch {
    return undefined;
  }
}

/** Why a configuration file could not be read, in words, for the errno codes an admin meets. */
const READ_ERRORS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a part of the path is not a directory',
  ELOOP: 'too many symbolic links (a loop?)',
};

function readConfigFile(file: string, required: boolean): { text: string; st: Stats } | undefined {
  let text: string;
  let st: Stats;
  try {
    // one descriptor for the text and its stat: a path stat()ed after a read by the path
    // may name another file by then (a directory above it replaced: req-review11 R1)
    const fd = openSync(file, 'r');
    try {
      st = fstatSync(fd);
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // a link whose target is missing (a file system not mounted) is there: not "no file"
    const target = code === 'ENOENT' ? linkTarget(file) : undefined;
    if (target !== undefined) throw new ConfigError(`cannot read the configuration file: it is a symbolic link to ${target}, which does not exist`, { file, cause: err });
    if (!required && code === 'ENOENT') return undefined;
    const why = Object.hasOwn(READ_ERRORS, code ?? '') ? READ_ERRORS[code!]! : String(code ?? err);
    throw new ConfigError(`cannot read the configuration file: ${why}`, { file, cause: err });
  }
  // the file names the programs mailbag runs (delivery.sendmail, actions, a peer's command),
  // as the spool's owner or as root: one every user may write is anyone's way to run theirs
  const mode = st.mode;
  // a regular file: /dev/null (0666, for "no settings") or a pipe holds nothing anyone can put there
  if (st.isFile() && mode & 0o002) {
    // where modes come from the mount options, chmod changes nothing: say what does
    const fsName = NO_UNIX_MODES.get(Number(statfsSync(file).type));
    const fix = fsName
      ? `this file system (${fsName}) has no per-file modes, so chmod cannot change it: mount it with a mask that takes o+w away (${fsName === 'cifs' || fsName === 'smb2' ? 'file_mode=0644' : 'fmask=0022 or umask=0022'}), or keep the file on a file system that has modes`
      : `chmod o-w ${file}`;
    throw new ConfigError(
      `every user may write this file (mode 0${(mode & 0o777).toString(8)}), and it names the programs mailbag runs (delivery.sendmail, actions, command): ${fix}`,
      { file },
    );
  }
  return { text, st };
}

/** statfs(2) f_type of the file systems whose files' modes come from mount options */
const NO_UNIX_MODES = new Map<number, string>([
  [0x4d44, 'vfat'],
  [0x2011bab0, 'exfat'],
  [0xff534d42, 'cifs'],
  [0xfe534d42, 'smb2'],
  [0x5346544e, 'ntfs'],
]);

/**
 * Parse and validate the text of a configuration file; `file` names it in errors and
 * anchors relative paths; `root` is where the package lives (the default spool; found
 * by packageRoot() only when the spool is not set).
 */
export function parseConfig(text: string, file: string, root?: string): Config {
  let raw: Record<string, unknown>;
  try {
    raw = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    const e = err as { line?: number; column?: number; message: string };
    const first = e.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
    const where = e.line !== undefined ? `line ${e.line}, column ${e.column}: ` : '';
    throw new ConfigError(`not valid TOML: ${where}${first}`, { file, cause: err });
  }
  return validate(raw, file, dirname(file), root);
}

/** Where this package lives: lib/config/ in a checkout, dist/lib/config/ when built. */
export function packageRoot(): string {
  let root = fileURLToPath(new URL('../..', import.meta.url));
  if (basename(root) === 'dist') root = dirname(root);
  return root.replace(/\/+$/, '') || '/';
}

/**
 * The default spool: `spool/` of a checkout (README's `npm start` demo, a fresh clone's
 * tests). undefined for an installed package (a `node_modules` component in its path):
 * `npm install -g` replaces the package's directory on upgrade, and a spool in it goes
 * with it, jobs and ledger included (verified). There `spool` must be set.
 */
export function defaultSpool(root: string = packageRoot()): string | undefined {
  return root.split('/').includes('node_modules') ? undefined : join(root, 'spool');
}

/** The error a missing `spool` of an installed package gives, when the spool is first needed. */
function spoolNotSet(file: string | undefined, root: string = packageRoot()): ConfigError {
  return new ConfigError(
    `not set, and the default (${join(root, 'spool')}) lies inside the installed package, which the next npm install -g replaces with every job in it: ` +
      `set spool = "/var/spool/mailbag" (or another directory owned by the account that runs mailbag) in ${file ?? SYSTEM_CONFIG}`,
    { file: file ?? '(built-in defaults)', key: 'spool' },
  );
}

// ---------------------------------------------------------------------------------
// Validation. A Table reads keys off one TOML table, remembers which it read, and at
// the end refuses the ones nobody asked for.

type Raw = Record<string, unknown>;

function typeName(v: unknown): string {
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : 'a float';
  if (typeof v === 'bigint') return 'an integer';
  if (typeof v === 'boolean') return 'a boolean';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Date) return 'a date';
  return 'a table';
}

function isTable(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

class Table {
  private readonly used = new Set<string>();

  constructor(readonly file: string | undefined, readonly prefix: string, readonly raw: Raw) {}

  key(k: string): string {
    return this.prefix ? `${this.prefix}.${k}` : k;
  }

  fail(k: string, message: string): never {
    throw new ConfigError(message, { file: this.file ?? '(built-in defaults)', key: this.key(k) });
  }

  get(k: string): unknown {
    this.used.add(k);
    return Object.hasOwn(this.raw, k) ? this.raw[k] : undefined;
  }

  private typed<T>(k: string, want: string, ok: (v: unknown) => boolean): T | undefined {
    const v = this.get(k);
    if (v === undefined) return undefined;
    if (!ok(v)) this.fail(k, `must be ${want}, not ${typeName(v)}`);
    return v as T;
  }

  string(k: string): string | undefined {
    const v = this.typed<string>(k, 'a string', (x) => typeof x === 'string');
    if (v !== undefined && v.includes('\0')) this.fail(k, 'must not contain a NUL byte');
    return v;
  }

  oneOf<T extends string>(k: string, choices: readonly T[], def: T): T {
    const v = this.string(k);
    if (v === undefined) return def;
    if (!(choices as readonly string[]).includes(v)) {
      this.fail(k, `must be one of ${choices.map((c) => `"${c}"`).join(', ')}, not "${v}"`);
    }
    return v as T;
  }

  boolean(k: string, def: boolean): boolean {
    return this.typed<boolean>(k, 'true or false', (x) => typeof x === 'boolean') ?? def;
  }

  integer(k: string, def: number, min: number, max: number): number {
    const v = this.typed<number | bigint>(k, 'an integer', (x) => typeof x === 'bigint' || (typeof x === 'number' && Number.isInteger(x)));
    if (v === undefined) return def;
    const n = Number(v);
    if (n < min || n > max) this.fail(k, `must be between ${min} and ${max}, not ${n}`);
    return n;
  }

  /**
   * `def` in milliseconds: a default is not parsed (a front door loads the configuration
   * once per message). `max`: for a duration that becomes a timer (MAX_TIMER_MS).
   */
  duration(k: string, def: number, max?: number): number {
    const v = this.get(k);
    if (v === undefined) return def;
    if (typeof v !== 'string') this.fail(k, `must be a duration string like "30s", "15m" or "5d", not ${typeName(v)}`);
    const ms = parseDuration(v);
    if (typeof ms === 'string') this.fail(k, ms);
    if (ms <= 0) this.fail(k, 'must be longer than zero');
    if (max !== undefined && ms > max) this.fail(k, `must be at most "${max / DAY}d": "${v}" does not fit in a timer`);
    return ms;
  }

  /** `def` in bytes, not parsed */
  size(k: string, def: number, max: number): number {
    const v = this.get(k);
    if (v === undefined) return def;
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'bigint') {
      this.fail(k, `must be a size like "64M" or a number of bytes, not ${typeName(v)}`);
    }
    const n = parseSize(v);
    if (typeof n === 'string') this.fail(k, n);
    if (n <= 0) this.fail(k, 'must be larger than zero');
    if (n > max) this.fail(k, `must be at most ${max} bytes`);
    return n;
  }

  stringArray(k: string): string[] | undefined {
    const v = this.get(k);
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) this.fail(k, `must be an array of strings, not ${typeName(v)}`);
    v.forEach((item, i) => {
      if (typeof item !== 'string') this.fail(k, `must be an array of strings, but item ${i + 1} is ${typeName(item)}`);
      if (item.includes('\0')) this.fail(k, `item ${i + 1} contains a NUL byte`);
    });
    return v as string[];
  }

  table(k: string): Table {
    const v = this.get(k);
    if (v === undefined) return new Table(this.file, this.key(k), {});
    if (!isTable(v)) this.fail(k, `must be a table ([${this.key(k)}]), not ${typeName(v)}`);
    return new Table(this.file, this.key(k), v);
  }

  /** Refuse every key no reader asked for. */
  finish(): void {
    for (const k of Object.keys(this.raw)) {
      if (!this.used.has(k)) {
        const known = [...this.used].sort().join(', ');
        this.fail(k, `unknown key${known ? ` (known here: ${known})` : ''}`);
      }
    }
  }
}

function path(t: Table, k: string, base: string, def?: string): string | undefined {
  const v = t.string(k) ?? def;
  if (v === undefined) return undefined;
  if (v === '') t.fail(k, 'must not be empty');
  // no shell reads this file: "~/spool" would be a directory named ~ beside the file
  if (v.startsWith('~')) t.fail(k, `"${v}": "~" is not expanded here: write the whole path, like "/home/mailbag/${v.replace(/^~[^/]*\/?/, '')}" (until now it was read as ${resolve(base, v)})`);
  return isAbsolute(v) ? v : resolve(base, v);
}

/**
 * A unix socket's path holds at most 108 bytes (sun_path on Linux); Node truncates a
 * longer one without a word, so the socket would be made (or looked for) elsewhere.
 */
const MAX_SOCKET_PATH = 108;

function socketPath(t: Table, k: string, p: string, advice: string): string {
  const bytes = Buffer.byteLength(p);
  if (bytes > MAX_SOCKET_PATH) t.fail(k, `${p} is ${bytes} bytes, and a unix socket's path holds at most ${MAX_SOCKET_PATH}: ${advice}`);
  return p;
}

function hostPort(t: Table, k: string, text: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]/]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : 0;
  if (!m || port < 1 || port > 65535) t.fail(k, `"${text}" is not host:port (like "127.0.0.1:25" or "[::1]:25")`);
  return { host: (m[1] ?? m[2])!, port };
}

/** why lmtpd listens on loopback only: the words of lmtp.listen's and --listen's refusal */
export const LISTEN_NOT_LOOPBACK =
  'is not a loopback address: lmtpd has no authentication, and every host that reaches it could send mail through your peers; use 127.0.0.1:PORT, [::1]:PORT or localhost:PORT (or the unix socket)';

/** a dotted IPv4 literal: four decimal octets, no leading zeros */
const IPV4_RE = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HEX_GROUP_RE = /^[0-9a-f]{1,4}$/;

/** The eight 16-bit groups of an IPv6 literal (`::` and a dotted IPv4 tail allowed), or undefined. */
function ipv6Groups(text: string): number[] | undefined {
  let s = text.toLowerCase();
  const tail: number[] = [];
  const dotted = /^(.*:)(\d+\.[\d.]*)$/.exec(s);
  if (dotted) {
    if (!IPV4_RE.test(dotted[2]!)) return undefined;
    const o = dotted[2]!.split('.').map(Number);
    tail.push(o[0]! * 256 + o[1]!, o[2]! * 256 + o[3]!);
    s = dotted[1]!.endsWith('::') ? dotted[1]! : dotted[1]!.slice(0, -1);
  }
  const want = 8 - tail.length;
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string): string[] => (h === '' ? [] : h.split(':'));
  const left = groups(halves[0]!);
  const right = halves.length === 2 ? groups(halves[1]!) : [];
  if (![...left, ...right].every((g) => HEX_GROUP_RE.test(g))) return undefined;
  const n = left.length + right.length;
  if (halves.length === 1 ? n !== want : n > want - 1) return undefined;
  const hex = [...left, ...Array<string>(want - n).fill('0'), ...right];
  return [...hex.map((g) => parseInt(g, 16)), ...tail];
}

/**
 * true for a loopback host, by its text alone (no DNS): `localhost`, an IPv4 literal in
 * 127.0.0.0/8, `::1`, or an IPv4-mapped `::ffff:127.x.y.z`. lmtpd's TCP listener takes
 * only these (lmtp.listen, --listen): it has no authentication.
 */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  if (IPV4_RE.test(host)) return host.startsWith('127.');
  const g = ipv6Groups(host);
  if (!g) return false;
  const zeros = (k: number): boolean => g.slice(0, k).every((x) => x === 0);
  return (zeros(7) && g[7] === 1) || (zeros(5) && g[5] === 0xffff && g[6]! >> 8 === 127);
}

function name(t: Table, k: string, value: string, what: string): string {
  if (!NAME_PATTERN.test(value) || value.length > LIMITS.maxNameLength) {
    t.fail(k, `"${value}" is not a valid ${what} name: use lower-case letters, digits, dots and dashes (at most ${LIMITS.maxNameLength}), starting with a letter or digit`);
  }
  return value;
}

/** This host's name, first label, made into a valid site name. */
function hostSiteName(): string {
  const label = hostname().split('.')[0]!.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+/, '').slice(0, LIMITS.maxNameLength);
  return label || 'localhost';
}

function validate(raw: Raw, file: string | undefined, base: string, root: string | undefined): Config {
  const top = new Table(file, '', raw);
  const siteText = top.string('site');
  const site = siteText === undefined ? hostSiteName() : name(top, 'site', siteText, 'site');
  // '' while unset in an installed package: the getters below throw where it is needed
  const spool = path(top, 'spool', base) ?? defaultSpool(root) ?? '';
  const queueLifetimeMs = top.duration('queue_lifetime', 5 * DAY);
  // the default follows a longer queue_lifetime (a file that sets only queue_lifetime =
  // "30d" worked before the check below; it must not stop every front door on upgrade)
  const ledgerRetentionMs = top.duration('ledger_retention', Math.max(14 * DAY, queueLifetimeMs));
  if (ledgerRetentionMs < queueLifetimeMs) {
    // a job is offered again (a lost acknowledgement, an MTA's LMTP retry) for as long as
    // it lives: the ledger must remember it as long, or promise 2 has a hole
    const given = top.raw.ledger_retention;
    const what = typeof given === 'string' ? `"${given}"` : `${formatDuration(ledgerRetentionMs)} (the default)`;
    top.fail('ledger_retention', `${what} is shorter than queue_lifetime (${formatDuration(queueLifetimeMs)}): a job offered again after a lost acknowledgement could be stored twice; make it at least as long`);
  }
  const limits = validateLimits(top.table('limits'));
  const delivery = validateDelivery(top.table('delivery'), base);
  const peersTable = top.table('peers');
  const peers: Record<string, PeerConfig> = Object.create(null) as Record<string, PeerConfig>;
  for (const peerName of Object.keys(peersTable.raw)) {
    name(peersTable, peerName, peerName, 'peer');
    const t = peersTable.table(peerName);
    peers[peerName] = validatePeer(t, peerName, site, base);
  }
  peersTable.finish();
  const lmtp = validateLmtp(top.table('lmtp'), spool, peers);
  top.finish();
  const config: Config = { file, site, spool, queueLifetimeMs, ledgerRetentionMs, limits, delivery, lmtp, peers };
  if (spool === '') {
    // an installed package without `spool`: the commands that never open a spool (rmail,
    // an rsmtp without one) still work; every other fails, with exit 75 (4.3.5), when it
    // first asks for the spool, so an MTA keeps the mail until the admin has set it
    const fail = (): never => {
      throw spoolNotSet(file, root);
    };
    Object.defineProperty(config, 'spool', { get: fail, enumerable: true });
    // lmtp.socket is relative to the spool unless written as an absolute path
    const socket = isTable(raw.lmtp) ? raw.lmtp.socket : undefined;
    if (typeof socket !== 'string' || !isAbsolute(socket)) {
      Object.defineProperty(config.lmtp, 'socket', { get: fail, enumerable: true });
    }
  }
  return config;
}

function validateLimits(t: Table): LimitsConfig {
  const ceiling = LIMITS.maxJobSizeCeiling;
  const limits: LimitsConfig = {
    maxMessageSize: t.size('max_message_size', 64 * MIB, ceiling),
    // the job format holds at most LIMITS.maxRecipients (lib/job/header.ts)
    maxRecipients: t.integer('max_recipients', LIMITS.maxRecipients, 1, LIMITS.maxRecipients),
    maxBagSize: t.size('max_bag_size', 256 * MIB, 64 * ceiling),
    maxBagExpanded: t.size('max_bag_expanded', 1024 * MIB, 64 * ceiling),
    maxJobsPerBag: t.integer('max_jobs_per_bag', 10_000, 1, 1_000_000),
  };
  t.finish();
  return limits;
}

function validateDelivery(t: Table, base: string): DeliveryConfig {
  const method = t.oneOf<DeliveryMethod>('method', ['sendmail', 'smtp', 'lmtp'], 'sendmail');
  const sendmail = path(t, 'sendmail', base, '/usr/sbin/sendmail')!;
  const mta = t.oneOf<MtaFlavour>('mta', ['auto', 'postfix', 'exim', 'sendmail'], 'auto');
  const smtpText = t.string('smtp');
  const smtp = smtpText === undefined ? { host: '127.0.0.1', port: 25 } : hostPort(t, 'smtp', smtpText);
  const lmtpText = t.string('lmtp');
  let lmtp: Endpoint | undefined;
  if (lmtpText !== undefined) {
    if (lmtpText === '') t.fail('lmtp', 'must not be empty');
    lmtp = /^(\[[^\]]*\]|[^\s:/[\]]+):\d+$/.test(lmtpText)
      ? hostPort(t, 'lmtp', lmtpText)
      : { path: socketPath(t, 'lmtp', path(t, 'lmtp', base)!, 'give a shorter path (a link to the socket will do)') };
  }
  if (method === 'lmtp' && lmtp === undefined) {
    t.fail('lmtp', 'is required when method = "lmtp": a socket path or host:port');
  }
  const concurrency = t.integer('concurrency', 4, 1, 256);
  t.finish();
  return { method, sendmail, mta, smtp, lmtp, concurrency };
}

function validateLmtp(t: Table, spool: string, peers: Record<string, PeerConfig>): LmtpConfig {
  const socket = path(t, 'socket', spool, 'lmtp.sock')!;
  // too long, set or the default under a deep spool: refused where it is read (lmtpd), not
  // by every command (a file that loaded before must not stop enqueue and serve on
  // upgrade). Without a spool, a relative socket fails when read (validate)
  const given = t.raw.socket;
  let tooLong: ConfigError | undefined;
  if (spool !== '' || (typeof given === 'string' && isAbsolute(given))) {
    try {
      socketPath(t, 'socket', socket, 'set lmtp.socket to a shorter absolute path');
    } catch (err) {
      tooLong = err as ConfigError;
    }
  }
  const modeRaw = t.get('socket_mode');
  let socketMode = 0o660;
  if (modeRaw !== undefined) {
    if (typeof modeRaw === 'string' && /^0?[0-7]{3}$/.test(modeRaw)) socketMode = parseInt(modeRaw, 8);
    else if (typeof modeRaw === 'number' && Number.isInteger(modeRaw) && modeRaw >= 0 && modeRaw <= 0o777) socketMode = modeRaw;
    else t.fail('socket_mode', `must be an octal mode like "0660", not ${typeof modeRaw === 'string' ? `"${modeRaw}"` : typeName(modeRaw)}`);
  }
  const listenText = t.string('listen');
  const listen = listenText === undefined ? undefined : hostPort(t, 'listen', listenText);
  if (listen && !isLoopbackHost(listen.host)) {
    t.fail('listen', `"${listenText}" ${LISTEN_NOT_LOOPBACK}`);
  }
  const maxRecipients = t.integer('max_recipients', 100, 1, 100_000);
  const maxConnections = t.integer('max_connections', 20, 1, 10_000);
  const workers = t.get('workers') === undefined ? undefined : t.integer('workers', 1, 1, 256);
  const defaultPeer = t.string('default_peer');
  if (defaultPeer !== undefined && !Object.hasOwn(peers, defaultPeer)) {
    t.fail('default_peer', `names "${defaultPeer}", but there is no [peers.${defaultPeer}]`);
  }
  t.finish();
  const lmtp: LmtpConfig = { socket, socketMode, listen, maxRecipients, maxConnections, workers, defaultPeer };
  if (tooLong) {
    Object.defineProperty(lmtp, 'socket', {
      get: () => {
        throw tooLong;
      },
      enumerable: true,
    });
  }
  return lmtp;
}

function validatePeer(t: Table, peerName: string, site: string, base: string): PeerConfig {
  const command = t.stringArray('command');
  if (command !== undefined && (command.length === 0 || command[0] === '')) t.fail('command', 'must name a program to run');
  const transport = t.oneOf<PeerTransport>('transport', ['ssh', 'command'], command ? 'command' : 'ssh');
  if (transport === 'command' && command === undefined) t.fail('command', 'is required when transport = "command": the argv to run, like ["ssh", "hub", "mailbag", "serve"]');
  if (transport === 'ssh' && command !== undefined) t.fail('command', 'is used only with transport = "command" (this peer has transport = "ssh")');
  const host = t.string('host');
  if (host === '') t.fail('host', 'must not be empty');
  if (host !== undefined && /[\s/]/.test(host)) t.fail('host', `"${host}" is not a host name`);
  if (host?.includes(':') && !/^[0-9a-f.]*:[0-9a-f.]*:[0-9a-f:.]*(%[\w.-]+)?$/i.test(host)) {
    // a name holds no colon, an IPv6 address two or more: "hub:2222" would be looked up as a name
    const port = /^(?:\[[^\]]*\]|[^:[\]]*):(\d+)$/.exec(host)?.[1];
    const advice = port !== undefined ? `write the port as port = ${port}` : /^\[.*\]$/.test(host) ? 'write an IPv6 address without brackets' : 'a host name holds no colon';
    t.fail('host', `"${host}" is not a host name or address: ${advice}`);
  }
  const port = t.integer('port', 22, 1, 65535);
  const userText = t.string('user');
  if (userText !== undefined && (userText === '' || /\s/.test(userText))) t.fail('user', `"${userText}" is not a user name`);
  const user = userText ?? 'mailbag';
  const identity = path(t, 'identity', base);
  const agent = t.boolean('agent', false);
  const knownHosts = path(t, 'known_hosts', base) ?? defaultKnownHosts();
  const remoteCommand = t.string('remote_command') ?? `mailbag serve --peer ${site}`;
  if (remoteCommand.trim() === '') t.fail('remote_command', 'must not be empty');
  const connectTimeoutMs = t.duration('connect_timeout', 30 * SECOND, MAX_TIMER_MS);
  const keepaliveMs = t.duration('keepalive', 15 * SECOND, MAX_TIMER_MS);
  // the SSH client drops a link whose keepalive goes unanswered 3 times: under a second that
  // is less than a slow link's round trip or serve's start-up, and every session was cut
  if (keepaliveMs < SECOND) t.fail('keepalive', 'must be at least "1s" (like OpenSSH\'s ServerAliveInterval): a link that does not answer 3 keepalives in a row is cut, and under a second every session would be');
  const pollMs = t.duration('poll', 15 * MINUTE);
  const codec = t.oneOf<Codec>('codec', ['zstd', 'br', 'gzip', 'none'], 'zstd');
  // only the command's argv runs: these are not used (ssh dials port 22 with ~/.ssh's keys
  // while the file says port 2222 and an identity). Said where the peer is dialled, not
  // refused here: a file that worked must not stop every front door (exit 75) on upgrade
  const unusedKeys = transport === 'command' ? SSH_ONLY_KEYS.filter((k) => Object.hasOwn(t.raw, k)) : [];

  const actionsTable = t.table('actions');
  const actions: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  for (const action of Object.keys(actionsTable.raw)) {
    if (!COMMAND_PATTERN.test(action) || action.length > LIMITS.maxNameLength) {
      actionsTable.fail(action, `"${action}" is not a valid command name: use lower-case letters, digits, dots, dashes and underscores`);
    }
    const argv = actionsTable.stringArray(action)!;
    if (argv.length === 0 || argv[0] === '') actionsTable.fail(action, 'must be a non-empty argv like ["/usr/bin/rnews"]');
    actions[action] = argv;
  }
  actionsTable.finish();

  const acceptRaw = t.stringArray('accept');
  const accept = acceptRaw ?? [...BUILTIN_COMMANDS, ...Object.keys(actions)];
  for (const c of accept) {
    if (!BUILTIN_COMMANDS.includes(c) && !Object.hasOwn(actions, c)) {
      t.fail('accept', `names "${c}", which is neither rmail, rsmtp nor defined in [${t.key('actions')}]`);
    }
  }
  const domains = (t.stringArray('domains') ?? []).map((d) => {
    if (!/^[^\s@]+$/.test(d)) t.fail('domains', `"${d}" is not a domain`);
    return d.toLowerCase().replace(/\.$/, '');
  });
  const addresses = (t.stringArray('addresses') ?? []).map((a) => {
    const at = a.lastIndexOf('@');
    if (at <= 0 || at === a.length - 1 || /\s/.test(a)) t.fail('addresses', `"${a}" is not an address like user@example.org`);
    return `${a.slice(0, at)}@${a.slice(at + 1).toLowerCase()}`;
  });
  t.finish();
  return {
    name: peerName, transport, host, port, user, identity, agent, knownHosts, remoteCommand, command,
    connectTimeoutMs, keepaliveMs, pollMs, codec, accept: [...accept], domains, addresses, actions,
    ...(unusedKeys.length ? { unusedKeys } : {}),
  };
}

function defaultKnownHosts(): string {
  // HOME first (the spool-owner switch sets it); unset, this uid's passwd entry, where
  // ssh(1) looks for ~/.ssh — never /root, another user's file and trust decisions
  let home = process.env.HOME;
  if (!home) {
    try {
      home = userInfo().homedir;
    } catch {
      home = undefined;
    }
  }
  return join(home || '/nonexistent', '.ssh', 'known_hosts');
}

/** The peer named on a command line, or an 'unknown-peer' error that says how to add it. */
export function requirePeer(config: Config, peerName: string): PeerConfig {
  const peer = Object.hasOwn(config.peers, peerName) ? config.peers[peerName] : undefined;
  if (peer) return peer;
  const where = config.file
    ? `add a [peers.${peerName}] section to ${config.file}`
    : `no configuration file was found (--config, $MAILBAG_CONFIG, ${SYSTEM_CONFIG}); create one with a [peers.${peerName}] section`;
  const known = Object.keys(config.peers);
  throw new ConfigError(
    `unknown peer "${peerName}": ${where}${known.length ? ` (configured peers: ${known.join(', ')})` : ''}`,
    { code: 'unknown-peer' },
  );
}
