/**
 * Retention for a cache registry: walks `/v2/_catalog` (under the namespace),
 * lists each repository's tags, reads each exact image's age from its config
 * blob, decides with agent/src/cache/prune-select.ts and deletes manifests by
 * digest. Works on registries that implement the distribution API's catalog
 * and manifest DELETE (distribution/registry with delete enabled, Harbor,
 * Zot...). GHCR does not: its versions are deleted through GitHub's packages
 * API, so it is refused here.
 */
import { WarmstartError } from '../errors.js';
import { GHCR_HOST, type RegistryCredentials } from '../registry/credentials.js';
import { createOciApi, type OciApi } from '../registry/oci-api.js';
import type { WorkspaceStore } from '../state/workspace-store.js';
import { EXACT_TAG, selectPrune, type PrunePolicy, type TagInfo } from './prune-select.js';
import { signedDigestOf } from './signature-store.js';

export interface PruneOptions {
  host: string;
  namespace: string | null;
  policy: PrunePolicy;
  dryRun: boolean;
  creds: RegistryCredentials | null;
  /** `host/path:tag` refs workspaces on this node run from (inUseRefs) */
  inUse: ReadonlySet<string>;
  api?: OciApi;
}

export interface PrunedImage {
  repository: string;
  tags: string[];
  digest: string;
  created: string | null;
  why: 'beyond-keep' | 'older-than';
  /** the signature tag deleted with it */
  signatureTag: string | null;
  /** false on a dry run, or when the DELETE failed (see error) */
  deleted: boolean;
  error?: string;
}

export interface PruneReport {
  dryRun: boolean;
  repositories: number;
  removed: PrunedImage[];
  spared: { repository: string; tag: string; why: string }[];
  errors: { repository: string; message: string }[];
}

/** The largest image config read for its `created`. */
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/** Refuses registries whose tags cannot be removed through the distribution API. */
export function assertPrunable(host: string): void {
  if (host.toLowerCase() === GHCR_HOST) {
    throw new WarmstartError(
      'REGISTRY_UNSUPPORTED',
      "ghcr.io cannot be pruned by warmstart: GHCR deletes package versions through GitHub's packages API (DELETE /orgs/{org}/packages/container/{name}/versions/{id}), not the registry's manifest DELETE; use a GitHub retention workflow (e.g. actions/delete-package-versions) there",
    );
  }
}

/** Refs (`host/path:tag`) that workspace records on this node name as their exact image. */
export async function inUseRefs(store: Pick<WorkspaceStore, 'list'>): Promise<Set<string>> {
  const refs = new Set<string>();
  for (const record of await store.list()) {
    const cache = record.result?.cache;
    if (cache?.ref && cache.hit === 'exact') refs.add(cache.ref);
  }
  return refs;
}

export async function pruneRegistry(o: PruneOptions): Promise<PruneReport> {
  assertPrunable(o.host);
  const api = o.api ?? createOciApi();
  const prefix = o.namespace ? `${o.namespace}/` : '';
  const report: PruneReport = { dryRun: o.dryRun, repositories: 0, removed: [], spared: [], errors: [] };
  const paths = (await api.catalog(o.host, o.creds)).filter((p) => p.startsWith(prefix)).sort();
  for (const path of paths) {
    const repository = `${o.host}/${path}`;
    try {
      const tags = await api.listTags(repository, o.creds);
      if (!tags.some((t) => EXACT_TAG.test(t))) continue;
      report.repositories++;
      const infos = await describeTags(api, repository, tags, o.creds);
      const inUse = new Set([...o.inUse].filter((r) => r.startsWith(`${repository}:`)).map((r) => r.slice(repository.length + 1)));
      const decision = selectPrune(infos, o.policy, inUse);
      for (const s of decision.spared) report.spared.push({ repository, ...s });
      for (const r of decision.remove) {
        const item: PrunedImage = {
          repository,
          tags: r.tags,
          digest: r.digest,
          created: r.created?.toISOString() ?? null,
          why: r.why,
          signatureTag: r.signatureTag?.tag ?? null,
          deleted: false,
        };
        report.removed.push(item);
        if (o.dryRun) continue;
        try {
          await api.deleteManifest(repository, r.digest, o.creds);
          if (r.signatureTag) await api.deleteManifest(repository, r.signatureTag.digest, o.creds);
          item.deleted = true;
        } catch (err) {
          item.error = err instanceof Error ? err.message : String(err);
        }
      }
    } catch (err) {
      report.errors.push({ repository, message: err instanceof Error ? err.message : String(err) });
    }
  }
  return report;
}

/** Digest of every tag, and the config's `created` of the exact ones. */
async function describeTags(api: OciApi, repository: string, tags: string[], creds: RegistryCredentials | null): Promise<TagInfo[]> {
  const out: TagInfo[] = [];
  for (const tag of tags) {
    const manifest = await api.getManifest(repository, tag, creds);
    if (!manifest) continue; // gone since the listing
    let created: Date | null = null;
    if (EXACT_TAG.test(tag) && signedDigestOf(tag) === null) created = await createdOf(api, repository, manifest.bytes, creds);
    out.push({ tag, digest: manifest.digest, created });
  }
  return out;
}

/** The `created` of an image manifest's config; null for an index or a config without one. */
async function createdOf(api: OciApi, repository: string, bytes: Buffer, creds: RegistryCredentials | null): Promise<Date | null> {
  const digest = (parseJson(bytes) as { config?: { digest?: unknown } } | null)?.config?.digest;
  if (typeof digest !== 'string') return null;
  const config = await api.getBlob(repository, digest, creds, MAX_CONFIG_BYTES);
  const created = config ? (parseJson(config) as { created?: unknown } | null)?.created : undefined;
  const date = typeof created === 'string' ? new Date(created) : null;
  return date && !Number.isNaN(date.getTime()) ? date : null;
}

function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return null; // not JSON: the caller treats it as no document of the kind it asked for
  }
}
