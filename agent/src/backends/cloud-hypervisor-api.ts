import { request } from 'node:http';
import { WarmstartError, type ErrorCode } from '../errors.js';

/**
 * The cloud-hypervisor REST API on one VMM's unix socket (`--api-socket`),
 * as its OpenAPI (vmm/src/api/openapi/cloud-hypervisor.yaml) describes it:
 * RPC-style `PUT /api/v1/vm.<action>` and `GET /api/v1/vm.info|vmm.ping`.
 * One VMM holds at most one VM.
 */

/** `VmState` in the OpenAPI. */
export type ChVmState = 'Created' | 'Running' | 'Shutdown' | 'Paused' | 'BreakPoint';

/** The parts of `VmConfig` the backend reads or rewrites; everything else is kept as is. */
export interface ChVmConfig {
  payload?: Record<string, unknown>;
  disks?: Array<{ path?: string; id?: string; [k: string]: unknown }>;
  fs?: Array<{ tag: string; socket: string; id?: string; [k: string]: unknown }>;
  net?: Array<{ tap?: string; mac?: string; vhost_user?: boolean; id?: string; [k: string]: unknown }>;
  [k: string]: unknown;
}

export interface ChVmInfo {
  config: ChVmConfig;
  state: ChVmState;
  memory_actual_size?: number;
}

export interface ChPing {
  version: string;
  build_version?: string;
  pid?: number;
  features?: string[];
}

/** A refusal from the VMM: the typed code plus what upstream said, verbatim. */
export class ChApiError extends WarmstartError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly endpoint: string,
    readonly status: number,
    readonly messages: string[],
    detail: string,
  ) {
    super(code, message, { detail });
    this.name = 'ChApiError';
  }
}

// Upstream texts (vmm/src/vm.rs Error, vm-migration MigratableError, vmm/src/migration.rs).
// Before v53.0 every API error was a 500 (issue #7774), and even after #8320 only
// VmNotCreated/VmMissingConfig are 404 while state conflicts stay 500 (issue #8678),
// so the status alone cannot tell a precondition from a failure: the body must.
const NOT_CREATED = /VM is not created|VM config is missing/i;
const PRECONDITION =
  /VM is not running|VM is already created|VM is not booted|invalid (VM state )?transition|Trying to snapshot while VM is running|Destination is not a directory|Could not extract path from URL|migrating|restoring/i;
const SOURCE_MISSING = /Destination is not a directory|No such file or directory/i;

/** The typed code for a refusal of `endpoint` (exported for tests). */
export function classifyChError(endpoint: string, status: number, messages: string[]): ErrorCode {
  const text = messages.join('\n');
  // An endpoint this VMM does not have: the router's own 404 (`HttpError::NotFound`).
  if (status === 404 && messages.length === 1 && messages[0] === 'Not Found') return 'BACKEND_UNSUPPORTED';
  // The OpenAPI documents vm.restore's 404 as "already created"; for every other action 404 is "no VM".
  if (status === 404) return endpoint === 'vm.restore' ? 'BACKEND_PRECONDITION' : 'MACHINE_NOT_FOUND';
  // 405/409 are documented for wrong-state actions (no released VMM sends them yet, see #8678).
  if (status === 405 || status === 409) return 'BACKEND_PRECONDITION';
  if (NOT_CREATED.test(text)) return 'MACHINE_NOT_FOUND';
  if (endpoint === 'vm.restore' && SOURCE_MISSING.test(text)) return 'IMAGE_NOT_FOUND';
  if (PRECONDITION.test(text)) return 'BACKEND_PRECONDITION';
  return 'BACKEND_ERROR';
}

/** Error bodies are a JSON array of messages, outermost first (v48+); older ones or a bare 400 may be text or empty. */
function parseMessages(text: string): string[] {
  if (text.trim() === '') return [];
  try {
    const v: unknown = JSON.parse(text);
    if (Array.isArray(v)) return v.map(String);
    return [typeof v === 'string' ? v : JSON.stringify(v)];
  } catch {
    return [text.trim()];
  }
}

