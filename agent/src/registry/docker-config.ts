/**
 * Docker auth for one job, kept away from the user's ~/.docker/config.json:
 * a throwaway DOCKER_CONFIG directory for the `docker` CLI that the
 * devcontainers CLI runs, and the auth object dockerode takes per call.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RegistryCredentials } from './credentials.js';

/** A per-job DOCKER_CONFIG directory; `dispose` deletes it. */
export interface DockerConfigDir {
  /** set DOCKER_CONFIG to this */
  dir: string;
  /** removes the directory and the secret in it; safe to call twice */
  dispose(): Promise<void>;
}

/** What dockerode's pull/push take as `authconfig`. */
export interface DockerAuthConfig {
  username: string;
  password: string;
  serveraddress: string;
}

/**
 * Creates a fresh directory (mode 0700) under parentDir holding `config.json`
 * (mode 0600) with an `auths` entry for each credentials' registry (the
 * first for a registry wins), or no entries when there are none, so docker
 * never falls back to the user's own config.
 */
export async function createDockerConfig(
  parentDir: string,
  creds: RegistryCredentials | null | readonly (RegistryCredentials | null)[],
  options: { cliPluginDirs?: readonly string[] } = {},
): Promise<DockerConfigDir> {
  await mkdir(parentDir, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(join(parentDir, 'docker-config-'));
  const dispose = (): Promise<void> => rm(dir, { recursive: true, force: true });
  try {
    // mkdtemp already uses 0700; chmod states it rather than trusting defaults.
    await chmod(dir, 0o700);
    const auths: Record<string, { auth: string }> = {};
    for (const c of Array.isArray(creds) ? creds : [creds]) {
      if (!c || authsKey(c.registry) in auths) continue;
      auths[authsKey(c.registry)] = { auth: Buffer.from(`${c.username}:${c.password}`).toString('base64') };
    }
    const file = join(dir, 'config.json');
    // 'wx': the file is new in a new dir; mode applies at creation, before
    // the secret is written, so it is never readable by others.
    // cliPluginsExtraDirs (docker CLI 19.03+): plugins such as docker-buildx kept out of the system dirs.
    const pluginDirs = options.cliPluginDirs ?? [];
    const config = pluginDirs.length > 0 ? { auths, cliPluginsExtraDirs: [...pluginDirs] } : { auths };
    await writeFile(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(file, 0o600);
  } catch (err) {
    await dispose();
    throw err;
  }
  return { dir, dispose };
}

/** dockerode auth for creds, or undefined (anonymous) when there are none. */
export function toDockerAuthConfig(creds: RegistryCredentials | null | undefined): DockerAuthConfig | undefined {
  if (!creds) return undefined;
  return { username: creds.username, password: creds.password, serveraddress: authsKey(creds.registry) };
}

/** Docker keys Docker Hub by its legacy index URL, every other registry by host[:port]. */
function authsKey(registry: string): string {
  const host = registry.toLowerCase();
  return host === 'docker.io' || host === 'index.docker.io' || host === 'registry-1.docker.io' ? 'https://index.docker.io/v1/' : registry;
}
