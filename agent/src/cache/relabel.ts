/**
 * Labels a pushed image in the registry itself: a copy of its config with
 * the labels added and `created` set to now, uploaded as one small blob, and
 * a manifest naming the same layers put under each tag asked for. No layer
 * moves, the engine builds nothing, and every other field of the config stays
 * as the builder wrote it, the history the classic builder matches and
 * BuildKit's inline cache metadata (`moby.buildkit.cache.v0`) included: so
 * the labelled image is still layer cache for the builder that made it.
 *
 * The moving tag and the exact tag get the same bytes, so they share a digest
 * (and one signature, agent/src/cache/signature-store.ts): a start that
 * pulled the moving tag at t=0 and finds its key in the labels has the exact
 * image already (agent/src/workspace/exact.ts).
 */
import type { RegistryCredentials } from '../registry/credentials.js';
import { createOciApi, sha256Digest, type FetchedManifest, type OciApi } from '../registry/oci-api.js';

/** Image manifests whose config is a JSON image config: Docker's schema 2 and OCI's. */
const IMAGE_MANIFESTS = new Set(['application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.oci.image.manifest.v1+json']);
/** An image config is a few kB; BuildKit's inline cache adds a record per step. */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

export interface RelabelOptions {
  /** `host[:port]/path` */
  repository: string;
  /** the manifest digest the engine reported for its push */
  digest: string;
  labels: Record<string, string>;
  /** tags to put the labelled manifest under, in order */
  tags: string[];
  creds: RegistryCredentials | null;
  api?: OciApi;
  now?: () => Date;
}

interface ManifestJson {
  mediaType?: unknown;
  config: { mediaType?: unknown; digest: string; size?: unknown };
}

interface ConfigJson {
  config?: { Labels?: unknown };
  created?: unknown;
}

/**
 * An image manifest's JSON, its media type and its config, read from the
 * registry; null when `manifest` is not a single image (an index, or a media
 * type this does not know). `config` is null when the blob is missing or not JSON.
 */
async function imageParts(
  api: OciApi,
  repository: string,
  manifest: FetchedManifest,
  creds: RegistryCredentials | null,
): Promise<{ json: ManifestJson; mediaType: string; config: ConfigJson | null } | null> {
  const json = parseJson(manifest.bytes) as Partial<ManifestJson> | null;
  if (!json || typeof json.config?.digest !== 'string') return null;
  const mediaType = typeof json.mediaType === 'string' ? json.mediaType : manifest.mediaType;
  if (!IMAGE_MANIFESTS.has(mediaType)) return null;
  const bytes = await api.getBlob(repository, json.config.digest, creds, MAX_CONFIG_BYTES);
  const config = bytes ? parseJson(bytes) : null;
  return { json: json as ManifestJson, mediaType, config: config && typeof config === 'object' ? (config as ConfigJson) : null };
}

/**
 * Puts the labelled copy of `digest` under every tag; its digest. Null when
 * the manifest is not a single image (an index, or a media type this does
 * not know): the caller labels through the engine instead. Registry errors
 * throw.
 */
export async function relabelInRegistry(o: RelabelOptions): Promise<FetchedManifest | null> {
  const api = o.api ?? createOciApi();
  const manifest = await api.getManifest(o.repository, o.digest, o.creds);
  if (!manifest) throw new Error(`${o.repository}@${o.digest} is not in the registry after its push`);
  const image = await imageParts(api, o.repository, manifest, o.creds);
  if (!image) return null;
  if (!image.config) throw new Error(`the config of ${o.repository}@${o.digest} is not in the registry, or not JSON`);
  const inner = (image.config.config ?? {}) as { Labels?: Record<string, string> | null };
  const labelled = {
    ...image.config,
    // Exact-max-age (exact-max-age.ts) reads the age of the tag from here.
    created: (o.now?.() ?? new Date()).toISOString(),
    config: { ...inner, Labels: { ...(inner.Labels ?? {}), ...o.labels } },
  };
  const newConfig = Buffer.from(JSON.stringify(labelled));
  const configDigest = await api.putBlob(o.repository, newConfig, o.creds);
  const newManifest = Buffer.from(JSON.stringify({ ...image.json, config: { ...image.json.config, digest: configDigest, size: newConfig.length } }));
  for (const tag of o.tags) await api.putManifest(o.repository, tag, newManifest, image.mediaType, o.creds);
  return { digest: sha256Digest(newManifest), mediaType: image.mediaType, bytes: newManifest };
}

/** What an image's config says about it: its labels and when it was made. */
export interface ImageConfigFacts {
  /** the manifest digest the facts were read through */
  digest: string;
  labels: Record<string, string>;
  created: string | null;
}

/**
 * Reads the labels and creation time of the image under `reference` from the
 * registry (its manifest and config: two small GETs, no layer). Null when
 * there is no such image or it is not a single image manifest; registry errors throw.
 */
export async function readImageConfig(
  api: OciApi,
  repository: string,
  reference: string,
  creds: RegistryCredentials | null,
): Promise<ImageConfigFacts | null> {
  const manifest = await api.getManifest(repository, reference, creds);
  const config = manifest ? (await imageParts(api, repository, manifest, creds))?.config : null;
  if (!manifest || !config) return null;
  const raw = config.config?.Labels;
  const labels: Record<string, string> = {};
  if (raw && typeof raw === 'object') for (const [k, v] of Object.entries(raw)) if (typeof v === 'string') labels[k] = v;
  return { digest: manifest.digest, labels, created: typeof config.created === 'string' ? config.created : null };
}

function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return null; // not JSON: the caller treats it as no document of the kind it asked for
  }
}
