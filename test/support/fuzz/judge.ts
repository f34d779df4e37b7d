import { ApiError } from '../../../shared/src/api.js';
import { ERROR_CODES } from '../../../agent/src/errors.js';
import { authVerdict, type HttpCase } from './http-cases.js';
import type { Answer, Sent } from './http-client.js';

/**
 * What the API promises for any request, checked on every answer:
 * - no 5xx, except the two the API documents for machine backends this node
 *   does not have (501 BACKEND_UNSUPPORTED: docker has no state snapshots;
 *   503 BACKEND_UNAVAILABLE: no Incus daemon, no cloud-hypervisor binary);
 * - every 4xx/5xx body is exactly `{code, message, detail?, validations?}`
 *   with a code from errors.ts, as JSON;
 * - a 401 carries `WWW-Authenticate: Bearer`;
 * - credentials the contract refuses never get past auth (401, or a refusal
 *   of the HTTP message itself before any route runs), and ones it accepts
 *   are never refused with a 401;
 * - there is an answer (the server never just hangs up or stalls).
 */
export interface Verdict {
  statuses: number[];
  /** each answer's status and error code (when it has one) */
  answers: Array<{ status: number; code?: string }>;
  codes: string[];
  problems: string[];
  /** 5xx answers the API documents for backends this node lacks */
  documented5xx: number;
  unexpected5xx: number;
}

const StrictApiError = ApiError.strict();
const KNOWN_CODES = new Set<string>(ERROR_CODES);
/** Refusals of the message itself, before routing and auth: malformed HTTP, URL, headers too large, an expectation we do not meet. */
const PRE_AUTH = new Set([400, 414, 417, 431]);

/** Backends named anywhere in the request (query or body). */
function backendsOf(c: HttpCase): Set<string> {
  const out = new Set<string>();
  if (c.query && !('raw' in c.query)) for (const [k, p] of c.query) if (k === 'backend') out.add(p.value);
  if (c.query && 'raw' in c.query) for (const m of c.query.raw.matchAll(/backend=([^&;]*)/g)) out.add(m[1]!);
  if (c.body.kind === 'json' && typeof c.body.value === 'object' && c.body.value !== null) {
    const b = (c.body.value as Record<string, unknown>).backend;
    if (typeof b === 'string') out.add(b);
  }
  return out;
}

function documented(c: HttpCase, a: Answer, code: string | undefined): boolean {
  // Readiness under the fuzzer's load: an engine slower than /readyz's 2 s says not ready, as documented.
  if (c.route === '/readyz' && a.status === 503 && code === 'DOCKER_UNAVAILABLE') return true;
  const backends = backendsOf(c);
  const onBackendRoute = /^\/v1\/(machines|snapshots)/.test(c.route);
  if (!onBackendRoute) return false;
  if (a.status === 501 && code === 'BACKEND_UNSUPPORTED') return backends.has('docker');
  if (a.status === 503 && code === 'BACKEND_UNAVAILABLE') return backends.has('incus') || backends.has('cloud-hypervisor');
  return false;
}

export function judge(c: HttpCase, sent: Sent): Verdict {
  const v: Verdict = { statuses: [], answers: [], codes: [], problems: [], documented5xx: 0, unexpected5xx: 0 };
  if (sent.answers.length === 0) {
    v.problems.push(`no answer (${sent.error ?? 'unknown'})`);
    return v;
  }
  const verdict = authVerdict(c.auth);
  // fetch sends `get` as GET (the spec normalises its case); raw, the parser refuses it before auth.
  const isPublic = sent.built.method.toUpperCase() === 'GET' && ['/health', '/readyz'].includes(sent.built.target.split('?')[0]!);
  for (const a of sent.answers) {
    v.statuses.push(a.status);
    let code: string | undefined;
    let validations = false;
    if (a.status >= 400 && a.body !== null) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(a.body);
      } catch {
        v.problems.push(`${a.status} body is not JSON: ${JSON.stringify(a.body.slice(0, 120))}`);
      }
      if (parsed !== undefined) {
        const shape = StrictApiError.safeParse(parsed);
        if (!shape.success) v.problems.push(`${a.status} body is not the error shape: ${JSON.stringify(a.body.slice(0, 160))}`);
        else {
          code = shape.data.code;
          validations = shape.data.validations !== undefined;
          v.codes.push(code);
          if (!KNOWN_CODES.has(code)) v.problems.push(`${a.status} carries unknown code ${code}`);
        }
      }
      if (!/^application\/json/.test(a.headers['content-type'] ?? '')) {
        v.problems.push(`${a.status} has Content-Type ${JSON.stringify(a.headers['content-type'] ?? null)}`);
      }
    }
    v.answers.push(code === undefined ? { status: a.status } : { status: a.status, code });
    if (a.status >= 500) {
      if (documented(c, a, code)) v.documented5xx += 1;
      else {
        v.unexpected5xx += 1;
        v.problems.push(`${a.status} ${code ?? ''} ${a.body?.slice(0, 160) ?? ''}`.trim());
      }
    }
    if (a.status === 401 && a.headers['www-authenticate'] !== 'Bearer') {
      v.problems.push(`401 with WWW-Authenticate ${JSON.stringify(a.headers['www-authenticate'] ?? null)}`);
    }
    if (verdict === 'invalid' && !isPublic && a.status !== 401) {
      // A HEAD answer has no body to show its code.
      const refusedMessage = PRE_AUTH.has(a.status) && (a.body === null || (code === 'INVALID_REQUEST' && !validations));
      if (!refusedMessage) v.problems.push(`auth form ${c.auth} got ${a.status} ${code ?? ''}: refused credentials must not get past auth`);
    }
    if (verdict === 'valid' && a.status === 401) v.problems.push(`auth form ${c.auth} (valid) got 401`);
  }
  return v;
}
