/**
 * Where signatures live: beside the image, in the same repository, under the
 * tag `sha256-<hex of the signed manifest digest>.warmstart-sig`. That tag
 * holds a small OCI image manifest whose one layer is the signature document
 * (agent/src/cache/signature.ts). A tag works on every registry (distribution
 * 2.8 has no referrers API); the manifest also names the signed image as its
 * `subject`, so registries that do have that API list it too. The suffix is
 * our own so that cosign's `.sig` tags, should an operator use cosign on the
 * same repository, are never overwritten or misread.
 */
import type { DockerEngine } from '../docker/engine.js';
import { describeError } from '../errors.js';
import type { RegistryCredentials } from '../registry/credentials.js';
import { createOciApi, sha256Digest, type FetchedManifest, type OciApi } from '../registry/oci-api.js';
import { signClaim, signatureProblem, SIGNATURE_MEDIA_TYPE, type SigningKey, type TrustedKey } from './signature.js';
import { splitTag } from './image-ref.js';

export const SIGNATURE_TAG_SUFFIX = '.warmstart-sig';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const EMPTY_CONFIG = { mediaType: 'application/vnd.oci.empty.v1+json', bytes: Buffer.from('{}') };
/** A signature document is a few hundred bytes; anything much larger is not ours. */
const MAX_DOCUMENT_BYTES = 16 * 1024;

/** The signature tag of a manifest digest. */
export function signatureTag(digest: string): string {
  return `${digest.replace(':', '-')}${SIGNATURE_TAG_SUFFIX}`;
}

/** The digest a signature tag is for, or null for any other tag. */
export function signedDigestOf(tag: string): string | null {
  const m = /^sha256-([a-f0-9]{64})\.warmstart-sig$/.exec(tag);
  return m ? `sha256:${m[1]}` : null;
}

function split(ref: string): { repository: string; tag: string } {
  const { repository, tag } = splitTag(ref);
  return { repository, tag: tag ?? 'latest' };
}

export interface SignPushedOptions {
  engine: Pick<DockerEngine, 'imageRepoDigests'>;
  /** the ref just pushed */
  ref: string;
  key: SigningKey;
  /** repository identity (agent/src/cache/identity.ts) */
  identity: string;
  contentKey: string | null;
  creds: RegistryCredentials | null;
  api?: OciApi;
}

/**
 * Signs what the registry now holds under `ref`, but only if that is the
 * image this engine just pushed: its digest must be among the local image's
 * RepoDigests (Docker records it on push), so a tag another node moved in
 * the meantime is never signed in our name. Returns the signed digest.
 */
export async function signPushed(o: SignPushedOptions): Promise<string> {
  const api = o.api ?? createOciApi();
  const { repository, tag } = split(o.ref);
  const image = await api.getManifest(repository, tag, o.creds);
  if (!image) throw new Error(`${o.ref} is not in the registry after its push`);
  const local = await o.engine.imageRepoDigests(o.ref);
  if (!local.includes(`${repository}@${image.digest}`)) {
    throw new Error(`${o.ref} points at ${image.digest}, not at the image this node pushed (another push since?)`);
  }
  return signManifest({ ...o, api, repository, image });
}

/**
 * Signs a manifest this node put itself (agent/src/cache/relabel.ts), known
 * by its bytes: there is no tag to resolve and no engine push to compare.
 */
export async function signManifest(o: {
  repository: string;
  image: FetchedManifest;
  key: SigningKey;
  identity: string;
  contentKey: string | null;
  creds: RegistryCredentials | null;
  api?: OciApi;
}): Promise<string> {
  const api = o.api ?? createOciApi();
  const { repository, image } = o;
  const doc = Buffer.from(JSON.stringify(signClaim({ digest: image.digest, repository: o.identity, contentKey: o.contentKey }, o.key)));
  await api.putBlob(repository, EMPTY_CONFIG.bytes, o.creds);
  const docDigest = await api.putBlob(repository, doc, o.creds);
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: SIGNATURE_MEDIA_TYPE,
    config: { mediaType: EMPTY_CONFIG.mediaType, digest: sha256Digest(EMPTY_CONFIG.bytes), size: EMPTY_CONFIG.bytes.length },
    layers: [{ mediaType: SIGNATURE_MEDIA_TYPE, digest: docDigest, size: doc.length }],
    subject: { mediaType: image.mediaType || OCI_MANIFEST, digest: image.digest, size: image.bytes.length },
  };
  await api.putManifest(repository, signatureTag(image.digest), Buffer.from(JSON.stringify(manifest)), OCI_MANIFEST, o.creds);
  return image.digest;
}

