/**
 * How the agent's own registry calls reach each registry, so that they see
 * what dockerd sees (docs/configuration.md "Registries the engine treats
 * specially"): a registry the engine treats as insecure (insecure-registries.ts)
 * is tried over https without certificate verification, then over plain
 * http, as dockerd does; any other is https only, verified against the
 * default CAs plus the `*.crt` of its certs.d entry, with the client
 * certificate found there (certs-dir.ts). The engine's settings are read once
 * per `ttlMs` and shared by every session; an engine that does not answer
 * leaves dockerd's defaults (loopback is insecure), never a failure.
 */
import { createHash } from 'node:crypto';
import { Agent } from 'node:https';
import { rootCertificates } from 'node:tls';
import { describeError } from '../errors.js';
import { DEFAULT_CERTS_DIR, readHostCertificates, type HostCertificates } from './certs-dir.js';
import { viaFetch, viaHttpsAgent, type RegistryFetch } from './https-fetch.js';
import { decideSecurity, DOCKERD_DEFAULTS, hostnameOf, systemLookup, type AddressLookup, type EngineRegistryConfig } from './insecure-registries.js';

export type Scheme = 'https' | 'http';

/** How one registry is reached, decided once per session. */
export interface RegistryRoute {
  /** host[:port], lowercased */
  host: string;
  /** false: the engine treats it as insecure */
  secure: boolean;
  /** schemes in the order tried: `https` alone, or `https` then `http` for an insecure registry */
  schemes: readonly Scheme[];
  /** why it is (in)secure */
  reason: string;
  /** what the decision rested on: the engine's settings, or dockerd's defaults and why */
  basis: string;
  /** its certs.d entry; null when there is none (an insecure registry's is not read, as dockerd does not) */
  certs: HostCertificates | null;
  /** the certs.d entry this registry's files would be in */
  certsPath: string;
  /** how a request to `url` goes: this registry's TLS settings on its own host, its extra CAs elsewhere (a token realm, a redirect) */
  fetchFor(url: URL): RegistryFetch;
}

/** Options of {@link RegistryTransports}. */
export interface RegistryTransportsOptions {
  /** The engine's registry settings (`GET /info`); absent, undefined or failing: dockerd's defaults. */
  engineConfig?: () => Promise<EngineRegistryConfig | undefined>;
  /** WARMSTART_DOCKER_CERTS_DIR; default /etc/docker/certs.d */
  certsDir?: string;
  /** how long the engine's settings, a route and the scheme that answered are kept; default 30 s */
  ttlMs?: number;
  /** how long the engine may take to give its settings; default 2 s */
  engineTimeoutMs?: number;
  lookup?: AddressLookup;
  now?: () => number;
  /** plain requests (http, and https that needs nothing of its own); default the global fetch */
  fetch?: typeof fetch;
}

interface Kept<T> {
  value: T;
  until: number;
}

/** The routes of one agent: create one (agent.ts) and hand it to every registry client. */
export class RegistryTransports {
  readonly certsDir: string;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly plain: RegistryFetch;
  private engine: Kept<Promise<{ config: EngineRegistryConfig; basis: string }>> | null = null;
  private readonly routes = new Map<string, Kept<Promise<RegistryRoute>>>();
  private readonly answers = new Map<string, Kept<Scheme>>();
  private readonly agents = new Map<string, { fingerprint: string; agent: Agent }>();

  constructor(private readonly o: RegistryTransportsOptions = {}) {
    this.certsDir = o.certsDir ?? DEFAULT_CERTS_DIR;
    this.ttlMs = o.ttlMs ?? 30_000;
    this.now = o.now ?? (() => performance.now());
    this.plain = viaFetch(o.fetch ?? fetch);
  }

  /** The route to `host` (host[:port]); rejects only for a certs.d entry that cannot be used (REGISTRY_ERROR). */
  route(host: string): Promise<RegistryRoute> {
    const key = host.toLowerCase();
    const kept = this.routes.get(key);
    if (kept && this.now() < kept.until) return kept.value;
    const value = this.build(key);
    this.routes.set(key, { value, until: this.now() + this.ttlMs });
    value.catch(() => {
      if (this.routes.get(key)?.value === value) this.routes.delete(key); // a fixed certs.d entry is read on the next call
    });
    return value;
  }

  /** Notes the scheme `host` answered over, so the next sessions start there. */
  answered(host: string, scheme: Scheme): void {
    this.answers.set(host.toLowerCase(), { value: scheme, until: this.now() + this.ttlMs });
  }

