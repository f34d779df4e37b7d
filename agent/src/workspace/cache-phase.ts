import type { CacheResult } from '../../../shared/src/workspace-result.js';
import type { DockerEngine } from '../docker/engine.js';
import { describeError } from '../errors.js';
import type { PhaseRecorder } from '../events/phase-recorder.js';
import { resolveCredentials, type CredentialSource, type RegistryCredentials } from '../registry/credentials.js';
import { toDockerAuthConfig } from '../registry/docker-config.js';
import type { RegistryClient } from '../registry/registry-client.js';
import type { JobPlan } from './plan.js';

export interface CacheDeps {
  engine: DockerEngine;
  registry: RegistryClient;
  credentialSources: CredentialSource[];
}

export interface CachePreparation {
  cache: CacheResult;
  credentials: RegistryCredentials | null;
  /** refs to inject as build.cacheFrom: only what was actually pulled */
  cacheFrom: string[];
  /** why a push would not work, learned before building (null: go ahead) */
  pushBlocked: string | null;
}

function emptyCache(ref: string | null, hit: CacheResult['hit'], reason: string | null): CacheResult {
  return { ref, hit, reason, stepsCached: null, stepsTotal: null };
}

/**
 * Credentials, the push-permission probe and the pull of the moving ref.
 * Never throws: registry trouble becomes a `miss` with its reason.
 */
export async function prepareCache(deps: CacheDeps, plan: JobPlan, rec: PhaseRecorder): Promise<CachePreparation> {
  const ref = plan.cacheRef;
  if (!ref || !plan.registryHost) {
    return { cache: emptyCache(null, 'disabled', plan.cacheOffReason), credentials: null, cacheFrom: [], pushBlocked: null };
  }
  const host = plan.registryHost;
  const sources = plan.jobCredentials
    ? [{ get: async () => plan.jobCredentials }, ...deps.credentialSources]
    : deps.credentialSources;
  let credentialNote: string | null = null;
  const credentials = await rec.phase('credentials', async () => {
    try {
      return await resolveCredentials(sources, host);
    } catch (err) {
      credentialNote = `credentials unavailable: ${describeError(err)}`;
      return null;
    }
  });
  if (credentialNote) rec.note(credentialNote, 'credentials');

  const repository = ref.slice(0, ref.lastIndexOf(':'));
  const [pulled, pushBlocked] = await rec.phase('pull', () =>
    Promise.all([
      deps.engine
        .pullImage(ref, toDockerAuthConfig(credentials))
        .then(() => null)
        .catch((err: unknown) => describeError(err)),
      credentials
        ? deps.registry
            .probePush(repository, credentials)
            .then(() => null)
            .catch((err: unknown) => `push permission probe: ${describeError(err)}`)
        : Promise.resolve(null),
    ]),
  );
  if (pulled !== null) {
    const reason = credentialNote ? `${pulled} (${credentialNote})` : pulled;
    return { cache: emptyCache(ref, 'miss', reason), credentials, cacheFrom: [], pushBlocked };
  }
  return { cache: emptyCache(ref, 'layers', null), credentials, cacheFrom: [ref], pushBlocked };
}
