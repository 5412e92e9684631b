// The job file: `mailbag-job 1\n`, one line of JSON header, `\n`, payload to the end.
// Pure codec (no file system): encode and decode the header, read a job from a stream
// with bounded memory, make time-sortable job ids. Specified in docs/formats.md.

export {
  JOB_MAGIC,
  JOB_VERSION,
  JOB_MAGIC_LINE,
  JOB_ID_RE,
  NAME_RE,
  COMMAND_RE,
  MAX_JOB_PREFIX,
  encodeJobHeader,
  decodeJobHeader,
  jobHeaderProblem,
  isJobId,
  isName,
  type JobHeader,
  type JobIssue,
  type JobIssueCode,
  type DecodedHeader,
} from './header.js';
export { newJobId, jobIdTime } from './id.js';
export { JobHeaderReader, readJobStream, type HeaderStep, type JobStream } from './reader.js';
