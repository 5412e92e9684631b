// Bags: many job files in one compressed tar stream, named by the SHA-256 of its bytes.
export { BAG_CODECS, DEFAULT_BROTLI_QUALITY, DEFAULT_GZIP_LEVEL, DEFAULT_ZSTD_LEVEL, createCompressor, createDecompressor, isBagCodec, sniffCodec, usableCodecs, zstdUnavailable, type BagCodec, type CodecThread } from './codec.js';
export { BagError, type BagIssue } from './errors.js';
export { isValidEntryName } from './names.js';
export { bagStream, expandedSizeOf, writeBag, type BagJob, type BagSummary, type WriteBagOptions } from './writer.js';
export { classifyBagError, readBag, type BagEntry, type ReadBagOptions } from './reader.js';
export { BagWorkerError, bagWorkerState, configureBagWorkers, prestartBagWorkers, stopBagWorkers, writeBagFile, ABORT_GRACE_MS, STALL_MS, START_TIMEOUT_MS, STOP_TIMEOUT_MS, type BagFileJob, type BagWorkerSettings, type WriteBagFileOptions } from './workers.js';
