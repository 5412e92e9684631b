// Envelope formats: the UUCP From_ line (read and written) and the address checks the
// front doors apply. Re-exports only.
export { formatCtime } from './ctime.js';
export {
  UucpEnvelopeReader,
  parseUucpEnvelope,
  formatFromLine,
  leadingFromLines,
  type UucpEnvelope,
  type UucpEnvelopeOutcome,
  type UucpEnvelopeOptions,
  type FromLineIssueCode,
  type FromLineFields,
} from './from-line.js';
export { checkRecipient, checkSender, rmailCanCarrySender, type AddressJob } from './address.js';
