/** The process logger (pino). Secrets never reach it: callers log refs and ids, never values. */
import { writeSync } from 'node:fs';
import { pino, type Logger } from 'pino';

/**
 * Synchronous stdout that never throws: when whoever reads our output has gone away (EPIPE), logging must
 * not break what is running — above all a shutdown in progress.
 */
const stdout = {
  write(line: string): void {
    try {
      writeSync(1, line);
    } catch {
      // the reader is gone; nothing useful to do with a log line
    }
  },
};

/**
 * Creates the root logger at `level` (`LOG_LEVEL`, parsed by lib/config.ts); `redact` is a second line of
 * defence for fields that could hold secrets.
 */
export function createLogger(level: string): Logger {
  return pino(
    {
      level,
      base: { service: 'wharf' },
      redact: {
        paths: [
          '*.authorization',
          '*.accessToken',
          '*.access_token',
          '*.appSecret',
          '*.app_secret',
          '*.value',
          '*.password',
          '*.secret',
        ],
        censor: '[redacted]',
      },
    },
    stdout,
  );
}

export type { Logger };
