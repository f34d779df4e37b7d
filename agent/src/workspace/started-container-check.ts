import path from 'node:path';
import { CONTAINER_GIT_DIR } from '../git/container-credentials.js';
import type { DockerEngine } from '../docker/engine.js';
import { hostAccessDenied, type HostAccessFinding } from '../devcontainer/host-access.js';
import { capabilityProblem, securityOptProblem } from '../devcontainer/host-access-rules.js';
import type { WarmstartError } from '../errors.js';
import { within } from '../devcontainer/within.js';

/**
 * The check after `up`, under WARMSTART_HOST_ACCESS=deny. The check before it
 * (host-access-gate.ts) reads the repository's files; what the devcontainers
 * CLI merges in from elsewhere it cannot see: a remote feature's
 * devcontainer-feature.json and the base image's `devcontainer.metadata`
 * label (both can ask for `privileged`, `mounts`, `capAdd`, `securityOpt`).
 * So the container the CLI made is inspected before it is reported ready or
 * its image pushed: a finding turns the job into a recovery, which removes it.
 * Binds the agent made itself (the git credential directory) and binds of the
 * clone (a compose file's own, allowed by compose-host-access.ts) pass.
 */
export async function startedContainerRefusal(
  engine: Pick<DockerEngine, 'inspectContainer'>,
  containerId: string,
  own: { runtimeDir: string; workspaceId: string; cloneDir: string },
): Promise<WarmstartError | null> {
  const c = await engine.inspectContainer(containerId);
  if (c === null) return null;
  const found: HostAccessFinding[] = [];
  const add = (field: string, value: string | null, reason: string): void => void found.push({ field: `container.${field}`, value, reason });
  // The path container-credentials.ts writes the in-container git credential to.
  const gitDir = path.join(own.runtimeDir, 'workspaces', own.workspaceId, 'git');
  for (const m of c.mounts) {
    if (m.type !== 'bind') continue;
    if (m.destination === CONTAINER_GIT_DIR && m.source === gitDir) continue;
    if (within(own.cloneDir, m.source)) continue;
    add(`mounts ${m.destination}`, m.source, 'bind mount of a path on the node');
  }
  const h = c.host;
  if (h) {
    if (h.privileged) add('privileged', null, 'a privileged container holds every device and capability of the node');
    const modes: Array<[string, string]> = [
      ['networkMode', h.networkMode],
      ['pidMode', h.pidMode],
      ['ipcMode', h.ipcMode],
      ['utsMode', h.utsMode],
      ['usernsMode', h.usernsMode],
      // Not cgroupnsMode: on a cgroup v1 node the engine's own default is
      // `host` (seen on the test engine), so it cannot tell a repository's
      // `--cgroupns=host` apart; the check before `up` refuses that one.
    ];
    for (const [field, mode] of modes) {
      if (mode === 'host' || mode.startsWith('container:')) add(field, mode, 'a namespace of the node or of another container');
    }
    h.capAdd.forEach((cap) => {
      const why = capabilityProblem(cap);
      if (why) add('capAdd', cap, why);
    });
    h.securityOpt.forEach((opt) => {
      const why = securityOptProblem(opt);
      if (why) add('securityOpt', opt, why);
    });
    for (const d of h.devices) add('devices', d, "one of the node's devices");
  }
  return found.length === 0 ? null : hostAccessDenied(found, 'the container the devcontainers CLI started (from a feature or the base image)');
}
