// mailbag's public API: re-exports only. Each area is a namespace, so names stay
// short inside it (`spool.Spool`, `bsmtp.BsmtpReader`, `session.syncPeer`).
export * from './errors.js';
export * from './exit.js';
export { LIMITS } from './limits.js';
export * as envelope from './envelope/index.js';
export * as bsmtp from './bsmtp/index.js';
export * as job from './job/index.js';
export * as spool from './spool/index.js';
export * as config from './config/index.js';
export * as bag from './bag/index.js';
export * as transport from './transport/index.js';
export * as session from './session/index.js';
export * as deliver from './deliver/index.js';
export { runJobs, type RunOptions, type RunSummary } from './runner/runner.js';
export { composeNotice, type NoticeInput } from './notice/dsn.js';
export { LmtpServer, type LmtpServerOptions } from './lmtp/server.js';
