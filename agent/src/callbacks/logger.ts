/**
 * The slice of a pino logger the callback code needs. Log objects carry
 * context (`workspaceId`, `kind`, `callbackId`, `status`), never a token.
 */
export interface CallbackLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export const silentLogger: CallbackLogger = {
  info: () => undefined,
  warn: () => undefined,
};

/** A URL fit for a log line: no user info, query or fragment (any of them could hold a secret). */
export function urlForLog(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '<invalid url>';
  }
}
