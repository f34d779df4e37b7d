/**
 * What checking a cache image's signature (agent/src/cache/signature-store.ts
 * signatureRefusal) costs a start: the signature tag's manifest and its one
 * document read from the testbed's password-protected registry (each call
 * answers the registry's auth challenge, as a job's does), then the Ed25519
 * check. A start checks at most two (moving and exact tag).
 *
 * Alone: node dist/test/bench/signature.js [--runs N]   (npm run build first)
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseSigningKey, parseTrustedKey } from '../../agent/src/cache/signature.js';
import { signatureRefusal, signPushed } from '../../agent/src/cache/signature-store.js';
import type { RegistryCredentials } from '../../agent/src/registry/credentials.js';
import { createOciApi } from '../../agent/src/registry/oci-api.js';
import { loadTestbed } from './fixture.js';
import { median, round } from './stats.js';

export interface SignatureMeasurement {
  runs: number;
  medianMs: number | null;
  maxMs: number | null;
  /** two checks, as a start that verifies its moving and its exact tag */
  perStartMedianMs: number | null;
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

export async function measureSignatureCheck(o: {
  runs: number;
  registry: string;
  username: string;
  password: string;
}): Promise<SignatureMeasurement> {
  const creds: RegistryCredentials = { registry: o.registry, username: o.username, password: o.password, source: 'static' };
  const api = createOciApi();
  const repo = `${o.registry}/bench-sig-${randomBytes(4).toString('hex')}/acme/app`;
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const key = parseSigningKey(privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const trusted = [parseTrustedKey(publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'bench.pub')];
  // An image manifest put through the API stands in for a pushed cache image: only its digest is signed.
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: {} }));
  const configDigest = await api.putBlob(repo, config, creds);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [],
    }),
  );
  const digest = await api.putManifest(repo, 'devcontainer-cache', manifest, OCI_MANIFEST, creds);
  const identity = 'github.com/acme/app';
  try {
    await signPushed({
      engine: { imageRepoDigests: async () => [`${repo}@${digest}`] },
      ref: `${repo}:devcontainer-cache`,
      key,
      identity,
      contentKey: null,
      creds,
    });
    const check = () => signatureRefusal({ repository: repo, digest, identity, contentKey: null, trusted, creds });
    const refusal = await check(); // warm the connection once
    if (refusal !== null) throw new Error(`the bench's own signature was refused: ${refusal}`);
    const runs: number[] = [];
    for (let i = 0; i < o.runs; i++) {
      const t0 = performance.now();
      await check();
      runs.push(performance.now() - t0);
    }
    const m = median(runs);
    return { runs: o.runs, medianMs: round(m, 1), maxMs: round(Math.max(...runs), 1), perStartMedianMs: m === null ? null : round(2 * m, 1) };
  } finally {
    for (const tag of await api.listTags(repo, creds).catch(() => [] as string[])) {
      const got = await api.getManifest(repo, tag, creds).catch(() => null);
      if (got) await api.deleteManifest(repo, got.digest, creds).catch(() => false);
    }
  }
}

export function signatureRow(m: SignatureMeasurement): string {
  return `signature check (password-protected registry), ${m.runs} runs: median ${m.medianMs} ms (max ${m.maxMs} ms); per start (moving + exact) ${m.perStartMedianMs} ms, goal ≤ 50 ms`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { runs: { type: 'string' } }, strict: true });
  const tb = await loadTestbed();
  const m = await measureSignatureCheck({
    runs: Number(values.runs ?? 20),
    registry: tb.registry,
    username: tb.registryUser,
    password: tb.registryPassword,
  });
  process.stdout.write(`${signatureRow(m)}\n${JSON.stringify(m)}\n`);
}
