import { execa } from 'execa';
import { snapshotForAudit } from './container-snapshot.js';

/** `dockerHost`: another engine (node 2's `unix://...` socket); absent: the testbed's own. */
const docker = (args: string[], dockerHost?: string) =>
  execa('docker', args, { reject: false, ...(dockerHost ? { env: { DOCKER_HOST: dockerHost } } : {}) });

/** Container ids carrying label k=v. */
export async function containersWithLabel(label: string, dockerHost?: string): Promise<string[]> {
  const r = await docker(['ps', '-aq', '--filter', `label=${label}`], dockerHost);
  return String(r.stdout).split('\n').filter(Boolean);
}

export async function volumeExists(name: string, dockerHost?: string): Promise<boolean> {
  return (await docker(['volume', 'inspect', name], dockerHost)).exitCode === 0;
}

export async function imageExists(ref: string, dockerHost?: string): Promise<boolean> {
  return (await docker(['image', 'inspect', ref], dockerHost)).exitCode === 0;
}

/** Reads a file from a named volume through a throwaway container of `image`. */
export async function readFromVolume(volume: string, path: string, image: string): Promise<string | null> {
  const r = await docker(['run', '--rm', '--label', 'warmstart.test=read-volume', '-v', `${volume}:/v:ro`, image, 'cat', `/v/${path}`]);
  return r.exitCode === 0 ? String(r.stdout) : null;
}

/**
 * Removes what a test made: containers of its workspaces, their volumes, and
 * every image carrying its run label (the fixtures LABEL every layer they
 * build), plus tags the test names. After it, the engine looks like a node
 * that never saw the repository (the base image stays: every node has it).
 */
export async function cleanUp(o: {
  runId: string;
  workspaceIds?: string[];
  refs?: string[];
  keepVolumes?: boolean;
  /** another engine (node 2); absent: the testbed's own */
  dockerHost?: string;
}): Promise<void> {
  for (const id of o.workspaceIds ?? []) {
    const ids = await containersWithLabel(`warmstart.workspace=${id}`, o.dockerHost);
    // The fault suite's audit reads the testbed's own engine.
    if (!o.dockerHost) await snapshotForAudit(ids);
    if (ids.length) await docker(['rm', '-f', ...ids], o.dockerHost);
    if (!o.keepVolumes) await docker(['volume', 'rm', '-f', `warmstart-ws-${id}`], o.dockerHost);
  }
  await wipeImages(o.runId, o.refs ?? [], o.dockerHost);
}

/** Removes every image labelled with the run id, and the named refs. */
export async function wipeImages(runId: string, refs: string[] = [], dockerHost?: string): Promise<void> {
  for (const ref of refs) await docker(['rmi', '-f', ref], dockerHost);
  const r = await docker(['image', 'ls', '-aq', '--filter', `label=warmstart.test-run=${runId}`], dockerHost);
  const ids = [...new Set(String(r.stdout).split('\n').filter(Boolean))];
  // Children first: repeat until nothing labelled is left (or nothing more goes).
  for (let round = 0; round < 5 && ids.length; round++) {
    await docker(['rmi', '-f', ...ids], dockerHost);
    const left = await docker(['image', 'ls', '-aq', '--filter', `label=warmstart.test-run=${runId}`], dockerHost);
    ids.splice(0, ids.length, ...new Set(String(left.stdout).split('\n').filter(Boolean)));
  }
}
