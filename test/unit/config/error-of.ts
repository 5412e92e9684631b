// The configuration tests' one way to get the ConfigError a text is refused with.
import { expect } from 'vitest';
import { ConfigError } from '../../../lib/errors.js';
import { parseConfig } from '../../../lib/config/index.js';

/** The ConfigError `parseConfig(text, file)` throws; fails the test when it throws nothing or something else. */
export function errorOf(text: string, file = '/etc/x/m.toml'): ConfigError {
  try {
    parseConfig(text, file);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`no error for: ${text}`);
}