  /** The scheme `host` last answered over, while it is kept. */
  answeredOver(host: string): Scheme | undefined {
    const kept = this.answers.get(host.toLowerCase());
    return kept && this.now() < kept.until ? kept.value : undefined;
  }

  private async build(host: string): Promise<RegistryRoute> {
    const { config, basis } = await this.engineSettings();
    const decision = await decideSecurity(host, config, this.o.lookup ?? systemLookup);
    const certs = decision.secure ? await readHostCertificates(this.certsDir, host) : null;
    let own = this.plain;
    let others = this.plain;
    if (!decision.secure) {
      // dockerd's own rule for an insecure registry: TLS when offered, unverified.
      own = viaHttpsAgent(this.agent(host, { rejectUnauthorized: false }));
    } else if (certs) {
      // Extra CAs add to the default ones (as dockerd adds them to the system pool), they do not replace them.
      const ca = certs.ca.length > 0 ? [...rootCertificates, ...certs.ca] : undefined;
      const pairs = certs.clientPairs;
      own = viaHttpsAgent(
        this.agent(host, {
          ca,
          cert: pairs.length > 0 ? pairs.map((p) => p.cert) : undefined,
          key: pairs.length > 0 ? pairs.map((p) => p.key) : undefined,
        }),
      );
      if (ca) others = viaHttpsAgent(this.agent(`${host} elsewhere`, { ca }));
    }
    const hostname = hostnameOf(host);
    return {
      host,
      secure: decision.secure,
      schemes: decision.secure ? ['https'] : ['https', 'http'],
      reason: decision.reason,
      basis,
      certs,
      certsPath: `${this.certsDir}/${host}`,
      fetchFor: (url) => (url.protocol !== 'https:' ? this.plain : url.hostname.replace(/^\[|\]$/g, '') === hostname ? own : others),
    };
  }

  /** One agent per registry (and per TLS settings): a changed certs.d entry replaces it, and the old one's sockets close. */
  private agent(
    name: string,
    tls: { ca?: string[] | undefined; cert?: string[] | undefined; key?: string[] | undefined; rejectUnauthorized?: boolean },
  ): Agent {
    const fingerprint = createHash('sha256').update(JSON.stringify(tls)).digest('hex');
    const kept = this.agents.get(name);
    if (kept?.fingerprint === fingerprint) return kept.agent;
    kept?.agent.destroy();
    const agent = new Agent({ keepAlive: true, ...tls });
    this.agents.set(name, { fingerprint, agent });
    return agent;
  }

  private engineSettings(): Promise<{ config: EngineRegistryConfig; basis: string }> {
    if (this.engine && this.now() < this.engine.until) return this.engine.value;
    const value = this.readEngine();
    this.engine = { value, until: this.now() + this.ttlMs };
    return value;
  }

  private async readEngine(): Promise<{ config: EngineRegistryConfig; basis: string }> {
    const read = this.o.engineConfig;
    if (!read) return { config: DOCKERD_DEFAULTS, basis: "dockerd's defaults (no engine asked)" };
    const ms = this.o.engineTimeoutMs ?? 2_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the engine gave no registry settings within ${ms} ms`)), ms);
        timer.unref();
      });
      const config = await Promise.race([read(), late]);
      if (!config) return { config: DOCKERD_DEFAULTS, basis: "dockerd's defaults (the engine does not report its registry settings)" };
      return { config, basis: "the engine's registry settings" };
    } catch (err) {
      return { config: DOCKERD_DEFAULTS, basis: `dockerd's defaults (engine settings unavailable: ${describeError(err)})` };
    } finally {
      clearTimeout(timer);
    }
  }
}

/** One line for `warmstart doctor`: the mode, what it rests on, and the scheme that answered when known. */
export function describeRoute(route: RegistryRoute, answeredOver?: Scheme): string {
  let mode: string;
  if (!route.secure) mode = `insecure (${route.reason}): https without certificate verification, then plain http`;
  else if (!route.certs) mode = `https, verified against the default CAs (nothing in ${route.certsPath})`;
  else {
    const parts = [`https, verified against the default CAs`];
    if (route.certs.ca.length > 0) parts.push(`${route.certs.ca.length} CA file(s) from ${route.certs.dir}`);
    const client = route.certs.clientPairs.map((p) => p.name).join(', ');
    mode = `${parts.join(' and ')}${client ? `; client certificate ${client} from ${route.certs.dir}` : ''}`;
  }
  return `${mode}; decided from ${route.basis}${answeredOver ? `; answered over ${answeredOver}` : ''}`;
}
