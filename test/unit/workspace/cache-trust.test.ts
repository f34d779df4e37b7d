import { generateKeyPairSync } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSigningKey, parseTrustedKey } from '../../../agent/src/cache/signature.js';
import { signPushed } from '../../../agent/src/cache/signature-store.js';
import { configFromEnv } from '../../../agent/src/config/agent-config.js';
import { DockerodeEngine } from '../../../agent/src/docker/dockerode-engine.js';
import type { WorkspaceEvent } from '../../../agent/src/events/events.js';
import { PhaseRecorder } from '../../../agent/src/events/phase-recorder.js';
import { createOciApi } from '../../../agent/src/registry/oci-api.js';
import { createRegistryClient } from '../../../agent/src/registry/registry-client.js';
import { CacheSession } from '../../../agent/src/workspace/cache-phase.js';
import { planJob } from '../../../agent/src/workspace/plan.js';
import { deleteAllTags, pushTinyImage, removeLabelled, removeLocal, uniqueNamespace } from '../../support/registry-images.js';
import { loadTestbed } from '../../support/testbed.js';

// The cache session's moving pull with WARMSTART_CACHE_TRUSTED_KEYS, against the real engine and open registry.
const tb = loadTestbed();
const ns = uniqueNamespace('trust');
const engine = new DockerodeEngine();
const api = createOciApi();
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const key = parseSigningKey(privateKey.export({ type: 'pkcs8', format: 'pem' }));
const trusted = [parseTrustedKey(publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'k.pub')];
const config = configFromEnv({ WARMSTART_STATE_DIR: '/nonexistent', WARMSTART_CACHE_REGISTRY: `${tb.openRegistry}/${ns}` });
const plan = planJob({ workspaceId: 'w1', repository: 'https://github.com/acme/app' }, config);
const ref = plan.cacheRef!;
const repository = ref.slice(0, ref.lastIndexOf(':'));

function session(keys: typeof trusted | null): { s: CacheSession; events: WorkspaceEvent[] } {
  const events: WorkspaceEvent[] = [];
  const rec = new PhaseRecorder('w1', { emit: (e: WorkspaceEvent) => events.push(e) });
  const s = CacheSession.start({ engine, registry: createRegistryClient(), credentialSources: [], config: { cacheTrustedKeys: keys } }, plan, rec)!;
  return { s, events };
}

afterAll(async () => {
  await removeLocal([ref]);
  await removeLabelled(ns);
  await deleteAllTags(api, repository);
});

describe('moving pull with trusted keys', () => {
  it('uses a signed moving tag, refuses it once overwritten unsigned, and ignores signatures when no keys are set', async () => {
    expect(ref).toBe(`${tb.openRegistry}/${ns}/acme/app:devcontainer-cache`);
    await pushTinyImage(ref, tb.baseImage, { 'warmstart.test': ns, n: 'genuine' });
    await signPushed({ engine, ref, key, identity: 'github.com/acme/app', contentKey: null, creds: null });
    await removeLocal([ref]);
    expect(await session(trusted).s.moving).toEqual({ available: true, reason: null });

    await pushTinyImage(ref, tb.baseImage, { 'warmstart.test': ns, n: 'forged' });
    await removeLocal([ref]);
    const refused = session(trusted);
    const moving = await refused.s.moving;
    expect(moving.available).toBe(false);
    expect(moving.refused).toBe(true);
    expect(moving.reason).toMatch(/^CACHE_SIGNATURE_INVALID: .*no signature/);
    // not pulled: the engine never got the unsigned image
    expect(await engine.imageId(ref)).toBeNull();
    expect(JSON.stringify(refused.events)).toContain('not used: CACHE_SIGNATURE_INVALID');

    expect(await session(null).s.moving).toEqual({ available: true, reason: null });
  }, 60_000);
});
