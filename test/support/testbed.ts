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
