import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * Where secrets can appear in a log object. Redaction at the logger is the
 * backstop: the code already keeps tokens out of what it logs.
 * pino's `*` matches one level, so common nestings are listed.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  '*.headers.authorization',
  'password',
  'gitToken',
  'token',
  '*.password',
  '*.gitToken',
  '*.token',
  '*.cache.password',
  '*.callback.token',
  // e.g. an error that carries its request options: err.config.password
  '*.*.password',
  '*.*.token',
  '*.*.gitToken',
];

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** pino level; default `info` (`WARMSTART_LOG_LEVEL` is for the caller to read). */
  level?: string;
  /** Default stdout (journald takes it from there); tests pass a memory stream. */
  destination?: DestinationStream;
}

/** The daemon's logger: JSON lines, `service: warmstart` on each, secrets redacted. */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'warmstart' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
