import { fstatSync } from 'node:fs';
import { pino, type DestinationStream, type Logger } from 'pino';
import { WarmstartError } from '../errors.js';

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
  /** pino level; default `info` (see {@link logLevelFromEnv}). */
  level?: string;
  /** Default stdout (journald takes it from there); tests pass a memory stream. */
  destination?: DestinationStream;
  /**
   * Prefix each line with its syslog priority (`<3>` for an error), so
   * journald ranks it (`journalctl -p err` finds errors); default: when
   * stdout is journald's (systemd sets JOURNAL_STREAM).
   */
  journald?: boolean;
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** `WARMSTART_LOG_LEVEL` (default `info`); another word is a configuration error. */
export function logLevelFromEnv(env: NodeJS.ProcessEnv): string {
  const level = env.WARMSTART_LOG_LEVEL?.trim().toLowerCase() || 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new WarmstartError(
      'INVALID_ARGUMENT',
      `WARMSTART_LOG_LEVEL takes one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(env.WARMSTART_LOG_LEVEL)}`,
    );
  }
  return level;
}

/** pino's level numbers as syslog priorities (sd-daemon(3)): fatal crit, error err, warn warning, info, debug. */
function syslogPriority(level: number): number {
  if (level >= 60) return 2;
  if (level >= 50) return 3;
  if (level >= 40) return 4;
  if (level >= 30) return 6;
  return 7;
}

/** A destination that puts `<priority>` before each line pino writes (one JSON object per write). */
export function journaldDestination(inner: DestinationStream): DestinationStream {
  return {
    write(line: string) {
      const level = /"level":(\d+)/.exec(line)?.[1];
      return inner.write(level === undefined ? line : `<${syslogPriority(Number(level))}>${line}`);
    },
  };
}

/**
 * Whether stdout is journald's own stream: systemd names it in JOURNAL_STREAM
 * (`device:inode`), which children inherit, so it counts only when stdout is
 * still that stream (systemd.exec(5), "$JOURNAL_STREAM").
 */
export function stdoutIsJournal(env: NodeJS.ProcessEnv = process.env, fd = 1): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1]!) && st.ino === BigInt(m[2]!);
  } catch {
    return false; // no stdout to look at: not the journal's
  }
}

/** The daemon's logger: JSON lines, `service: warmstart` on each, secrets redacted. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const stdout = options.destination ?? pino.destination({ dest: 1, sync: false });
  const journald = options.journald ?? (options.destination === undefined && stdoutIsJournal());
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'warmstart' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    },
    journald ? journaldDestination(stdout) : stdout,
  );
}
