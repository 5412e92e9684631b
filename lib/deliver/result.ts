// The outcome of handing one recipient of one transaction to the MTA: every delivery
// method answers with one of these per recipient it tried, so the runner can record
// progress per recipient and never send a message twice to an accepted recipient.

import { MailbagError } from '../errors.js';

export interface RecipientResult {
  address: string;
  /** accepted: the MTA took it; temporary: try again later; permanent: notify the sender */
  kind: 'accepted' | 'temporary' | 'permanent';
  /** RFC 3463 status (`2.0.0`, `4.3.0`, `5.1.1`) */
  status: string;
  /** RFC 3464 Diagnostic-Code value, `smtp; 550 …` or `x-unix; …` */
  diagnostic: string;
}

/** An SMTP reply code and text → a recipient result kind, status and diagnostic. */
export function resultOfReply(address: string, code: number, text: string): RecipientResult {
  const enhanced = /^([245])\.(\d{1,3})\.(\d{1,3})\b/.exec(text);
  const kind = code >= 200 && code < 400 ? 'accepted' : code >= 400 && code < 500 ? 'temporary' : 'permanent';
  const fallback = kind === 'accepted' ? '2.0.0' : kind === 'temporary' ? '4.0.0' : '5.0.0';
  const status = enhanced && enhanced[1] === fallback[0] ? enhanced[0] : fallback;
  return { address, kind, status, diagnostic: `smtp; ${code} ${text}`.slice(0, 500) };
}

/** A delivery the MTA refused or deferred, carrying the MTA's own status and a permitted exit code. */
export class DeliveryError extends MailbagError {
  constructor(private readonly result: { kind: RecipientResult['kind']; status: string; diagnostic: string }, private readonly exit: number) {
    super(result.kind === 'temporary' ? 'delivery-temporary' : 'delivery-permanent', result.diagnostic.replace(/^[a-z-]+; /i, ''));
    this.name = 'DeliveryError';
  }

  override get status(): string {
    return this.result.status;
  }

  override get exitCode(): number {
    return this.exit;
  }
}

/** The exit codes a tool an MTA calls may use for a permanent failure (formats.md checklist 14). */
const PERMANENT_EXITS = new Set([65, 67, 68, 69, 77, 78]);

/** Our exit for an MTA command's permanent exit code: passed on when allowed, else 69. */
export function permanentExit(code: number | null): number {
  return code !== null && PERMANENT_EXITS.has(code) ? code : 69;
}
