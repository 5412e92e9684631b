// mailbag's public API: re-exports only.
export * from './errors.js';
export * from './exit.js';
export { LIMITS } from './limits.js';