export interface ChApiOptions {
  /** Per-request limit; a snapshot writes all of guest RAM, so keep it generous. */
  timeoutMs?: number;
}

/** One VMM's API. Transport failures are BACKEND_UNAVAILABLE; refusals are ChApiError. */
export class CloudHypervisorApi {
  private readonly timeoutMs: number;

  constructor(
    readonly socketPath: string,
    options: ChApiOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 120_000;
  }

  ping(): Promise<ChPing> {
    return this.json<ChPing>('GET', 'vmm.ping');
  }
  info(): Promise<ChVmInfo> {
    return this.json<ChVmInfo>('GET', 'vm.info');
  }
  async create(config: ChVmConfig): Promise<void> {
    await this.call('PUT', 'vm.create', config);
  }
  async boot(): Promise<void> {
    await this.call('PUT', 'vm.boot');
  }
  async pause(): Promise<void> {
    await this.call('PUT', 'vm.pause');
  }
  async resume(): Promise<void> {
    await this.call('PUT', 'vm.resume');
  }
  /** `dir` must already exist: the VMM refuses a missing destination. */
  async snapshot(dir: string): Promise<void> {
    await this.call('PUT', 'vm.snapshot', { destination_url: `file://${dir}` });
  }
  /** Only into a VMM with no VM; the restored VM is Paused until `resume`. */
  async restore(dir: string, options: { prefault?: boolean } = {}): Promise<void> {
    const body: Record<string, unknown> = { source_url: `file://${dir}` };
    if (options.prefault !== undefined) body['prefault'] = options.prefault;
    await this.call('PUT', 'vm.restore', body);
  }
  async shutdown(): Promise<void> {
    await this.call('PUT', 'vm.shutdown');
  }
  async delete(): Promise<void> {
    await this.call('PUT', 'vm.delete');
  }
  /** Ends the VMM process (and its VM). */
  async shutdownVmm(): Promise<void> {
    await this.call('PUT', 'vmm.shutdown');
  }

  private async json<T>(method: 'GET' | 'PUT', endpoint: string): Promise<T> {
    const text = await this.call(method, endpoint);
    try {
      return JSON.parse(text) as T;
    } catch (cause) {
      throw new WarmstartError('BACKEND_ERROR', `cloud-hypervisor sent an unreadable ${endpoint} answer`, {
        cause,
        detail: text.slice(0, 500),
      });
    }
  }

  /** One request; resolves with the body of a 2xx answer. */
  call(method: string, endpoint: string, body?: unknown): Promise<string> {
    // Always a Content-Length (0 when bodiless): the VMM's micro_http server
    // answers 400 to a body on a bodiless action, and Node would otherwise send PUTs chunked.
    const payload = body === undefined ? '' : JSON.stringify(body);
    const headers: Record<string, string | number> = { 'content-length': Buffer.byteLength(payload), accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    return new Promise<string>((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, path: `/api/v1/${endpoint}`, method, headers, timeout: this.timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve(text);
          reject(this.refusal(method, endpoint, status, parseMessages(text)));
        });
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (cause: NodeJS.ErrnoException) =>
        reject(
          new WarmstartError('BACKEND_UNAVAILABLE', `no cloud-hypervisor VMM answers on ${this.socketPath}`, {
            cause,
            detail: `${method} ${endpoint}: ${cause.code ?? ''} ${cause.message}`.trim(),
          }),
        ),
      );
      req.end(payload);
    });
  }

  private refusal(method: string, endpoint: string, status: number, messages: string[]): ChApiError {
    const code = classifyChError(endpoint, status, messages);
    const last = messages[messages.length - 1] ?? `HTTP ${status}`;
    const detail = `${method} /api/v1/${endpoint} on ${this.socketPath} -> ${status} ${JSON.stringify(messages)}`;
    return new ChApiError(code, `cloud-hypervisor refused ${endpoint}: ${last}`, endpoint, status, messages, detail);
  }
}
