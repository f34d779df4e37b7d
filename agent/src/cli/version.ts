import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: { dir: string; version: string } | null | undefined;

/** The project's root (where its package.json is), found once from wherever this file runs (src, dist or a release); null when not found. */
function packageRoot(): { dir: string; version: string } | null {
  return root === undefined ? (root = findPackageRoot()) : root;
}

function findPackageRoot(): { dir: string; version: string } | null {
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

/**
 * The commit the agent was made from: HEAD of the git checkout it runs from
 * (through one symbolic ref), or the one a release records in its
 * release.json (deploy/release.sh); null for other installed copies.
 */
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
  if (head === null) return releaseCommit(root);
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

/** The commit in a release's release.json, when it names one. */
function releaseCommit(root: string): string | null {
  try {
    const commit = (JSON.parse(readFileSync(join(root, 'release.json'), 'utf8')) as { commit?: unknown }).commit;
    return typeof commit === 'string' && /^[0-9a-f]{40,64}$/.test(commit) ? commit : null;
  } catch {
    return null; // not a release
  }
}
