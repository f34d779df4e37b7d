import { randomUUID } from 'node:crypto';
import { WarmstartError, describeError } from '../errors.js';
import { CallbackStore, type StoredCallback } from './callback-store.js';
import { backoffDelay, postJson } from './http-post.js';
import { silentLogger, urlForLog, type CallbackLogger } from './logger.js';
import type { CallbackOutbox, CallbackRequest } from './outbox.js';

export interface FileOutboxOptions {
  /**
   * One file per pending callback. Each file holds the callback's bearer
   * token (delivery must survive an agent restart), so put this under the
   * agent's runtime directory (a tmpfs such as `/run/warmstart`), not under
   * the durable state directory: the token never reaches a disk, and a
   * reboot, after which the control plane has moved on anyway, drops it.
   */
  dir: string;
  fetch?: typeof fetch;
  /** ms since the epoch; orders callbacks and ages them */
  now?: () => number;
  /** in [0, 1); the jitter of the backoff */
  random?: () => number;
  /** schedules retries (and only retries); defaults to an unref'd setTimeout */
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
  /** first retry waits up to this (default 1 s)... */
  baseDelayMs?: number;
  /** ...doubling up to this (default 60 s) */
  maxDelayMs?: number;
  /** ceiling on a `Retry-After` (default 10 min) */
  maxRetryAfterMs?: number;
  /** one attempt, until the response headers (default 10 s) */
  requestTimeoutMs?: number;
  /** give up after this many attempts (default: no limit, see maxAgeMs) */
  maxAttempts?: number;
  /** give up when a callback still fails this long after it was queued (default 24 h) */
  maxAgeMs?: number;
  /** how long stop() lets requests under way finish before aborting them (default 2 s) */
  stopTimeoutMs?: number;
  logger?: CallbackLogger;
  /** told the outcome of every delivery attempt (metrics) */
  onAttempt?: (outcome: 'delivered' | 'refused' | 'retry' | 'given-up' | 'blocked') => void;
  /**
   * Checked before every attempt: why the URL may not be sent to now (its
   * host resolves to a refused address since it was accepted), or null.
   * A refused callback is dropped like one the control plane answered 4xx:
   * retrying would only aim the token at that address again.
   */
  checkTarget?: (url: string) => Promise<string | null>;
}

/** The callbacks of one workspace: delivered one at a time, in enqueue order. */
interface Lane {
  queue: StoredCallback[];
  /** a retry timer, or IMMEDIATE for an attempt about to start */
  timer?: unknown;
  sending?: Promise<void>;
  abort?: AbortController;
}

const IMMEDIATE = Symbol('immediate');

/**
 * A CallbackOutbox on disk. A callback is written before its first attempt
 * and removed once the control plane answered 2xx, or refused it for good
 * (4xx other than 408/429), or it failed for `maxAgeMs`. Each carries an
 * `Idempotency-Key`, stable across retries and restarts, so a control plane
 * can drop the duplicate sent after a crash between its 2xx and our delete.
 */
export class FileOutbox implements CallbackOutbox {
  private readonly store: CallbackStore;
  private readonly fetch: typeof fetch;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly maxRetryAfterMs: number;
  private readonly requestTimeoutMs: number;
  private readonly maxAttempts: number;
  private readonly maxAgeMs: number;
  private readonly stopTimeoutMs: number;
  private readonly logger: CallbackLogger;
  private readonly onAttempt: FileOutboxOptions['onAttempt'];
  private readonly checkTarget: ((url: string) => Promise<string | null>) | undefined;

  private readonly lanes = new Map<string, Lane>();
  private readonly known = new Set<string>();
  private readonly idleWaiters = new Set<() => void>();
  private running = false;
  private lastSeq = 0;
  private ready: Promise<void> | undefined;
  /** enqueue writes, one after the other, so callbacks join their lane in order */
  private writes: Promise<unknown> = Promise.resolve();

  constructor(options: FileOutboxOptions) {
    this.store = new CallbackStore(options.dir);
    this.fetch = options.fetch ?? globalThis.fetch;
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.setTimer = options.setTimer ?? defaultSetTimer;
    this.clearTimer = options.clearTimer ?? ((h) => clearTimeout(h as NodeJS.Timeout));
    this.baseDelayMs = options.baseDelayMs ?? 1000;
    this.maxDelayMs = options.maxDelayMs ?? 60_000;
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? 600_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.maxAttempts = options.maxAttempts ?? Number.POSITIVE_INFINITY;
    this.maxAgeMs = options.maxAgeMs ?? 24 * 3600_000;
    this.stopTimeoutMs = options.stopTimeoutMs ?? 2000;
    this.logger = options.logger ?? silentLogger;
    this.onAttempt = options.onAttempt;
    this.checkTarget = options.checkTarget;
  }

