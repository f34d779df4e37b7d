import { readFileSync } from 'node:fs';

/** Facts about the real components brought up by test/testbed/up.sh. */
export interface Testbed {
  dir: string;
  /** host:port of the registry with htpasswd auth */
  registry: string;
  /** host:port of a read-only view of the same storage: every push is refused */
  readonlyRegistry: string;
  /** host:port of a registry without auth */
  openRegistry: string;
  registryUser: string;
  registryPassword: string;
  baseImage: string;
}

/** The testbed's dir and the KEY=value facts test/testbed/up.sh (and lxd.sh) wrote. */
export function readTestbedEnv(): { dir: string; env: Record<string, string> } {
  const dir = process.env.WARMSTART_TESTBED_DIR ?? '/var/lib/warmstart-testbed';
  let text: string;
  try {
    text = readFileSync(`${dir}/env`, 'utf8');
  } catch {
    throw new Error(`no testbed at ${dir}: run 'bash test/testbed/up.sh' first (npm test does)`);
  }
  const env = Object.fromEntries(
    text
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  return { dir, env };
}

export function loadTestbed(): Testbed {
  const { dir, env } = readTestbedEnv();
  const get = (k: string): string => {
    const v = env[k];
    if (!v) throw new Error(`testbed env lacks ${k}`);
    return v;
  };
  return {
    dir,
    registry: get('WARMSTART_TESTBED_REGISTRY'),
    readonlyRegistry: get('WARMSTART_TESTBED_READONLY_REGISTRY'),
    openRegistry: get('WARMSTART_TESTBED_OPEN_REGISTRY'),
    registryUser: get('WARMSTART_TESTBED_REGISTRY_USER'),
    registryPassword: readFileSync(get('WARMSTART_TESTBED_REGISTRY_PASSWORD_FILE'), 'utf8').trim(),
    baseImage: get('WARMSTART_TESTBED_BASE_IMAGE'),
  };
}

/** Node 2 (test/testbed/node2.sh): a second engine on this machine that builds with BuildKit. */
export interface Node2 {
  /** `unix://...` socket of node 2's dockerd */
  dockerHost: string;
  /** where its docker-buildx plugin is kept (out of the system plugin dirs), `:`-separated */
  pluginDirs: string;
  /** node 2's own docker client (engine 26's CLI) */
  dockerCli: string;
}

/** Node 2's facts, which test/testbed/up.sh merges into the testbed env. */
export function loadNode2(): Node2 {
  const { dir, env } = readTestbedEnv();
  const get = (k: string): string => {
    const v = env[k];
    if (!v) throw new Error(`testbed env at ${dir} lacks ${k}: node 2 is not up; run 'bash test/testbed/up.sh' (npm test does)`);
    return v;
  };
  return {
    dockerHost: get('WARMSTART_TESTBED_NODE2_DOCKER_HOST'),
    pluginDirs: get('WARMSTART_TESTBED_NODE2_PLUGIN_DIRS'),
    dockerCli: get('WARMSTART_TESTBED_NODE2_DOCKER_CLI'),
  };
}

/**
 * What a CLI (or agent) run on node 2 adds to its environment (pass it to
 * testEnv's `extra`): node 2's socket, the plugin dir its docker CLI finds
 * buildx in, and, as the default image, the registry copy of the base (node 2
 * has no local base image; it pulls the registry's).
 */
export function node2Env(tb: Testbed, node2: Node2 = loadNode2()): Record<string, string> {
  return {
    DOCKER_HOST: node2.dockerHost,
    WARMSTART_DOCKER_CLI_PLUGIN_DIRS: node2.pluginDirs,
    WARMSTART_DEFAULT_IMAGE: tb.baseImage,
  };
}
