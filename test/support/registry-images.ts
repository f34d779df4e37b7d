import { randomBytes } from 'node:crypto';
import { execa } from 'execa';

/** A short unique namespace for one test run's registry repositories. */
export function uniqueNamespace(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
}

/**
 * Builds a tiny image (the testbed's base plus labels, no new layer) tagged
 * `ref` and pushes it with docker; its registry digest. `created` backdates
 * nothing: Docker sets the config's created time, so images built in order
 * are ordered.
 */
export async function pushTinyImage(ref: string, base: string, labels: Record<string, string>): Promise<string> {
  const dockerfile = `FROM ${base}\n${Object.entries(labels)
    .map(([k, v]) => `LABEL ${k}=${JSON.stringify(v)}`)
    .join('\n')}\n`;
  await execa('docker', ['build', '-q', '-t', ref, '-'], { input: dockerfile });
  await execa('docker', ['push', ref]);
  const { stdout } = await execa('docker', ['image', 'inspect', '--format', '{{json .RepoDigests}}', ref]);
  const repo = ref.slice(0, ref.lastIndexOf(':'));
  const digest = (JSON.parse(stdout) as string[]).find((d) => d.startsWith(`${repo}@`));
  if (!digest) throw new Error(`no registry digest for ${ref} after its push`);
  return digest.slice(repo.length + 1);
}

/** Removes local tags, ignoring ones already gone. */
export async function removeLocal(refs: string[]): Promise<void> {
  if (refs.length) await execa('docker', ['rmi', '-f', ...refs], { reject: false });
}

/**
 * Puts an image manifest (no layers, a config with `created` and a marker
 * label) under `tag` through the registry API: a cheap stand-in for a pushed
 * exact image whose age the test chooses. Its digest.
 */
export async function putTinyManifest(
  api: import('../../agent/src/registry/oci-api.js').OciApi,
  repository: string,
  tag: string,
  created: Date,
  creds: import('../../agent/src/registry/credentials.js').RegistryCredentials | null,
  marker = tag,
): Promise<string> {
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: created.toISOString(),
      config: { Labels: { 'warmstart.test': marker } },
      rootfs: { type: 'layers', diff_ids: [] },
    }),
  );
  const configDigest = await api.putBlob(repository, config, creds);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [],
    }),
  );
  return api.putManifest(repository, tag, manifest, 'application/vnd.oci.image.manifest.v1+json', creds);
}

/** Removes every local image carrying `warmstart.test=<marker>` (what pushTinyImage built, tagged or not). */
export async function removeLabelled(marker: string): Promise<void> {
  const { stdout } = await execa('docker', ['image', 'ls', '-aq', '--filter', `label=warmstart.test=${marker}`]);
  const ids = [...new Set(String(stdout).split('\n').filter(Boolean))];
  if (ids.length) await execa('docker', ['rmi', '-f', ...ids], { reject: false });
}

/** Deletes every manifest under `repository` (a test's own namespace), ignoring what is already gone. */
export async function deleteAllTags(
  api: import('../../agent/src/registry/oci-api.js').OciApi,
  repository: string,
  creds: import('../../agent/src/registry/credentials.js').RegistryCredentials | null = null,
): Promise<void> {
  for (const tag of await api.listTags(repository, creds).catch(() => [])) {
    const m = await api.getManifest(repository, tag, creds).catch(() => null);
    if (m) await api.deleteManifest(repository, m.digest, creds).catch(() => false);
  }
}

/**
 * Whether the image config the registry holds (JSON) is the local image
 * `imageId`: the same config, or its labelled copy (agent/src/cache/relabel.ts
 * puts the content key and identity labels into a copy of the config), i.e.
 * the same layers and history and a content-key label. Returns why not, or null.
 */
export async function notThisImage(registryConfig: Buffer, configDigest: string, imageId: string, dockerHost?: string): Promise<string | null> {
  if (configDigest === imageId) return null;
  const local = await execa(
    'docker',
    ['image', 'inspect', '--format', '{{json .RootFS.Layers}}', imageId],
    dockerHost ? { env: { DOCKER_HOST: dockerHost } } : {},
  );
  const config = JSON.parse(registryConfig.toString('utf8')) as { rootfs?: { diff_ids?: string[] }; config?: { Labels?: Record<string, string> } };
  if (JSON.stringify(config.rootfs?.diff_ids ?? []) !== String(local.stdout).trim()) return `other layers than ${imageId}`;
  if (!config.config?.Labels?.['dev.warmstart.content-key']) return `another config than ${imageId}, and not its labelled copy`;
  return null;
}
