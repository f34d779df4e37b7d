import { statfs } from 'node:fs/promises';
import { hostname, freemem, loadavg, totalmem } from 'node:os';
import type { HeartbeatBody } from '../../../shared/src/api.js';
import { describeError } from '../errors.js';
import { postJson } from './http-post.js';
import { silentLogger, urlForLog, type CallbackLogger } from './logger.js';

export interface HeartbeatOptions {
  /** the control plane's base URL (`WARMSTART_CONTROL_PLANE_URL`) */
  url: string;
  /** see defaultNodeId() */
  nodeId: string;
  /** sent as `Authorization: Bearer <token>` when set */
  token?: string;
  /** between the starts of two beats (`WARMSTART_HEARTBEAT_SECONDS` * 1000) */
  intervalMs: number;
  /** the agent's version */
  version: string;
  /** what the job queue is doing right now */
  stats: () => { activeWorkspaces: string[]; queued: number };
  /** the file system whose free space is reported (the state or Docker data dir) */
  diskPath: string;
  fetch?: typeof fetch;
  now?: () => number;
  logger?: CallbackLogger;
}

export interface Heartbeat {
  /** No beat after this; one under way is aborted. */
  stop(): void;
}

/**
 * POSTs a HeartbeatBody to `<url>/nodes/<nodeId>/heartbeat` right away and
 * then every interval. A beat that fails is logged and not retried: the next
 * one is due soon and carries fresher numbers. Never throws; its timer does
 * not keep the process alive.
 */
export function startHeartbeat(options: HeartbeatOptions): Heartbeat {
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const now = options.now ?? Date.now;
  const logger = options.logger ?? silentLogger;
  const url = `${options.url.replace(/\/+$/, '')}/nodes/${encodeURIComponent(options.nodeId)}/heartbeat`;
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let failures = 0;

  const beat = async (): Promise<void> => {
    const startedAt = Date.now();
    try {
      const body = await collect(options, now);
      if (body.disk.error) logger.warn({ path: body.disk.path, error: body.disk.error }, 'heartbeat: disk usage unknown');
      const outcome = await postJson({
        fetch: fetchImpl,
        url,
        token: options.token,
        body,
        timeoutMs: Math.min(options.intervalMs, 10_000),
        signal: abort.signal,
        now,
      });
      if (outcome.kind === 'delivered') {
        if (failures > 0) logger.info({ url: urlForLog(url), failures }, 'heartbeat delivered again');
        failures = 0;
      } else if (!abort.signal.aborted) {
        failures += 1;
        const status = outcome.status;
        const error = outcome.kind === 'retry' ? outcome.error : undefined;
        logger.warn({ url: urlForLog(url), status, error, failures }, 'heartbeat not accepted');
      }
    } catch (err) {
      failures += 1;
      logger.warn({ url: urlForLog(url), error: describeError(err), failures }, 'heartbeat failed');
    }
    if (abort.signal.aborted) return;
    timer = setTimeout(() => void beat(), Math.max(0, options.intervalMs - (Date.now() - startedAt)));
    timer.unref();
  };

  void beat();
  return {
    stop() {
      abort.abort();
      clearTimeout(timer);
    },
  };
}

/** `WARMSTART_NODE_ID`, else the host name. */
export function defaultNodeId(env: NodeJS.ProcessEnv = process.env): string {
  return env.WARMSTART_NODE_ID?.trim() || hostname();
}

async function collect(options: HeartbeatOptions, now: () => number): Promise<HeartbeatBody> {
  const { activeWorkspaces, queued } = options.stats();
  return {
    nodeId: options.nodeId,
    version: options.version,
    activeWorkspaces,
    queuedJobs: queued,
    load: loadavg(),
    memory: { totalBytes: totalmem(), freeBytes: freemem(), agentRssBytes: process.memoryUsage().rss },
    disk: await diskUsage(options.diskPath),
    ts: new Date(now()).toISOString(),
  };
}

/** Zeros and why when the path cannot be read: a heartbeat is still worth sending, and zeros alone would read as a full disk. */
async function diskUsage(path: string): Promise<HeartbeatBody['disk']> {
  try {
    const s = await statfs(path);
    return { path, totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
  } catch (err) {
    return { path, totalBytes: 0, freeBytes: 0, error: describeError(err) };
  }
}
