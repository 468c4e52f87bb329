/** The process logger (pino). Secrets never reach it: callers log refs and ids, never values. */
import { pino, type Logger } from 'pino';

/** Creates the root logger; `redact` is a second line of defence for fields that could hold secrets. */
export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { service: 'wharf' },
    redact: { paths: ['*.authorization', '*.accessToken', '*.access_token', '*.appSecret', '*.app_secret', '*.value', '*.password', '*.secret'], censor: '[redacted]' },
  });
}

export type { Logger };
