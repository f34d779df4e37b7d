/**
 * Remembers the buildx probe's answer (cli-runner.ts usesClassicBuilder)
 * between processes. The probe runs `docker buildx version`, which starts the
 * docker CLI and the buildx plugin, two Go programs: about 60 ms alone and
 * several times that beside a clone on a busy 2-core node, and a start's
 * moving ref waits for it (agent/src/cache/ref.ts builderRef). The answer
 * changes only when the docker CLI or a buildx plugin it could find is
 * installed, removed or replaced, so it is kept beside a fingerprint of
 * those files (path, size, mtime) and of the settings that steer the choice;
 * any change runs the probe again. A wrong answer would only pick the other
 * builder's tag: a layer miss, never a failed start.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import { writeFileAtomic } from '../state/atomic-file.js';

/** Where the docker CLI looks for plugins besides `cliPluginsExtraDirs` (the CLI's own list for Linux). */
const SYSTEM_PLUGIN_DIRS = [
  '/usr/local/lib/docker/cli-plugins',
  '/usr/local/libexec/docker/cli-plugins',
  '/usr/lib/docker/cli-plugins',
  '/usr/libexec/docker/cli-plugins',
];

async function fileStamp(path: string): Promise<string> {
  try {
    const s = await stat(path);
    return `${s.size}:${Math.round(s.mtimeMs)}`;
  } catch {
    return '-'; // not there (or unreadable): part of the fingerprint too, so its appearing re-probes
  }
}

/** The docker binary the probe and the jobs run: `dockerPath` as given, or found on PATH. */
async function dockerBinary(dockerPath: string, env: NodeJS.ProcessEnv): Promise<string> {
  if (isAbsolute(dockerPath)) return `${dockerPath}=${await fileStamp(dockerPath)}`;
  for (const dir of (env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const stamp = await fileStamp(join(dir, dockerPath));
    if (stamp !== '-') return `${join(dir, dockerPath)}=${stamp}`;
  }
  return `${dockerPath}=-`;
}

export async function probeFingerprint(o: { pluginDirs: readonly string[]; dockerPath: string; env?: NodeJS.ProcessEnv }): Promise<string> {
  const env = o.env ?? process.env;
  const userDir = join(env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'cli-plugins');
  const dirs = [...o.pluginDirs, userDir, ...SYSTEM_PLUGIN_DIRS];
  const parts = [
    await dockerBinary(o.dockerPath, env),
    `DOCKER_BUILDKIT=${env.DOCKER_BUILDKIT ?? ''}`,
    ...(await Promise.all(dirs.map(async (d) => `${d}=${await fileStamp(join(d, 'docker-buildx'))}`))),
  ];
  return createHash('sha256').update(parts.join('\n')).digest('hex');
}

/** The probe's answer from `file` when its fingerprint still matches; else `probe()`, kept in `file`. */
export async function cachedProbe(file: string, fingerprint: string, probe: () => Promise<boolean>): Promise<boolean> {
  try {
    const kept = JSON.parse(await readFile(file, 'utf8')) as { fingerprint?: unknown; classic?: unknown };
    if (kept.fingerprint === fingerprint && typeof kept.classic === 'boolean') return kept.classic;
  } catch {
    // none kept yet, or unreadable: probe
  }
  const classic = await probe();
  // Only a saving: a node that cannot write it probes again next time.
  await writeFileAtomic(file, `${JSON.stringify({ fingerprint, classic })}\n`).catch(() => undefined);
  return classic;
}
