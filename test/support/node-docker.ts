import { execa } from 'execa';
import { cleanUp } from './docker.js';
import type { TestNode } from './nodes.js';

/** `docker ...` against a testbed node's engine (the host's docker CLI; node 1: the default socket). */
export function dockerOn(node: TestNode, args: string[]) {
  return execa('docker', args, { reject: false, ...(node.dockerHost ? { env: { DOCKER_HOST: node.dockerHost } } : {}) });
}

/** Images on `node` carrying the run label (every layer the fixtures build has it). */
export async function labelledImages(node: TestNode, runId: string): Promise<string[]> {
  const r = await dockerOn(node, ['image', 'ls', '-aq', '--no-trunc', '--filter', `label=warmstart.test-run=${runId}`]);
  return [...new Set(String(r.stdout).split('\n').filter(Boolean))];
}

/** What a container on `node` holds at `path`, or null when it cannot be read. */
export async function catOn(node: TestNode, containerId: string, path: string): Promise<string | null> {
  const r = await dockerOn(node, ['exec', containerId, 'cat', path]);
  return r.exitCode === 0 ? String(r.stdout) : null;
}

/** `sh -c cmd` in a container on `node`; throws when it fails. */
export async function shOn(node: TestNode, containerId: string, cmd: string): Promise<string> {
  const r = await dockerOn(node, ['exec', containerId, 'sh', '-c', cmd]);
  if (r.exitCode !== 0) throw new Error(`docker exec ${containerId} sh -c '${cmd}' on ${node.name}: exit ${r.exitCode}: ${String(r.stderr)}`);
  return String(r.stdout).trim();
}

/**
 * Makes `node` a node that never saw the run: its workspaces' containers and
 * volumes, every image with the run label and the named refs go (cleanUp),
 * and on a BuildKit node also BuildKit's own build cache, which outlives the
 * images (`docker builder prune -af`, as buildkit-node.test.ts does).
 */
export async function forgetRun(node: TestNode, o: { runId: string; workspaceIds?: string[]; refs?: string[] }): Promise<void> {
  await cleanUp({ ...o, ...(node.dockerHost ? { dockerHost: node.dockerHost } : {}) });
  if (node.builder === 'buildkit') {
    const r = await dockerOn(node, ['builder', 'prune', '-af']);
    if (r.exitCode !== 0) throw new Error(`docker builder prune on ${node.name}: ${String(r.stderr)}`);
  }
}
