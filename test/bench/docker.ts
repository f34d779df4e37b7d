import { sh } from './proc.js';

/** The label every image of one bench run carries (the fixtures' Dockerfiles set it). */
export const RUN_LABEL = 'warmstart.bench-run';
/** The label the bench puts on the containers it starts itself (`--id-label`, `docker run --label`). */
export const BENCH_CONTAINER_LABEL = 'warmstart.bench';
/** warmstart's own label on a workspace's containers. */
export const WORKSPACE_LABEL = 'warmstart.workspace';

export async function docker(args: string[], env?: NodeJS.ProcessEnv) {
  return sh('docker', args, env ? { env } : {});
}

const lines = (text: string): string[] => [
  ...new Set(
    text
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean),
  ),
];

/** Ids of the images (also untagged intermediates) that carry this bench run's label. */
export async function runImages(runId: string, env?: NodeJS.ProcessEnv): Promise<string[]> {
  const r = await docker(['image', 'ls', '-aq', '--filter', `label=${RUN_LABEL}=${runId}`], env);
  return lines(r.stdout);
}

/**
 * Makes this engine a "fresh node" for the bench run: removes every image
 * labelled with the run id (children first, so repeat) and the refs named.
 * Images without the label are never touched; the base image stays (every
 * node has it). Containers using those images must be gone first.
 */
export async function wipeRunImages(runId: string, refs: string[] = [], env?: NodeJS.ProcessEnv): Promise<{ left: number; ms: number }> {
  const t0 = performance.now();
  for (const ref of refs) await docker(['rmi', '-f', ref], env);
  let ids = await runImages(runId, env);
  for (let round = 0; round < 6 && ids.length > 0; round++) {
    await docker(['rmi', '-f', ...ids], env);
    ids = await runImages(runId, env);
  }
  return { left: ids.length, ms: Math.round(performance.now() - t0) };
}

/** Removes containers carrying a label (key=value), running or not. */
export async function removeContainers(label: string, env?: NodeJS.ProcessEnv): Promise<number> {
  const ids = lines((await docker(['ps', '-aq', '--filter', `label=${label}`], env)).stdout);
  if (ids.length > 0) await docker(['rm', '-f', '-v', ...ids], env);
  return ids.length;
}

/** Removes a warmstart workspace's containers and its volume. */
export async function removeWorkspace(workspaceId: string, env?: NodeJS.ProcessEnv): Promise<void> {
  await removeContainers(`${WORKSPACE_LABEL}=${workspaceId}`, env);
  await docker(['volume', 'rm', '-f', `warmstart-ws-${workspaceId}`], env);
}

/** Whether a file exists in a running container. */
export async function fileInContainer(containerId: string, path: string, env?: NodeJS.ProcessEnv): Promise<boolean> {
  return (await docker(['exec', containerId, 'test', '-f', path], env)).code === 0;
}

export async function engineVersion(): Promise<string | null> {
  const r = await docker(['version', '-f', '{{.Server.Version}}']);
  return r.code === 0 ? r.stdout.trim() : null;
}
