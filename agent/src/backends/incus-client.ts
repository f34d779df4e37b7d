/**
 * The Incus REST API (`/1.0`) as the backend uses it: JSON in and out, the
 * error envelope turned into typed errors, and background operations awaited
 * through `/1.0/operations/<id>/wait`. LXD serves the same API.
 */
import { WarmstartError, type ErrorCode } from '../errors.js';
import { resolveSocket, socketCandidates, unixRequest, type UnixHttpResponse } from './incus-http.js';

/** Options of {@link IncusClient}. */
export interface IncusClientOptions {
  /** the daemon's unix socket; default: the first of {@link socketCandidates} that answers */
  socketPath?: string;
  /** where `$INCUS_SOCKET` is read; default process.env */
  env?: NodeJS.ProcessEnv;
  /** per plain request; default 30 s */
  requestTimeoutMs?: number;
  /** how long one background operation (create, publish, exec, ...) may take; default 30 min */
  operationTimeoutMs?: number;
  now?: () => number;
}

/** A background operation as `/1.0/operations/<id>` describes it. */
export interface IncusOperation {
  id: string;
  description: string;
  status: string;
  err: string;
  metadata: Record<string, unknown> | null;
}

/** The envelope of every JSON answer. */
interface Envelope {
  type: 'sync' | 'async' | 'error';
  operation?: string;
  error?: string;
  error_code?: number;
  metadata: unknown;
}

/** How a 404 on this call is reported: the domain code that fits what was asked for. */
export interface CallOptions {
  notFound?: ErrorCode;
}

/** The longest server-side wait of one `/wait` request; longer operations are awaited in a loop. */
const WAIT_SLICE_S = 30;

export class IncusClient {
  private socket: Promise<string> | undefined;
  private readonly requestTimeoutMs: number;
  private readonly operationTimeoutMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: IncusClientOptions = {}) {
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.operationTimeoutMs = opts.operationTimeoutMs ?? 30 * 60_000;
    this.now = opts.now ?? Date.now;
  }

  /** GETs a resource; its `metadata`. */
  async get<T>(path: string, call: CallOptions = {}): Promise<T> {
    const env = await this.json('GET', path, undefined, call);
    return env.metadata as T;
  }

  /** Whether GET on the path answers 200 (404 → false; any other failure throws). */
  async exists(path: string): Promise<boolean> {
    const res = await this.send('GET', path);
    if (res.status === 404) return false;
    this.envelope('GET', path, res, {});
    return true;
  }

  /**
   * Sends a change and, when the daemon answers with a background operation
   * (202), waits for it: the finished operation, or throws BACKEND_ERROR with
   * the daemon's `err`. A synchronous answer returns null.
   */
  async run(method: string, path: string, body: unknown, call: CallOptions = {}): Promise<IncusOperation | null> {
    const env = await this.json(method, path, body, call);
    if (env.type !== 'async' || !env.operation) return null;
    const op = await this.waitOperation(env.operation);
    if (op.status !== 'Success') throw operationFailed(method, path, op);
    return op;
  }

  /** Like {@link run} but hands back a failed operation instead of throwing (exec reports its own failures). */
  async start(method: string, path: string, body: unknown, call: CallOptions = {}): Promise<IncusOperation> {
    const env = await this.json(method, path, body, call);
    if (env.type !== 'async' || !env.operation) {
      throw new WarmstartError('BACKEND_ERROR', `incus: ${method} ${path} did not start an operation`);
    }
    return this.waitOperation(env.operation);
  }

  /** Raw bytes of a non-JSON resource (exec output logs). */
  async raw(method: string, path: string, body?: Buffer, headers?: Record<string, string>, call: CallOptions = {}): Promise<Buffer> {
    const res = await this.send(method, path, body, headers);
    if (res.status >= 200 && res.status < 300) return res.body;
    this.envelope(method, path, res, call);
    return res.body;
  }

  /** Awaits an operation until it leaves Running, in slices of at most 30 s, up to the operation timeout. */
  async waitOperation(opPath: string): Promise<IncusOperation> {
    const deadline = this.now() + this.operationTimeoutMs;
    for (;;) {
      const left = Math.max(1, Math.ceil((deadline - this.now()) / 1000));
      const slice = Math.min(WAIT_SLICE_S, left);
      const path = `${opPath}/wait?timeout=${slice}`;
      const res = await this.send('GET', path, undefined, undefined, slice * 1000 + this.requestTimeoutMs);
      // LXD 5.0 answers a wait that timed out with 200 and the running
      // operation; newer Incus may say 504. Either way: wait again.
      if (res.status !== 504) {
        const op = this.envelope('GET', path, res, {}).metadata as IncusOperation;
        if (op.status !== 'Running' && op.status !== 'Pending') return op;
      }
      if (this.now() >= deadline) {
        throw new WarmstartError('BACKEND_ERROR', `incus: operation ${opPath} still running after ${this.operationTimeoutMs} ms`);
      }
    }
  }

  private async json(method: string, path: string, body: unknown, call: CallOptions): Promise<Envelope> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers = payload ? { 'content-type': 'application/json' } : undefined;
    return this.envelope(method, path, await this.send(method, path, payload, headers), call);
  }

  private async send(
    method: string,
    path: string,
    body?: Buffer,
    headers?: Record<string, string>,
    timeoutMs = this.requestTimeoutMs,
  ): Promise<UnixHttpResponse> {
    this.socket ??= this.opts.socketPath
      ? Promise.resolve(this.opts.socketPath)
      : resolveSocket(socketCandidates(this.opts.env ?? process.env), this.requestTimeoutMs);
    // a failed discovery is retried on the next call: the daemon may come up later
    const socket = await this.socket.catch((err: unknown) => {
      this.socket = undefined;
      throw err;
    });
    return unixRequest(socket, { method, path, body, headers, timeoutMs });
  }

  /** Parses the envelope; an error envelope or a non-2xx status throws a typed error. */
  private envelope(method: string, path: string, res: UnixHttpResponse, call: CallOptions): Envelope {
    let env: Envelope;
    try {
      env = JSON.parse(res.body.toString('utf8')) as Envelope;
    } catch (cause) {
      throw new WarmstartError('BACKEND_ERROR', `incus: ${method} ${path} answered HTTP ${res.status} without JSON`, { cause });
    }
    if (env.type !== 'error' && res.status >= 200 && res.status < 300) return env;
    const status = env.error_code || res.status;
    const message = env.error || `HTTP ${status}`;
    throw new WarmstartError(codeFor(status, call), `incus: ${method} ${path}: ${message}`, {
      detail: `HTTP ${status}: ${message}`,
    });
  }
}

function codeFor(status: number, call: CallOptions): ErrorCode {
  if (status === 404) return call.notFound ?? 'BACKEND_ERROR';
  if (status === 409) return 'BACKEND_PRECONDITION';
  return 'BACKEND_ERROR';
}

function operationFailed(method: string, path: string, op: IncusOperation): WarmstartError {
  return new WarmstartError('BACKEND_ERROR', `incus: ${op.description || `${method} ${path}`} failed: ${op.err || op.status}`, {
    detail: `operation ${op.id} ${op.status}: ${op.err}`,
  });
}
