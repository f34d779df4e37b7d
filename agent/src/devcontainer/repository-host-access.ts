import { open, realpath } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'jsonc-parser';
import type { DockerEngine } from '../docker/engine.js';
import { composeHostAccess } from './compose-host-access.js';
import { MAX_CONFIG_DEPTH, tooDeepAt, type DiscoveredConfig } from './discover.js';
import { configHostAccess, metadataHostAccess, type HostAccessFinding } from './host-access.js';
import { isMissing } from '../util/best-effort.js';

const MAX_FEATURE_JSON_BYTES = 1024 * 1024;

/**
 * Everything the repository asks of the node, before anything starts: its
 * devcontainer.json (not the agent's override: the workspace volume, the git
 * credential mount and `--force-rm` are the agent's own), its local features'
 * devcontainer-feature.json (the CLI merges their `privileged`, `mounts`,
 * `capAdd` and `securityOpt` into the container), and its compose files.
 */
export async function repositoryHostAccess(discovered: DiscoveredConfig, repoDir: string): Promise<HostAccessFinding[]> {
  const configDir = path.dirname(discovered.path);
  const found = configHostAccess(discovered.config);
  const features = discovered.config.features;
  if (typeof features === 'object' && features !== null && !Array.isArray(features)) {
    for (const id of Object.keys(features)) {
      if (!id.startsWith('./') && !id.startsWith('../')) continue;
      found.push(...(await localFeature(path.resolve(configDir, id), repoDir, `features["${id}"]`)));
    }
  }
  if (discovered.kind === 'compose') found.push(...(await composeHostAccess(configDir, repoDir, discovered.config.dockerComposeFile)));
  return found;
}

/** The findings of a local image's `devcontainer.metadata` label (an exact hit's image, before it starts). */
export async function imageHostAccess(engine: Pick<DockerEngine, 'inspectImage'>, ref: string): Promise<HostAccessFinding[]> {
  const image = await engine.inspectImage(ref);
  return metadataHostAccess(image?.labels['devcontainer.metadata']);
}

/** discover.ts keeps the feature's folder in the clone; its json is read only if it is there too. */
async function localFeature(dir: string, repoDir: string, field: string): Promise<HostAccessFinding[]> {
  const file = path.join(dir, 'devcontainer-feature.json');
  let real: string;
  try {
    real = await realpath(file);
  } catch (err) {
    if (isMissing(err)) return []; // no such file: the CLI fails on the feature, nothing is started
    throw err;
  }
  const rel = path.relative(await realpath(repoDir), real);
  if (rel.startsWith('..') || path.isAbsolute(rel)) {
    return [{ field, value: null, reason: 'its devcontainer-feature.json leads outside the repository through a symlink' }];
  }
  const handle = await open(real, 'r');
  try {
    const st = await handle.stat();
    if (!st.isFile() || st.size > MAX_FEATURE_JSON_BYTES) {
      return [{ field, value: null, reason: 'its devcontainer-feature.json is not a regular file under 1 MiB, so it cannot be checked' }];
    }
    const text = await handle.readFile({ encoding: 'utf8' });
    if (tooDeepAt(text, MAX_CONFIG_DEPTH) >= 0) {
      return [{ field, value: null, reason: `its devcontainer-feature.json nests deeper than ${MAX_CONFIG_DEPTH} levels, so it cannot be checked` }];
    }
    const json: unknown = parse(text, [], { allowTrailingComma: true });
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      return [{ field, value: null, reason: 'its devcontainer-feature.json is not an object, so it cannot be checked' }];
    }
    return configHostAccess(json as Record<string, unknown>, `${field}.`);
  } finally {
    await handle.close();
  }
}
