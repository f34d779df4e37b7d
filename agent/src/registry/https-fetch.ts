/**
 * The one request shape the registry session sends (registry-session.ts),
 * over the global fetch or over node:https with an agent of its own: the
 * second carries a registry's own TLS settings (extra CAs, a client
 * certificate, no verification for an insecure registry) on that request
 * only, never for the process (registry-transports.ts).
 */
import { request, type Agent } from 'node:https';
import { Readable } from 'node:stream';

export interface RegistryRequest {
  method: string;
  headers: Record<string, string>;
  body?: Uint8Array | undefined;
  signal: AbortSignal;
}

/** Sends one request, never following redirects; rejects (a TypeError with the cause, as fetch does) when no response came. */
export type RegistryFetch = (url: string, init: RegistryRequest) => Promise<Response>;

/** A RegistryFetch over a fetch function (the global one, or a test's). */
export function viaFetch(f: typeof fetch): RegistryFetch {
  return (url, init) =>
    f(url, { method: init.method, headers: init.headers, body: init.body as BodyInit | undefined, signal: init.signal, redirect: 'manual' });
}

/** Methods that send `content-length: 0` without a body, as fetch does. */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/** A RegistryFetch for https URLs over node:https with `agent`. */
export function viaHttpsAgent(agent: Agent): RegistryFetch {
  return (url, init) =>
    new Promise<Response>((resolve, reject) => {
      const target = new URL(url);
      if (target.protocol !== 'https:') {
        reject(new TypeError(`not an https URL: ${target.protocol}`));
        return;
      }
      const headers: Record<string, string> = { ...init.headers };
      if (init.body) headers['content-length'] = String(init.body.byteLength);
      else if (BODY_METHODS.has(init.method)) headers['content-length'] = '0';
      const req = request(target, { method: init.method, headers, agent, signal: init.signal }, (res) => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 599) {
          res.destroy();
          reject(new TypeError('fetch failed', { cause: new Error(`unexpected HTTP status ${status}`) }));
          return;
        }
        const out = new Headers();
        try {
          for (const [name, value] of Object.entries(res.headers)) {
            for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) out.append(name, v);
          }
        } catch (err) {
          res.destroy();
          reject(new TypeError('fetch failed', { cause: err }));
          return;
        }
        // As fetch: no body for HEAD and the statuses that cannot have one.
        const bodiless = init.method === 'HEAD' || status === 204 || status === 205 || status === 304;
        if (bodiless) res.resume();
        const response = new Response(bodiless ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
          status,
          statusText: res.statusMessage ?? '',
          headers: out,
        });
        Object.defineProperty(response, 'url', { value: target.toString() });
        resolve(response);
      });
      req.on('error', (err) => reject(new TypeError('fetch failed', { cause: err })));
      req.end(init.body ? Buffer.from(init.body.buffer, init.body.byteOffset, init.body.byteLength) : undefined);
    });
}
