/**
 * The node's registry credentials for pulls other than the cache's: the
 * default image, a private base image a repository's Dockerfile names,
 * helper images. They serve exactly the hosts they were configured for
 * (credentials.ts binds each source to its hosts), never another.
 */
import type { AgentConfig } from '../config/agent-config.js';
import { describeError } from '../errors.js';
import { GHCR_HOST, resolveCredentials, type CredentialSource, type RegistryCredentials } from './credentials.js';
import { toDockerAuthConfig, type DockerAuthConfig } from './docker-config.js';

/** Docker's rule: the first path component is a registry when it has a '.' or ':' or is localhost; else Docker Hub. */
export function registryOfImage(image: string): string {
  const slash = image.indexOf('/');
  const first = slash > 0 ? image.slice(0, slash) : '';
  if (first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost')) return first.toLowerCase();
  return 'docker.io';
}

/**
 * dockerode auth for pulling `image`: the node's credentials for its
 * registry, or undefined (anonymous). A source that fails (a GitHub App
 * that cannot mint a token) leaves the pull anonymous; `onNote` hears why.
 */
export async function pullAuthFor(
  sources: readonly CredentialSource[],
  image: string,
  onNote?: (text: string) => void,
): Promise<DockerAuthConfig | undefined> {
  try {
    return toDockerAuthConfig(await resolveCredentials(sources, registryOfImage(image)));
  } catch (err) {
    onNote?.(`credentials for ${registryOfImage(image)} unavailable, pulling anonymously: ${describeError(err)}`);
    return undefined;
  }
}

/** The registry hosts the node holds credentials for: the configured ones, and ghcr.io with a GitHub App. */
export function nodeCredentialHosts(config: Pick<AgentConfig, 'registryCredentialHosts' | 'githubApp'>): string[] {
  return [...new Set([...config.registryCredentialHosts, ...(config.githubApp ? [GHCR_HOST] : [])])];
}

/** The node's credentials for each of its hosts (for a job's DOCKER_CONFIG); a host whose source fails is left out. */
export async function nodeRegistryCredentials(
  config: Pick<AgentConfig, 'registryCredentialHosts' | 'githubApp'>,
  sources: readonly CredentialSource[],
): Promise<RegistryCredentials[]> {
  const found: RegistryCredentials[] = [];
  for (const host of nodeCredentialHosts(config)) {
    const creds = await resolveCredentials(sources, host).catch(() => null); // no credentials for that host: the pull goes anonymous, and a refusal says so
    if (creds) found.push(creds);
  }
  return found;
}
