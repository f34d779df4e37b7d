import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerodeEngine } from '../../agent/src/docker/dockerode-engine.js';
import { exactImageRefusal } from '../../agent/src/workspace/host-access-gate.js';
import { parseResult, runCli, testEnv } from '../support/cli.js';
import { cleanUp, containersWithLabel } from '../support/docker.js';
import { makeRepo, runId } from '../support/repos.js';
import { loadTestbed } from '../support/testbed.js';

// Attack 8: a repository's config asks for the node itself (its credentials
// through ${localEnv:DOCKER_CONFIG}, a privileged container, the host network
// in its build). Under the default policy nothing of it starts; under
// WARMSTART_HOST_ACCESS=allow it starts, and the node's own registry
// credentials no longer push its image unless every repository is trusted.

const tb = loadTestbed();
const run = runId('hacc');
const namespace = `warmstart-test/${run}`;
const ids = {
  hostile: `${run}-hostile`,
  compose: `${run}-compose`,
  legit: `${run}-legit`,
  allowed: `${run}-allowed`,
  allowedDenied: `${run}-allowed-denied`,
  trusted: `${run}-trusted`,
  merged: `${run}-merged`,
};
const volume = `${run}-data`;

const dockerfile = 'FROM @@BASE_IMAGE@@\nLABEL warmstart.test-run=@@RUN_ID@@\nRUN echo built > /built\n';

const hostileConfig = JSON.stringify({
  build: { dockerfile: 'Dockerfile', options: ['--network=host'] },
  mounts: ['source=${localEnv:DOCKER_CONFIG},target=/creds,type=bind'],
  runArgs: ['--privileged'],
  remoteUser: 'root',
});

async function inspect(containerId: string, format: string): Promise<string> {
  return String((await execa('docker', ['inspect', '-f', format, containerId])).stdout).trim();
}

/** Every bind mount of the workspace's containers, as `source->destination`. */
async function binds(workspaceId: string): Promise<string[]> {
  const out: string[] = [];
  for (const id of await containersWithLabel(`warmstart.workspace=${workspaceId}`)) {
    const mounts = JSON.parse(await inspect(id, '{{json .Mounts}}')) as Array<{ Type: string; Source: string; Destination: string }>;
    out.push(...mounts.filter((m) => m.Type === 'bind').map((m) => `${m.Source}->${m.Destination}`));
  }
  return out;
}

async function imagesOfRun(): Promise<string[]> {
  const r = await execa('docker', ['image', 'ls', '-aq', '--filter', `label=warmstart.test-run=${run}`]);
  return String(r.stdout).split('\n').filter(Boolean);
}

// The same attack in a form this testbed's engine can start: it runs without
// every capability itself, so a --privileged container fails in runc here
// ("unable to apply caps"); the host PID namespace and SYS_ADMIN start.
const allowedConfig = JSON.stringify({
  build: { dockerfile: 'Dockerfile', options: ['--network=host'] },
  mounts: ['source=${localEnv:DOCKER_CONFIG},target=/creds,type=bind'],
  runArgs: ['--pid=host', '--cap-add=SYS_ADMIN'],
  remoteUser: 'root',
});

