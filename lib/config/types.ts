// The shape of a loaded configuration. Every key of mailbag.toml appears here once,
// validated and with its default filled in: durations in milliseconds, sizes in bytes,
// paths absolute. Readers never see raw TOML.

export type DeliveryMethod = 'sendmail' | 'smtp' | 'lmtp';
export type MtaFlavour = 'auto' | 'postfix' | 'exim' | 'sendmail';
export type PeerTransport = 'ssh' | 'command';
export type Codec = 'zstd' | 'br' | 'gzip' | 'none';

/** A TCP endpoint written `host:port` (`[::1]:25` for IPv6). */
export interface HostPort {
  host: string;
  port: number;
}

/** Where to reach an LMTP server: a unix socket path or a TCP endpoint. */
export type Endpoint = { path: string } | HostPort;

export interface LimitsConfig {
  /** largest message (job payload) accepted, bytes (`max_message_size`, default 64M) */
  maxMessageSize: number;
  /** recipients in one job (`max_recipients`, default 1000) */
  maxRecipients: number;
  /** largest compressed bag, bytes (`max_bag_size`, default 256M) */
  maxBagSize: number;
  /** largest decompressed bag, bytes (`max_bag_expanded`, default 1G) */
  maxBagExpanded: number;
  /** jobs in one bag (`max_jobs_per_bag`, default 10000) */
  maxJobsPerBag: number;
}

export interface DeliveryConfig {
  /** how the runner hands rmail/rsmtp jobs to the local MTA (default sendmail) */
  method: DeliveryMethod;
  /** the sendmail program (default /usr/sbin/sendmail) */
  sendmail: string;
  /** which MTA is behind `sendmail`; auto = detect (default auto) */
  mta: MtaFlavour;
  /** SMTP server for method = smtp (default 127.0.0.1:25) */
  smtp: HostPort;
  /** LMTP server for method = lmtp (required then) */
  lmtp: Endpoint | undefined;
  /** jobs delivered at once (default 4) */
  concurrency: number;
}

export interface LmtpConfig {
  /** unix socket the LMTP ingress listens on; relative paths are relative to the spool (default <spool>/lmtp.sock) */
  socket: string;
  /** the socket's permission bits (default 0o660) */
  socketMode: number;
  /** optional TCP listener */
  listen: HostPort | undefined;
  /** recipients per LMTP transaction (default 100) */
  maxRecipients: number;
  /** concurrent LMTP connections (default 20) */
  maxConnections: number;
  /** listener processes sharing the sockets; undefined = 1 (docs/mailbag-lmtpd.md: why) */
  workers?: number | undefined;
  /** peer for recipients no peer's domains/addresses match; undefined = refuse them */
  defaultPeer: string | undefined;
}

export interface PeerConfig {
  /** the peer's name: the key of `[peers.NAME]` */
  name: string;
  /** ssh = ssh2 client to host:port; command = spawn `command` and talk over its stdio */
  transport: PeerTransport;
  /** host to dial (transport ssh); undefined = this site never dials the peer */
  host: string | undefined;
  port: number;
  /** SSH user (default mailbag) */
  user: string;
  /** private key file; undefined = agent only or none */
  identity: string | undefined;
  /** use $SSH_AUTH_SOCK (default false) */
  agent: boolean;
  /** OpenSSH known_hosts checked for the host key (default ~/.ssh/known_hosts) */
  knownHosts: string;
  /** command run on the far side (default `mailbag serve --peer <site>`) */
  remoteCommand: string;
  /** argv to spawn for transport = command (no shell) */
  command: string[] | undefined;
  connectTimeoutMs: number;
  keepaliveMs: number;
  /** how often a scheduled dispatcher dials this peer */
  pollMs: number;
  codec: Codec;
  /** job commands this peer's jobs may run here (whitelist) */
  accept: string[];
  /** LMTP routing: recipient domains that go to this peer (lower case) */
  domains: string[];
  /** LMTP routing: recipient addresses that go to this peer (domain lower-cased) */
  addresses: string[];
  /** admin-defined job commands: name → argv (no shell) */
  actions: Record<string, string[]>;
  /** keys of the built-in SSH client set for a transport = "command" peer: not used, said where it is dialled */
  unusedKeys?: string[];
}

export interface Config {
  /** the file this came from; undefined = built-in defaults */
  file: string | undefined;
  /** this site's name (default: the host name's first label) */
  site: string;
  /** spool root, absolute */
  spool: string;
  /** runner: jobs older than this fail permanently (default 5d) */
  queueLifetimeMs: number;
  /** receiver's ledger of committed bags and jobs is kept this long (default 14d) */
  ledgerRetentionMs: number;
  limits: LimitsConfig;
  delivery: DeliveryConfig;
  lmtp: LmtpConfig;
  /** peers by name (a null-prototype object: `peers[name]` is safe for any name) */
  peers: Record<string, PeerConfig>;
}
