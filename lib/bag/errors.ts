// The one error a bag reader or writer throws: a MailbagError with code 'bad-bag'
// (or 'too-big' for a cap) and an `issue` that says precisely what was wrong.

import { MailbagError } from '../errors.js';

export type BagIssue =
  /** an entry name that is not a plain job file name (path, `..`, too long, odd bytes) */
  | 'bad-name'
  /** an entry that is not a plain file: link, directory, device, fifo, pax or GNU extension */
  | 'bad-entry'
  /** the same name twice in one bag */
  | 'duplicate'
  /** an entry larger than the per-job cap */
  | 'entry-too-big'
  /** the decompressed bag grew past its cap (a decompression bomb is stopped here) */
  | 'too-expanded'
  /** the compressed bag is larger than its cap */
  | 'too-big'
  /** more entries than the per-bag cap */
  | 'too-many'
  /** the stream ended early */
  | 'truncated'
  /** the bytes are not a valid compressed tar stream */
  | 'corrupt'
  /** the bytes are not in the codec they were said to be */
  | 'codec'
  /** the SHA-256 of the compressed bytes is not the one expected */
  | 'bad-hash'
  /** a job source gave more or fewer bytes than its declared size (writer) */
  | 'size-mismatch';

const CAPS: ReadonlySet<BagIssue> = new Set<BagIssue>(['entry-too-big', 'too-expanded', 'too-big', 'too-many']);

export class BagError extends MailbagError {
  readonly issue: BagIssue;
  /** the entry the problem is in, when there is one */
  readonly entry: string | undefined;

  constructor(issue: BagIssue, message: string, options?: { entry?: string; cause?: unknown }) {
    super(CAPS.has(issue) ? 'too-big' : 'bad-bag', message, options);
    this.name = 'BagError';
    this.issue = issue;
    this.entry = options?.entry;
  }
}
