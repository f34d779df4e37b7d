import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSigningKey, parseTrustedKey, signatureProblem, signClaim, type SignedClaim } from '../../../agent/src/cache/signature.js';
import { signingConfigFromEnv } from '../../../agent/src/config/signing-config.js';
import { isWarmstartError } from '../../../agent/src/errors.js';

function ed25519() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

const claim: SignedClaim = {
  digest: `sha256:${'a'.repeat(64)}`,
  repository: 'github.com/acme/widgets',
  contentKey: 'k'.repeat(64),
};

describe('signature document', () => {
  const ours = ed25519();
  const other = ed25519();
  const key = parseSigningKey(ours.privatePem);
  const trusted = [parseTrustedKey(ours.publicPem, 'ours.pem')];

  it('verifies what the key signed, for the moving and the exact use', () => {
    const doc = JSON.parse(JSON.stringify(signClaim(claim, key)));
    expect(signatureProblem(doc, claim, trusted)).toBeNull();
    // a moving tag accepts any signature of the digest for the repository
    expect(signatureProblem(doc, { ...claim, contentKey: null }, trusted)).toBeNull();
    expect(trusted[0]!.keyId).toBe(key.keyId);
    expect(key.keyId).toMatch(/^sha256:[a-f0-9]{64}$/);
  });

  it('refuses another key, a tampered digest, identity, content key or signature', () => {
    const doc = signClaim(claim, key);
    const foreign = signClaim(claim, parseSigningKey(other.privatePem));
    expect(signatureProblem(foreign, claim, trusted)).toMatch(/not trusted/);
    // another key's signature relabelled with our key id does not verify
    expect(signatureProblem({ ...foreign, keyId: key.keyId }, claim, trusted)).toMatch(/does not verify/);
    expect(signatureProblem(doc, { ...claim, digest: `sha256:${'b'.repeat(64)}` }, trusted)).toMatch(/signed for digest/);
    expect(signatureProblem(doc, { ...claim, repository: 'github.com/acme/other' }, trusted)).toMatch(/signed for repository/);
    expect(signatureProblem(doc, { ...claim, contentKey: 'x'.repeat(64) }, trusted)).toMatch(/signed for content key/);
    // a moving signature (no key) never serves an exact tag
    expect(signatureProblem(signClaim({ ...claim, contentKey: null }, key), claim, trusted)).toMatch(/signed for content key/);
    // a payload edited to name another digest no longer matches its signature
    const payload = JSON.parse(Buffer.from(doc.payload, 'base64').toString());
    const edited = { ...doc, payload: Buffer.from(JSON.stringify({ ...payload, digest: `sha256:${'c'.repeat(64)}` })).toString('base64') };
    expect(signatureProblem(edited, { ...claim, digest: `sha256:${'c'.repeat(64)}` }, trusted)).toMatch(/does not verify/);
    expect(signatureProblem({ nope: 1 }, claim, trusted)).toMatch(/malformed/);
    expect(signatureProblem(doc, claim, [])).toMatch(/not trusted/);
  });
});

describe('signing settings', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ws-sigcfg-'));
  const a = ed25519();
  const b = ed25519();
  const file = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const aPriv = file('a.key', a.privatePem);
  const aPub = file('a.pub', a.publicPem);
  const bPub = file('b.pub', b.publicPem);
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const rsaPriv = file('rsa.key', rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  const rsaPub = file('rsa.pub', rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString());

  const refusal = (env: NodeJS.ProcessEnv): string => {
    try {
      signingConfigFromEnv(env);
    } catch (err) {
      expect(isWarmstartError(err, 'INVALID_ARGUMENT')).toBe(true);
      return (err as Error).message;
    }
    throw new Error('accepted');
  };

  it('reads a signing key and a comma-separated trusted list (blanks and repeats ignored)', () => {
    const c = signingConfigFromEnv({ WARMSTART_CACHE_SIGNING_KEY_FILE: aPriv, WARMSTART_CACHE_TRUSTED_KEYS: ` ${aPub}, ,${bPub},${aPub}` });
    expect(c.cacheSigningKey?.keyId).toBe(parseTrustedKey(a.publicPem, 'x').keyId);
    expect(c.cacheTrustedKeys?.map((k) => k.source)).toEqual([aPub, bPub]);
    expect(signingConfigFromEnv({})).toEqual({ cacheSigningKey: null, cacheTrustedKeys: null });
    expect(signingConfigFromEnv({ WARMSTART_CACHE_TRUSTED_KEYS: '' }).cacheTrustedKeys).toBeNull();
  });

  it('stops start-up on a key that cannot be read or is not Ed25519, without showing it', () => {
    expect(refusal({ WARMSTART_CACHE_SIGNING_KEY_FILE: join(dir, 'missing') })).toMatch(/cannot read/);
    expect(refusal({ WARMSTART_CACHE_SIGNING_KEY_FILE: rsaPriv })).toMatch(/rsa key, not Ed25519/);
    expect(refusal({ WARMSTART_CACHE_SIGNING_KEY_FILE: aPub })).toMatch(/not a PEM private key/);
    expect(refusal({ WARMSTART_CACHE_TRUSTED_KEYS: rsaPub })).toMatch(/not Ed25519/);
    expect(refusal({ WARMSTART_CACHE_TRUSTED_KEYS: `${aPub},${join(dir, 'gone.pub')}` })).toMatch(/cannot read .*gone\.pub/);
    const leaked = refusal({ WARMSTART_CACHE_TRUSTED_KEYS: aPriv });
    expect(leaked).toMatch(/private key/);
    expect(leaked).not.toContain(a.privatePem.split('\n')[1]!);
    expect(refusal({ WARMSTART_CACHE_TRUSTED_KEYS: ' , ' })).toMatch(/names no key file/);
  });
});