describe('host access policy (real agent CLI, engine, registry, devcontainers CLI)', () => {
  let env: Record<string, string>;
  const refs: string[] = [];

  beforeAll(async () => {
    // Node-wide (static) credentials bound to the testbed registry.
    env = await testEnv(tb.baseImage, {
      WARMSTART_CACHE_REGISTRY: `${tb.registry}/${namespace}`,
      WARMSTART_REGISTRY_CREDENTIAL_HOSTS: tb.registry,
      WARMSTART_REGISTRY_USERNAME: tb.registryUser,
      WARMSTART_REGISTRY_PASSWORD: tb.registryPassword,
      WARMSTART_HOST_ACCESS: '',
      WARMSTART_ALL_REPOSITORIES_TRUSTED: '',
    });
  });
  afterAll(async () => {
    await cleanUp({ runId: run, workspaceIds: Object.values(ids), refs });
    await execa('docker', ['volume', 'rm', '-f', volume], { reject: false });
  });

  it('deny (default): a config reaching for DOCKER_CONFIG, --privileged and a host-network build is refused before anything starts', async () => {
    const repo = await makeRepo(
      { '.devcontainer/devcontainer.json': hostileConfig, '.devcontainer/Dockerfile': dockerfile },
      { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'hostile' },
    );
    const r = await runCli(['up', repo, '--workspace-id', ids.hostile, '--json'], { env });
    const result = parseResult(r);
    expect(r.code, r.stderr).toBe(3);
    expect(result.outcome).toBe('recovery');
    expect(result.profile).toBe('recovery');
    expect(result.error?.code).toBe('HOST_ACCESS_DENIED');
    for (const field of ['mounts[0]', 'runArgs[0]', 'build.options[0]']) expect(result.error?.message).toContain(field);
    expect(result.error?.detail).toContain('${localEnv:DOCKER_CONFIG}');
    expect(result.push.status).toBe('skipped');

    // Only the recovery container, of the default image, without a bind or privileges; nothing was built.
    const containers = await containersWithLabel(`warmstart.workspace=${ids.hostile}`);
    expect(containers).toHaveLength(1);
    expect(containers[0]!.startsWith(result.containerId!.slice(0, 12))).toBe(true);
    expect(await inspect(containers[0]!, '{{.Config.Image}}')).toBe(tb.baseImage);
    expect(await inspect(containers[0]!, '{{.HostConfig.Privileged}}')).toBe('false');
    expect(await binds(ids.hostile)).toEqual([]);
    expect(await imagesOfRun()).toEqual([]);
    // Nothing of the job's DOCKER_CONFIG in the container: no /creds, no password anywhere in its env.
    const creds = await execa('docker', ['exec', containers[0]!, 'ls', '/creds'], { reject: false });
    expect(creds.exitCode).not.toBe(0);
    expect(await inspect(containers[0]!, '{{json .Config.Env}}')).not.toContain(tb.registryPassword);
  });

  it('deny: a compose config with env_file /etc/... and a build context of / is refused', async () => {
    // No compose on this node: a compose config that got past the check would
    // end DEVCONTAINER_UP_FAILED, so HOST_ACCESS_DENIED shows the check ran first.
    const repo = await makeRepo(
      {
        '.devcontainer/devcontainer.json': JSON.stringify({ dockerComposeFile: 'docker-compose.yml', service: 'app', workspaceFolder: '/w' }),
        '.devcontainer/docker-compose.yml':
          'services:\n  app:\n    build:\n      context: /\n    env_file: /etc/hostname\n    command: sleep infinity\n',
      },
      { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'compose' },
    );
    const r = await runCli(['up', repo, '--workspace-id', ids.compose, '--json'], { env });
    const result = parseResult(r);
    expect(r.code, r.stderr).toBe(3);
    expect(result.outcome).toBe('recovery');
    expect(result.error?.code).toBe('HOST_ACCESS_DENIED');
    expect(result.error?.message).toContain('services.app.build.context');
    expect(result.error?.message).toContain('services.app.env_file');
    expect(await containersWithLabel(`warmstart.workspace=${ids.compose}`)).toHaveLength(1);
    expect(await binds(ids.compose)).toEqual([]);
  });

  it('deny: a legitimate config with --cap-add=SYS_PTRACE, --init and a named volume is ready', async () => {
    const repo = await makeRepo(
      {
        '.devcontainer/devcontainer.json': JSON.stringify({
          build: { dockerfile: 'Dockerfile', options: ['--build-arg', 'X=1'] },
          runArgs: ['--cap-add=SYS_PTRACE', '--init', '--security-opt', 'seccomp=unconfined'],
          mounts: [`source=${volume},target=/data,type=volume`],
          remoteUser: 'root',
        }),
        '.devcontainer/Dockerfile': dockerfile,
      },
      { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'legit' },
    );
    const r = await runCli(['up', repo, '--workspace-id', ids.legit, '--no-push', '--json'], { env });
    const result = parseResult(r);
    expect(r.code, r.stderr).toBe(0);
    expect(result.outcome).toBe('ready');
    expect(result.profile).toBe('devcontainer');
    expect(result.error).toBeNull();
    expect(await inspect(result.containerId!, '{{json .HostConfig.CapAdd}}')).toContain('SYS_PTRACE');
    expect(await inspect(result.containerId!, '{{.HostConfig.Init}}')).toBe('true');
    const mounts = await inspect(result.containerId!, '{{json .Mounts}}');
    expect(mounts).toContain(`"Name":"${volume}"`);
  });

  it('allow: a config with the same reach starts; node-wide credentials do not push it unless every repository is trusted', async () => {
    const repo = await makeRepo(
      { '.devcontainer/devcontainer.json': allowedConfig, '.devcontainer/Dockerfile': dockerfile },
      { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'allowed' },
    );
    // Under the default policy this config is refused too, naming all four fields.
    const denied = parseResult(await runCli(['up', repo, '--workspace-id', ids.allowedDenied, '--json'], { env }));
    expect(denied.error?.code).toBe('HOST_ACCESS_DENIED');
    expect(denied.error?.message).toContain('mounts[0], runArgs[0], runArgs[1], build.options[0]');

    const allowEnv = { ...env, WARMSTART_HOST_ACCESS: 'allow' };
    const r = await runCli(['up', repo, '--workspace-id', ids.allowed, '--json'], { env: allowEnv });
    const result = parseResult(r);
    expect(r.code, r.stderr).toBe(0);
    expect(result.outcome).toBe('ready');
    expect(result.profile).toBe('devcontainer');
    expect(await inspect(result.containerId!, '{{.HostConfig.PidMode}}')).toBe('host');
    // What deny prevents: the job's DOCKER_CONFIG directory was bound into the container.
    expect((await binds(ids.allowed)).some((b) => b.endsWith('->/creds'))).toBe(true);
    expect(result.push.status).toBe('skipped');
    expect(result.push.reason).toContain('WARMSTART_HOST_ACCESS=allow');
    expect(result.push.reason).toContain('WARMSTART_ALL_REPOSITORIES_TRUSTED=1');

    const trusted = await runCli(['up', repo, '--workspace-id', ids.trusted, '--json'], {
      env: { ...allowEnv, WARMSTART_ALL_REPOSITORIES_TRUSTED: '1' },
    });
    const pushed = parseResult(trusted);
    expect(trusted.code, trusted.stderr).toBe(0);
    expect(pushed.outcome).toBe('ready');
    expect(pushed.push.status, pushed.push.reason ?? '').toBe('pushed');
    // The ref's shape is the cache-ref module's business; it is the registry's namespace given here.
    expect(pushed.push.ref?.startsWith(`${tb.registry}/${namespace}/`)).toBe(true);
    refs.push(pushed.push.ref!);
  });

  it('deny: an exact-hit image whose devcontainer.metadata label asks for the node is refused', async () => {
    // What the CLI writes into an image it built from a feature that binds the
    // docker socket and runs privileged, as a node with host access allowed would push it.
    const metadata = JSON.stringify([
      { id: 'ghcr.io/example/dind:1', privileged: true, mounts: [{ type: 'bind', source: '/var/run/docker.sock', target: '/var/run/docker.sock' }] },
      { remoteUser: 'root', capAdd: ['SYS_PTRACE'] },
    ]);
    const tag = `warmstart-test/${run}-exact:latest`;
    const build = await execa('docker', ['build', '-q', '-t', tag, '-'], {
      input: `FROM ${tb.baseImage}\nLABEL warmstart.test-run=${run}\nLABEL devcontainer.metadata=${JSON.stringify(metadata)}\n`,
    });
    expect(build.exitCode).toBe(0);
    refs.push(tag);
    const engine = new DockerodeEngine();
    const err = await exactImageRefusal('deny', engine, tag);
    expect(err?.code).toBe('HOST_ACCESS_DENIED');
    expect(err?.message).toContain('devcontainer.metadata[0].privileged, devcontainer.metadata[0].mounts[0]');
    expect(err?.message).not.toContain('capAdd');
    expect(await exactImageRefusal('allow', engine, tag)).toBeNull();
    // The base image carries no such label: nothing to refuse.
    expect(await exactImageRefusal('deny', engine, tb.baseImage)).toBeNull();
  });

  it("deny: a bind the base image's devcontainer.metadata label adds is caught on the started container, which is removed", async () => {
    // The repository's files ask for nothing; its base image does. The CLI
    // merges that label into the container it runs, after the check before
    // `up` could see it; the check after `up` finds it and recovers.
    const base = `warmstart-test/${run}-evilbase:latest`;
    const metadata = JSON.stringify([{ mounts: [{ type: 'bind', source: '/etc', target: '/host-etc' }] }]);
    await execa('docker', ['build', '-q', '-t', base, '-'], {
      input: `FROM ${tb.baseImage}\nLABEL warmstart.test-run=${run}\nLABEL devcontainer.metadata=${JSON.stringify(metadata)}\n`,
    });
    refs.push(base);
    const repo = await makeRepo(
      {
        '.devcontainer/devcontainer.json': JSON.stringify({ build: { dockerfile: 'Dockerfile' }, remoteUser: 'root' }),
        '.devcontainer/Dockerfile': `FROM ${base}\nLABEL warmstart.test-run=@@RUN_ID@@\n`,
      },
      { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'merged' },
    );
    const r = await runCli(['up', repo, '--workspace-id', ids.merged, '--json'], { env });
    const result = parseResult(r);
    expect(r.code, r.stderr).toBe(3);
    expect(result.error?.code).toBe('HOST_ACCESS_DENIED');
    expect(result.error?.message).toContain('container.mounts /host-etc');
    expect(result.push.status).toBe('skipped');
    const containers = await containersWithLabel(`warmstart.workspace=${ids.merged}`);
    expect(containers).toHaveLength(1);
    expect(await inspect(containers[0]!, '{{.Config.Image}}')).toBe(tb.baseImage);
    expect(await binds(ids.merged)).toEqual([]);
  });
});
