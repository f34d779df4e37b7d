import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project's root (where its package.json is), found from wherever this file runs (src or dist); null when not found. */
function packageRoot(): { dir: string; version: string } | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'warmstart' && pkg.version) return { dir, version: pkg.version };
    } catch {
      // not here; look one level up
    }
    dir = dirname(dir);
  }
  return null;
}

/** The version in the project's package.json. */
export function packageVersion(): string {
  return packageRoot()?.version ?? '0.0.0';
}

/** The commit of a git checkout the agent runs from (HEAD, through one symbolic ref); null for an installed copy. */
export function packageCommit(root = packageRoot()?.dir): string | null {
  if (!root) return null;
  const read = (p: string): string | null => {
    try {
      return readFileSync(join(root, '.git', p), 'utf8').trim();
    } catch {
      return null; // not a checkout, or a ref only in packed-refs
    }
  };
  const head = read('HEAD');
  if (head === null) return null;
  const ref = /^ref: (refs\/[^\s]+)$/.exec(head)?.[1];
  if (!ref) return /^[0-9a-f]{40,64}$/.test(head) ? head : null;
  const direct = read(ref);
  if (direct && /^[0-9a-f]{40,64}$/.test(direct)) return direct;
  const packed = read('packed-refs');
  return (
    packed
      ?.split('\n')
      .find((l) => l.endsWith(` ${ref}`))
      ?.split(' ')[0] ?? null
  );
}

/** The devcontainers CLI's version, as installed beside the agent. */
export function devcontainersCliVersion(root = packageRoot()?.dir): string | null {
  if (!root) return null;
  try {
    return (
      (JSON.parse(readFileSync(join(root, 'node_modules', '@devcontainers', 'cli', 'package.json'), 'utf8')) as { version?: string }).version ?? null
    );
  } catch {
    return null; // not installed beside it: `doctor` says so
  }
}