  async enqueue(request: CallbackRequest): Promise<void> {
    if (!/^https?:\/\//i.test(request.url)) {
      throw new WarmstartError('INVALID_ARGUMENT', 'a callback URL must be http(s)');
    }
    await this.init();
    const write = this.writes.then(async () => {
      const now = this.now();
      this.lastSeq = Math.max(now, this.lastSeq + 1);
      const { url, token, body, kind, workspaceId } = request;
      const cb: StoredCallback = {
        version: 1,
        id: randomUUID(),
        seq: this.lastSeq,
        createdAt: now,
        attempts: 0,
        request: { url, token, body, kind, workspaceId },
      };
      await this.store.write(cb);
      this.add(cb);
      this.logger.info(context(cb), 'callback queued');
      this.pump(workspaceId, 0);
    });
    this.writes = write.catch(() => undefined); // each write reports to its caller; the chain only orders them
    await write;
  }

  async start(): Promise<void> {
    await this.init();
    for (const name of await this.store.list()) {
      if (this.known.has(name.slice(17, -5))) continue;
      try {
        this.add(await this.store.read(name));
      } catch (err) {
        // The reason only: a JSON parse error quotes the file, which holds a token.
        const reason = (err as NodeJS.ErrnoException).code ?? 'not a callback record';
        this.logger.warn({ file: name, reason }, 'unreadable callback file; moved aside');
        await this.store.quarantine(name).catch(() => undefined); // a file that cannot be moved aside stays and is tried again
      }
    }
    this.running = true;
    for (const workspaceId of [...this.lanes.keys()]) this.pump(workspaceId, 0);
    this.logger.info({ pending: this.pending() }, 'callback outbox started');
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.writes;
    const sending: Promise<void>[] = [];
    for (const lane of this.lanes.values()) {
      if (lane.timer !== undefined && lane.timer !== IMMEDIATE) this.clearTimer(lane.timer);
      lane.timer = undefined;
      if (lane.sending) sending.push(lane.sending);
    }
    const all = Promise.allSettled(sending);
    if (!(await settlesWithin(all, this.stopTimeoutMs))) {
      for (const lane of this.lanes.values()) lane.abort?.abort();
      await all;
    }
    this.wakeIdleWaiters();
    this.logger.info({ pending: this.pending() }, 'callback outbox stopped');
  }

  pending(): number {
    return this.known.size;
  }

