import { callbackOrigins } from '../callbacks/callback-url.js';
import { WarmstartError } from '../errors.js';

/** Settings of `warmstart serve`, from the environment (flags win). Auth and TLS: server/auth-config.ts, server/tls.ts. */
export interface ServeConfig {
  host: string;
  port: number;
  maxConcurrentBuilds: number;
  allowLocalRepos: boolean;
  controlPlane: { url: string; tokenFile: string | null; heartbeatMs: number; nodeId: string | null } | null;
  shutdownGraceMs: number;
  /** WARMSTART_CALLBACK_ORIGINS and the control plane's origin: where callbacks may go (callbacks/callback-url.ts) */
  callbackOrigins: Set<string>;
}

const get = (env: NodeJS.ProcessEnv, k: string): string | null => (env[k] && env[k] !== '' ? env[k]! : null);

function positiveInt(env: NodeJS.ProcessEnv, k: string, fallback: number): number {
  const raw = get(env, k);
  if (raw === null) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new WarmstartError('INVALID_ARGUMENT', `${k} must be a positive whole number`);
  return n;
}

/** Parses `HOST:PORT` (IPv6 as `[::1]:PORT`). */
export function parseListen(value: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new WarmstartError('INVALID_ARGUMENT', `--listen takes HOST:PORT, got '${value}'`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

export function serveConfigFromEnv(env: NodeJS.ProcessEnv, listen?: string): ServeConfig {
  const { host, port } = parseListen(listen ?? get(env, 'WARMSTART_LISTEN') ?? '127.0.0.1:7780');
  const cpUrl = get(env, 'WARMSTART_CONTROL_PLANE_URL');
  return {
    host,
    port,
    maxConcurrentBuilds: positiveInt(env, 'WARMSTART_MAX_CONCURRENT_BUILDS', 2),
    allowLocalRepos: get(env, 'WARMSTART_ALLOW_LOCAL_REPOS') === '1',
    controlPlane: cpUrl
      ? {
          url: cpUrl,
          tokenFile: get(env, 'WARMSTART_CONTROL_PLANE_TOKEN_FILE'),
          heartbeatMs: positiveInt(env, 'WARMSTART_HEARTBEAT_SECONDS', 30) * 1000,
          nodeId: get(env, 'WARMSTART_NODE_ID'),
        }
      : null,
    shutdownGraceMs: positiveInt(env, 'WARMSTART_SHUTDOWN_GRACE_SECONDS', 60) * 1000,
    callbackOrigins: callbackOrigins(get(env, 'WARMSTART_CALLBACK_ORIGINS'), cpUrl),
  };
}
