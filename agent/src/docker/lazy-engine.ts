import type { DockerEngine } from './engine.js';

/** Every method of DockerEngine: the compiler refuses this object if one is missing. */
const METHODS: Record<keyof DockerEngine, true> = {
  version: true,
  waitForEngine: true,
  versions: true,
  registryConfig: true,
  volumeExists: true,
  createVolume: true,
  removeVolume: true,
  imageId: true,
  imageRepoDigests: true,
  platform: true,
  pullImage: true,
  tagImage: true,
  labelImage: true,
  pushImage: true,
  removeImage: true,
  containerImageId: true,
  findContainers: true,
  removeContainer: true,
  runContainer: true,
  copyIntoVolume: true,
  inspectContainer: true,
  findContainersWithLabel: true,
  containerChanges: true,
  execInContainer: true,
  commitContainer: true,
  archiveOf: true,
  commitWithArchive: true,
  inspectImage: true,
  listImagesWithLabels: true,
};

/**
 * The Docker engine client, loaded on its first call rather than when the
 * agent starts. dockerode brings its SSH, gRPC and protobuf dependencies,
 * about a tenth of a second of module loading on a 2-core node; a CLI `up`
 * spawns the clone and the builder probe first, and the loading runs while
 * those child processes do.
 */
export function lazyEngine(load: () => Promise<DockerEngine> = defaultEngine): DockerEngine {
  let engine: Promise<DockerEngine> | null = null;
  const get = (): Promise<DockerEngine> => (engine ??= load());
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(METHODS) as (keyof DockerEngine)[]) {
    out[name] = async (...args: unknown[]) => {
      const e = await get();
      const fn = e[name] as ((...a: unknown[]) => Promise<unknown>) | undefined;
      // An engine without the optional method has nothing to do there.
      return fn ? fn.apply(e, args) : undefined;
    };
  }
  return out as unknown as DockerEngine;
}

async function defaultEngine(): Promise<DockerEngine> {
  const { DockerodeEngine } = await import('./dockerode-engine.js');
  return new DockerodeEngine();
}