  /** Waits until every callback is delivered or given up; false when `timeoutMs` ran out first. */
  async flush(timeoutMs: number): Promise<boolean> {
    if (this.pending() === 0) return true;
    return new Promise<boolean>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.idleWaiters.delete(done);
        resolve(this.pending() === 0);
      };
      const timer = setTimeout(done, timeoutMs);
      this.idleWaiters.add(done);
    });
  }

  private init(): Promise<void> {
    this.ready ??= this.store.init().then(
      (maxSeq) => {
        this.lastSeq = Math.max(this.lastSeq, maxSeq);
      },
      (err: unknown) => {
        this.ready = undefined;
        throw new WarmstartError('STATE_WRITE_FAILED', `could not prepare the callback directory ${this.store.dir}`, {
          cause: err,
          detail: describeError(err),
        });
      },
    );
    return this.ready;
  }

  private add(cb: StoredCallback): void {
    if (this.known.has(cb.id)) return;
    this.known.add(cb.id);
    const workspaceId = cb.request.workspaceId;
    let lane = this.lanes.get(workspaceId);
    if (!lane) this.lanes.set(workspaceId, (lane = { queue: [] }));
    const at = lane.queue.findIndex((other) => other.seq > cb.seq);
    lane.queue.splice(at === -1 ? lane.queue.length : at, 0, cb);
  }

  /** Starts (after `delayMs`) the next attempt of a lane, unless one is already waiting or under way. */
  private pump(workspaceId: string, delayMs: number): void {
    const lane = this.lanes.get(workspaceId);
    if (!lane || !this.running || lane.timer !== undefined || lane.sending) return;
    const head = lane.queue[0];
    if (!head) {
      this.lanes.delete(workspaceId);
      return;
    }
    const run = (): void => {
      lane.timer = undefined;
      lane.sending = this.attempt(lane, head)
        .catch((err: unknown) => {
          this.logger.warn({ ...context(head), error: describeError(err) }, 'callback attempt failed unexpectedly');
          return this.maxDelayMs;
        })
        .then((next) => {
          lane.sending = undefined;
          if (next !== undefined) this.pump(workspaceId, next);
        });
    };
    if (delayMs > 0) {
      lane.timer = this.setTimer(run, delayMs);
    } else {
      lane.timer = IMMEDIATE;
      queueMicrotask(() => {
        if (lane.timer === IMMEDIATE) run();
      });
    }
  }

  /** One delivery attempt; resolves to the delay before the lane's next attempt, or undefined to pause it. */
  private async attempt(lane: Lane, cb: StoredCallback): Promise<number | undefined> {
    const refused = this.checkTarget ? await this.checkTarget(cb.request.url) : null;
    if (refused !== null) {
      this.logger.warn({ ...context(cb), reason: refused }, 'callback URL refused at delivery; dropping it');
      this.onAttempt?.('blocked');
      await this.forget(lane, cb);
      return 0;
    }
    const abort = new AbortController();
    lane.abort = abort;
    const outcome = await postJson({
      fetch: this.fetch,
      url: cb.request.url,
      token: cb.request.token,
      body: cb.request.body,
      headers: { 'idempotency-key': cb.id },
      timeoutMs: this.requestTimeoutMs,
      signal: abort.signal,
      now: this.now,
    });
    lane.abort = undefined;
    // Cut short by stop(): not a failure of the control plane; the next start tries again.
    if (outcome.kind === 'retry' && abort.signal.aborted) return undefined;
    cb.attempts += 1;
    const ctx = { ...context(cb), attempt: cb.attempts };
    if (outcome.kind === 'delivered') {
      this.logger.info({ ...ctx, status: outcome.status }, 'callback delivered');
      this.onAttempt?.('delivered');
      await this.forget(lane, cb);
      return 0;
    }
    if (outcome.kind === 'rejected') {
      this.logger.warn({ ...ctx, status: outcome.status }, 'control plane refused the callback; dropping it');
      this.onAttempt?.('refused');
      await this.forget(lane, cb);
      return 0;
    }
    const failure = { ...ctx, status: outcome.status, error: outcome.error };
    const ageMs = this.now() - cb.createdAt;
    if (cb.attempts >= this.maxAttempts || ageMs >= this.maxAgeMs) {
      this.logger.warn({ ...failure, ageMs }, 'callback still not accepted; giving up');
      this.onAttempt?.('given-up');
      await this.forget(lane, cb);
      return 0;
    }
    const backoff = backoffDelay(cb.attempts - 1, this.baseDelayMs, this.maxDelayMs, this.random);
    const delayMs = outcome.retryAfterMs === undefined ? backoff : Math.min(Math.max(outcome.retryAfterMs, backoff), this.maxRetryAfterMs);
    try {
      await this.store.write(cb);
    } catch (err) {
      this.logger.warn({ ...ctx, error: describeError(err) }, 'could not record the callback attempt');
    }
    this.logger.warn({ ...failure, delayMs }, 'callback not accepted; will retry');
    this.onAttempt?.('retry');
    return delayMs;
  }

  /** Done with a callback, delivered or given up. */
  private async forget(lane: Lane, cb: StoredCallback): Promise<void> {
    try {
      await this.store.remove(cb);
    } catch (err) {
      // Left on disk it is sent again after a restart; the Idempotency-Key covers that.
      this.logger.warn({ ...context(cb), error: describeError(err) }, 'could not remove a finished callback');
    }
    const at = lane.queue.indexOf(cb);
    if (at !== -1) lane.queue.splice(at, 1);
    this.known.delete(cb.id);
    if (this.pending() === 0) this.wakeIdleWaiters();
  }

  private wakeIdleWaiters(): void {
    for (const wake of [...this.idleWaiters]) wake();
  }
}

function context(cb: StoredCallback): Record<string, unknown> {
  return {
    workspaceId: cb.request.workspaceId,
    kind: cb.request.kind,
    callbackId: cb.id,
    url: urlForLog(cb.request.url),
  };
}

function defaultSetTimer(fn: () => void, ms: number): unknown {
  const timer = setTimeout(fn, ms);
  timer.unref();
  return timer;
}

/** True when `promise` settles within `ms` (real time: a bound on shutdown). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
