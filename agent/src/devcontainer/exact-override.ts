import type { DiscoveredConfig } from './discover.js';

/**
 * Config properties the CLI does not keep in an image's
 * `devcontainer.metadata` label but that still matter when a finished image
 * is started. Everything else the config says (lifecycle commands,
 * remoteUser, containerEnv, mounts, customizations, ...) is in that label
 * already, because the CLI wrote it there when it built the image; writing it
 * again here would run each lifecycle command twice.
 */
const KEPT = ['name', 'runArgs', 'appPort', 'initializeCommand'] as const;

/**
 * The override for an exact hit: start the finished image, build nothing.
 * The build section and features are gone (the features are installed in
 * the image); the image's label carries the rest.
 */
export function buildExactOverride(input: {
  discovered: DiscoveredConfig;
  image: string;
  workspaceMount: string;
  workspaceFolder: string;
  runArgs?: string[];
  settings?: Record<string, unknown>;
}): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  for (const key of KEPT) {
    if (input.discovered.config[key] !== undefined) config[key] = structuredClone(input.discovered.config[key]);
  }
  Object.assign(config, input.settings);
  config.image = input.image;
  config.workspaceMount = input.workspaceMount;
  config.workspaceFolder = input.workspaceFolder;
  if (input.runArgs?.length) {
    const own = Array.isArray(config.runArgs) ? config.runArgs.filter((a): a is string => typeof a === 'string') : [];
    config.runArgs = [...own, ...input.runArgs];
  }
  return config;
}