export interface VerifyOptions {
  /** `host[:port]/path` the image is in */
  repository: string;
  /** the digest the registry gave for the tag that will be used */
  digest: string;
  identity: string;
  /** null for a moving tag */
  contentKey: string | null;
  trusted: readonly TrustedKey[];
  creds: RegistryCredentials | null;
  api?: OciApi;
}

/**
 * Null when a trusted key signed `digest` for this repository (and key);
 * else the reason, `CACHE_SIGNATURE_INVALID: ...`. Never throws: a registry
 * that cannot show the signature is as good as no signature.
 */
export async function signatureRefusal(o: VerifyOptions): Promise<string | null> {
  const api = o.api ?? createOciApi();
  const tag = signatureTag(o.digest);
  const why = (text: string): string => `CACHE_SIGNATURE_INVALID: ${o.repository}@${o.digest.slice(0, 19)}…: ${text}`;
  try {
    const m = await api.getManifest(o.repository, tag, o.creds, OCI_MANIFEST);
    if (!m) return why(`no signature (no tag ${tag})`);
    const manifest = JSON.parse(m.bytes.toString('utf8')) as { layers?: { mediaType?: unknown; digest?: unknown; size?: unknown }[] };
    const layer = manifest.layers?.find((l) => l.mediaType === SIGNATURE_MEDIA_TYPE);
    if (!layer || typeof layer.digest !== 'string') return why(`${tag} holds no signature document`);
    const bytes = await api.getBlob(o.repository, layer.digest, o.creds, MAX_DOCUMENT_BYTES);
    if (!bytes) return why(`the signature document of ${tag} is missing`);
    let doc: unknown;
    try {
      doc = JSON.parse(bytes.toString('utf8'));
    } catch {
      return why('the signature document is not JSON');
    }
    const problem = signatureProblem(doc, { digest: o.digest, repository: o.identity, contentKey: o.contentKey }, o.trusted);
    return problem ? why(problem) : null;
  } catch (err) {
    return why(`signature not read: ${describeError(err)}`);
  }
}

/**
 * The `sign` step of a push (agent/src/cache/push-cache.ts) for a node with
 * a signing key; null without one. The exact ref is signed with its content
 * key, any other ref as a moving tag. Given the manifest (one this node put
 * in the registry itself), that is what is signed; else what the ref names,
 * if this engine pushed it.
 */
export type CacheSign = (ref: string, contentKey: string | null, manifest?: FetchedManifest) => Promise<string>;

export function cacheSigner(o: {
  engine: Pick<DockerEngine, 'imageRepoDigests'>;
  key: SigningKey | null | undefined;
  identity: string;
  creds: RegistryCredentials | null;
  exact: { ref: string; key: string } | null;
  /** the agent's registry client (agent.ts), so signing reaches the registry as its other calls do; absent: a default one */
  api?: OciApi | undefined;
}): CacheSign | null {
  const key = o.key;
  if (!key) return null;
  return (ref, contentKey, manifest) => {
    const signed = {
      key,
      identity: o.identity,
      creds: o.creds,
      contentKey: contentKey ?? (ref === o.exact?.ref ? o.exact.key : null),
      ...(o.api ? { api: o.api } : {}),
    };
    return manifest
      ? signManifest({ ...signed, repository: split(ref).repository, image: manifest })
      : signPushed({ ...signed, engine: o.engine, ref });
  };
}
