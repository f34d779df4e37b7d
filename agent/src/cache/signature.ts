/**
 * The signature document a signing node stores beside each cache image it
 * pushes (agent/src/cache/signature-store.ts): an Ed25519 signature over the
 * image's manifest digest, its repository identity (agent/src/cache/identity.ts)
 * and, for an exact tag, its content key. A node that trusts only some keys
 * uses an image as cache only when such a document, by one of them, names the
 * digest the registry gave it and the repository (and key) it wants.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

/** The node's signing key; the private half never leaves this process. */
export interface SigningKey {
  privateKey: KeyObject;
  keyId: string;
}

/** A public key a node accepts signatures from. */
export interface TrustedKey {
  publicKey: KeyObject;
  keyId: string;
  /** the file it came from, for messages */
  source: string;
}

/** What is signed. */
export interface SignedClaim {
  digest: string;
  repository: string;
  /** the exact tag's content key; null for a moving tag (used only as layers) */
  contentKey: string | null;
}

export interface SignatureDocument {
  schemaVersion: 1;
  /** base64 of the signed bytes: the claim as JSON, so no canonical form is needed */
  payload: string;
  keyId: string;
  /** base64 Ed25519 signature of the payload bytes */
  signature: string;
}

export const SIGNATURE_MEDIA_TYPE = 'application/vnd.dev.warmstart.signature.v1+json';
const CLAIM_TYPE = 'dev.warmstart.cache-signature/v1';

/** `sha256:<hex>` of the public key's SubjectPublicKeyInfo: names a key without showing it. */
export function keyIdOf(key: KeyObject): string {
  const spki = (key.type === 'private' ? createPublicKey(key) : key).export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

/** Reads an Ed25519 private key (PEM); throws a message naming the problem, never the key. */
export function parseSigningKey(pem: string | Buffer): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch {
    throw new Error('not a PEM private key');
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`an ${privateKey.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
  return { privateKey, keyId: keyIdOf(privateKey) };
}

/** Reads an Ed25519 public key (PEM, SPKI); a private key is refused, so a secret is never spread as a "public" file. */
export function parseTrustedKey(pem: string | Buffer, source: string): TrustedKey {
  const text = pem.toString();
  if (/PRIVATE KEY/.test(text)) throw new Error('holds a private key: give the public key (openssl pkey -pubout)');
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(text);
  } catch {
    throw new Error('not a PEM public key');
  }
  if (publicKey.asymmetricKeyType !== 'ed25519') throw new Error(`an ${publicKey.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
  return { publicKey, keyId: keyIdOf(publicKey), source };
}

export function signClaim(claim: SignedClaim, key: SigningKey): SignatureDocument {
  const payload = Buffer.from(JSON.stringify({ type: CLAIM_TYPE, digest: claim.digest, repository: claim.repository, contentKey: claim.contentKey }));
  return {
    schemaVersion: 1,
    payload: payload.toString('base64'),
    keyId: key.keyId,
    signature: sign(null, payload, key.privateKey).toString('base64'),
  };
}

/**
 * Why `doc` does not vouch for `want` under the trusted keys; null when it
 * does. A moving tag is wanted with contentKey null and accepts any
 * signature of its digest for the repository (an exact tag's image is the
 * same layers); an exact tag needs its own content key.
 */
export function signatureProblem(doc: unknown, want: SignedClaim, trusted: readonly TrustedKey[]): string | null {
  const d = doc as Partial<SignatureDocument> | null;
  if (typeof d !== 'object' || d === null || d.schemaVersion !== 1 || typeof d.payload !== 'string' || typeof d.signature !== 'string') {
    return 'the signature document is malformed';
  }
  const key = trusted.find((k) => k.keyId === d.keyId);
  if (!key) return `signed by key ${String(d.keyId).slice(0, 80)}, which is not trusted`;
  const payload = Buffer.from(d.payload, 'base64');
  if (!verify(null, payload, key.publicKey, Buffer.from(d.signature, 'base64'))) return `the signature does not verify with key ${key.keyId}`;
  let claim: Partial<SignedClaim> & { type?: unknown };
  try {
    claim = JSON.parse(payload.toString('utf8')) as typeof claim;
  } catch {
    return 'the signed payload is not JSON';
  }
  if (claim.type !== CLAIM_TYPE) return 'the signed payload is of another type';
  if (claim.digest !== want.digest) return `signed for digest ${String(claim.digest).slice(0, 80)}, not ${want.digest}`;
  if (claim.repository !== want.repository)
    return `signed for repository ${JSON.stringify(String(claim.repository).slice(0, 200))}, not ${JSON.stringify(want.repository)}`;
  if (want.contentKey !== null && claim.contentKey !== want.contentKey) {
    return `signed for content key ${JSON.stringify(String(claim.contentKey).slice(0, 80))}, not ${JSON.stringify(want.contentKey)}`;
  }
  return null;
}
