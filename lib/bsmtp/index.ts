// Batched SMTP: the writer (Exim use_bsmtp shape, ESMTP parameters kept) and the
// chunk-fed reader. Re-exports only.
export {
  MAIL_PARAMS,
  RCPT_PARAMS,
  keepParams,
  paramsFromObject,
  parseParam,
  formatParams,
  checkBsmtpEnvelope,
  type EsmtpParam,
  type BsmtpRecipient,
  type BsmtpEnvelope,
  type EnvelopeIssueCode,
} from './envelope.js';
export {
  formatBsmtpEnvelope,
  BsmtpBodyEncoder,
  normaliseBody,
  encodeBsmtp,
  createBsmtpStream,
  writeBsmtp,
  type BsmtpEnvelopeInit,
  type BsmtpTransactionInit,
} from './writer.js';
export {
  BsmtpReader,
  BsmtpChecker,
  validateBsmtp,
  readBsmtp,
  bsmtpIssueError,
  type BsmtpEvent,
  type BsmtpIssue,
  type BsmtpIssueCode,
  type BsmtpResult,
  type BsmtpReaderOptions,
  type BsmtpSummary,
} from './reader.js';
