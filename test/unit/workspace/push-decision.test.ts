import { generateKeyPairSync } from 'node:crypto';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { configFromEnv } from '../../../agent/src/config/agent-config.js';
import type { DockerEngine } from '../../../agent/src/docker/engine.js';
import { PhaseRecorder } from '../../../agent/src/events/phase-recorder.js';
import { githubAppCredentials } from '../../../agent/src/registry/github-app.js';
import { createRegistryClient } from '../../../agent/src/registry/registry-client.js';
import { CacheSession } from '../../../agent/src/workspace/cache-phase.js';
import { planJob } from '../../../agent/src/workspace/plan.js';
import { pushDecision } from '../../../agent/src/workspace/push-decision.js';

type PushInput = Parameters<typeof pushDecision>[0];
const creds = (source: 'job' | 'static' | 'github-app') => ({ registry: 'ghcr.io', username: 'u', password: 'p', source });
const plan: PushInput['plan'] = { cacheRef: 'ghcr.io/acme/app:devcontainer-cache', cacheOffReason: null, pushOffReason: null };
const deny = { hostAccess: 'deny' as const, allRepositoriesTrusted: false };
const go: PushInput = { plan, kind: 'dockerfile', exactHit: false, credentials: creds('static'), blocked: null, config: deny };

describe('whether a ready workspace is pushed', () => {
  it('the first rule that applies decides, in order', () => {
    expect(pushDecision(go)).toBeNull();
    const rows: [Partial<PushInput>, { status: string; reason: string | RegExp }][] = [
      [
        { plan: { ...plan, cacheRef: null, cacheOffReason: 'cache disabled for this job' } },
        { status: 'skipped', reason: 'cache disabled for this job' },
      ],
      [{ kind: 'image' }, { status: 'skipped', reason: 'image-based config: no built image to cache' }],
      [
        { exactHit: true, blocked: 'push permission probe: denied' },
        { status: 'skipped', reason: /^exact hit/ },
      ],
      [
        { plan: { ...plan, pushOffReason: 'push disabled for this job' }, credentials: null, blocked: 'REGISTRY_AUTH_FAILED: x' },
        { status: 'skipped', reason: 'push disabled for this job' },
      ],
      // A credential source that failed is a fault; no credentials at all is a pull-only node.
      [
        { credentials: null, blocked: 'REGISTRY_AUTH_FAILED: credentials unavailable: GITHUB_APP_AUTH_FAILED: 401' },
        { status: 'failed', reason: /^REGISTRY_AUTH_FAILED: / },
      ],
      [{ credentials: null }, { status: 'skipped', reason: 'no registry credentials: pull only' }],
      [{ config: { hostAccess: 'allow', allRepositoriesTrusted: false } }, { status: 'skipped', reason: /host access is allowed/ }],
      [
        { config: { hostAccess: 'allow', allRepositoriesTrusted: false }, credentials: creds('job') },
        { status: 'go', reason: '' },
      ],
      [{ blocked: 'push permission probe: denied' }, { status: 'failed', reason: 'push permission probe: denied' }],
    ];
    for (const [change, want] of rows) {
      const got = pushDecision({ ...go, ...change });
      const label = JSON.stringify(change);
      if (want.status === 'go') {
        expect(got, label).toBeNull();
        continue;
      }
      expect(got?.status, label).toBe(want.status);
      if (typeof want.reason === 'string') expect(got?.reason, label).toBe(want.reason);
      else expect(got?.reason, label).toMatch(want.reason);
    }
  });
});

describe('a GitHub App that cannot mint a token', () => {
  beforeAll(() => nock.disableNetConnect());
  afterEach(() => nock.cleanAll());
  afterAll(() => nock.enableNetConnect());

  it("blocks the push as REGISTRY_AUTH_FAILED with GitHub's refusal, and no key or token bytes", async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    const scope = nock('https://api.github.com')
      .post('/app/installations/77/access_tokens')
      .reply(403, { message: 'Resource not accessible by integration', documentation_url: 'https://docs.github.com/rest' });
    const app = githubAppCredentials({ appId: 5, privateKey: pem, installationId: 77 });
    const config = configFromEnv({ WARMSTART_STATE_DIR: '/nonexistent', WARMSTART_CACHE_REGISTRY: 'ghcr.io/acme' });
    const jobPlan = planJob({ workspaceId: 'w1', repository: 'https://github.com/acme/app' }, config);
    // The engine is not reached for the reason under test; it refuses the moving pull.
    const engine = {
      imageRepoDigests: async () => [],
      pullImage: async () => Promise.reject(new Error('no engine here')),
    } as unknown as DockerEngine;
    const notes: string[] = [];
    const rec = new PhaseRecorder('w1', { emit: (e) => void ('text' in e && e.text && notes.push(e.text)) });
    const session = CacheSession.start({ engine, registry: createRegistryClient(), credentialSources: [app] }, jobPlan, rec, { pullMoving: false })!;
    expect(await session.credentials).toBeNull();
    const blocked = await session.pushBlocked;
    expect(scope.isDone()).toBe(true);
    expect(blocked).toMatch(/^REGISTRY_AUTH_FAILED: credentials unavailable: GITHUB_APP_AUTH_FAILED/);
    expect(blocked).toContain('HTTP 403: Resource not accessible by integration');
    expect(pushDecision({ ...go, credentials: null, blocked })).toEqual({ status: 'failed', reason: blocked });
    const keyBody = pem.split('\n').slice(1, -2).join('');
    for (const text of [blocked!, ...notes]) {
      expect(text).not.toContain(keyBody.slice(0, 40));
      expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./); // no JWT
    }
  });
});
