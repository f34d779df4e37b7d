import { describe, expect, it } from 'vitest';
import { configHostAccess, hostAccessDenied, metadataHostAccess } from '../../../agent/src/devcontainer/host-access.js';
import { nodeCredentialsPushOff } from '../../../agent/src/workspace/host-access-gate.js';

const fields = (config: Record<string, unknown>): string[] => configHostAccess(config).map((f) => f.field);

describe('host access: devcontainer.json', () => {
  it('refuses privileged', () => {
    expect(fields({ image: 'x', privileged: true })).toEqual(['privileged']);
    expect(fields({ image: 'x', privileged: false })).toEqual([]);
  });

  it('refuses bind mounts in string and object form, including ${localEnv:DOCKER_CONFIG}', () => {
    const found = configHostAccess({
      image: 'x',
      mounts: [
        'source=${localEnv:DOCKER_CONFIG},target=/creds,type=bind',
        { type: 'bind', source: '/etc', target: '/host-etc' },
        'src=/var/run/docker.sock,dst=/var/run/docker.sock,type=bind',
        // A named volume whose name is the node's variable, and a local volume turned into a bind.
        'source=${localEnv:HOME},target=/h,type=volume',
        'source=v,target=/v,type=volume,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/root',
        // Another workspace's volume.
        { type: 'volume', source: 'warmstart-ws-victim', target: '/steal' },
      ],
    });
    expect(found.map((f) => f.field)).toEqual(['mounts[0]', 'mounts[1]', 'mounts[2]', 'mounts[3]', 'mounts[4]', 'mounts[5]']);
    expect(found[0]!.value).toContain('${localEnv:DOCKER_CONFIG}');
    expect(found[0]!.reason).toMatch(/bind mount/);
    expect(found[5]!.reason).toMatch(/agent's own volumes/);
  });

  it('accepts named volumes and tmpfs', () => {
    expect(
      fields({
        image: 'x',
        mounts: [
          'source=node-modules,target=/w/node_modules,type=volume',
          'source=${localWorkspaceFolderBasename}-${devcontainerId}-cache,target=/cache,type=volume',
          { type: 'volume', source: 'pnpm-store', target: '/pnpm' },
          'type=tmpfs,target=/scratch',
        ],
      }),
    ).toEqual([]);
  });

  it('refuses a workspaceMount bind of anything but the workspace folder', () => {
    expect(fields({ image: 'x', workspaceMount: 'source=/,target=/workspaces/x,type=bind' })).toEqual(['workspaceMount']);
    expect(fields({ image: 'x', workspaceMount: 'source=${localEnv:HOME},target=/w,type=bind' })).toEqual(['workspaceMount']);
    // The usual one: replaced by the agent's volume anyway, and the clone is the repository's own.
    expect(fields({ image: 'x', workspaceMount: 'source=${localWorkspaceFolder},target=/workspaces/x,type=bind,consistency=cached' })).toEqual([]);
  });

  it('refuses capAdd and securityOpt beyond the safe list, accepts the safe ones', () => {
    const found = configHostAccess({
      image: 'x',
      capAdd: ['SYS_PTRACE', 'SYS_ADMIN', 'cap_net_admin', 'ALL'],
      securityOpt: ['seccomp=unconfined', 'no-new-privileges', 'apparmor=unconfined', 'label=disable', 'seccomp=/etc/profile.json'],
    });
    expect(found.map((f) => f.field)).toEqual(['capAdd[1]', 'capAdd[2]', 'capAdd[3]', 'securityOpt[2]', 'securityOpt[3]', 'securityOpt[4]']);
  });

  it('refuses each forbidden runArgs form, naming its index', () => {
    const runArgs = [
      '--privileged', // 0
      '--mount',
      'type=bind,source=/,target=/host', // 1
      '-v',
      '/:/host', // 3
      '--volume=${localEnv:DOCKER_CONFIG}:/creds', // 5
      '--network=host', // 6
      '--network',
      'host', // 7
      '--net=container:other', // 9
      '--pid=host', // 10
      '--ipc=host', // 11
      '--uts=host', // 12
      '--userns=host', // 13
      '--cgroupns=host', // 14
      '--device=/dev/kvm', // 15
      '--gpus',
      'all', // 16
      '--cap-add=SYS_ADMIN', // 18
      '--security-opt',
      'apparmor=unconfined', // 19
      '--env-file=/etc/environment', // 21
      '--name=fixed', // 22
      '--frobnicate', // 23: unknown
      '--label=warmstart.workspace=victim', // 24
      'hello', // 25: a bare word
      '-v/etc:/e', // 26
    ];
    const found = configHostAccess({ image: 'x', runArgs });
    expect(found.map((f) => f.field)).toEqual(
      [0, 1, 3, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 21, 22, 23, 24, 25, 26].map((i) => `runArgs[${i}]`),
    );
    expect(found.find((f) => f.field === 'runArgs[7]')!.value).toBe('--network host');
    expect(found.find((f) => f.field === 'runArgs[23]')!.reason).toMatch(/not on the safe list/);
    expect(found.find((f) => f.field === 'runArgs[0]')!.reason).toMatch(/every device and capability/);
  });

  it('accepts the safe runArgs', () => {
    const runArgs = [
      '--init',
      '--cap-add=SYS_PTRACE',
      '--cap-add',
      'SYS_PTRACE',
      '--security-opt',
      'seccomp=unconfined',
      '-e',
      'FOO=1',
      '--env=BAR=${localEnv:USER}',
      '--label',
      'team=dev',
      '--hostname=dev',
      '--add-host=db:10.0.0.2',
      '--shm-size=1g',
      '--ulimit',
      'nofile=4096:4096',
      '--cpus=2',
      '--memory=4g',
      '-it',
      '--network=none',
      '-v',
      'cache:/cache',
      '--mount',
      'type=volume,source=data,target=/data',
      '--tmpfs',
      '/run/x',
      '-u',
      '1000',
      '-p',
      '8080:8080',
    ];
    expect(configHostAccess({ image: 'x', runArgs })).toEqual([]);
  });

  it('refuses build.options beyond the safe list, accepts the safe ones', () => {
    const found = configHostAccess({
      build: {
        dockerfile: 'Dockerfile',
        options: [
          '--build-arg',
          'X=1', // 0 ok
          '--target=dev', // 2 ok
          '--network=host', // 3
          '--secret',
          'id=creds,src=/root/.docker/config.json', // 4
          '--build-context',
          'host=/', // 6
          '--ssh=default', // 8
          '-f',
          '/etc/Dockerfile', // 9
          '--label=team=dev', // 11 ok
          '--output=type=local,dest=/tmp/x', // 12
          '-t',
          'busybox:latest', // 13
        ],
      },
    });
    expect(found.map((f) => f.field)).toEqual([3, 4, 6, 8, 9, 12, 13].map((i) => `build.options[${i}]`));
    expect(found.find((f) => f.field === 'build.options[4]')!.value).toBe('--secret id=creds,src=/root/.docker/config.json');
  });

  it('reports every finding together, in one error that names each field', () => {
    const found = configHostAccess({
      build: { dockerfile: 'Dockerfile', options: ['--network=host'] },
      privileged: true,
      mounts: ['source=${localEnv:DOCKER_CONFIG},target=/c,type=bind'],
      runArgs: ['--privileged'],
    });
    expect(found).toHaveLength(4);
    const err = hostAccessDenied(found, '.devcontainer/devcontainer.json');
    expect(err.code).toBe('HOST_ACCESS_DENIED');
    for (const f of ['privileged', 'mounts[0]', 'runArgs[0]', 'build.options[0]']) expect(err.message).toContain(f);
    expect(err.detail).toContain('${localEnv:DOCKER_CONFIG}');
  });
});

describe('host access: an image devcontainer.metadata label', () => {
  it('checks every entry the CLI would merge', () => {
    const label = JSON.stringify([
      {
        id: 'ghcr.io/devcontainers/features/docker-in-docker:2',
        privileged: true,
        mounts: [{ source: 'dind-var-lib-docker', target: '/var/lib/docker', type: 'volume' }],
      },
      { capAdd: ['SYS_PTRACE'], securityOpt: ['seccomp=unconfined'], init: true },
      { mounts: [{ type: 'bind', source: '/var/run/docker.sock', target: '/var/run/docker.sock' }], remoteUser: 'root' },
    ]);
    expect(metadataHostAccess(label).map((f) => f.field)).toEqual(['devcontainer.metadata[0].privileged', 'devcontainer.metadata[2].mounts[0]']);
    expect(metadataHostAccess(undefined)).toEqual([]);
    expect(metadataHostAccess('{not json').map((f) => f.field)).toEqual(['devcontainer.metadata']);
  });
});

describe('push with node-wide credentials under host access allow', () => {
  const node = { source: 'static' };
  it('is skipped with the reason and the way out', () => {
    const why = nodeCredentialsPushOff({ hostAccess: 'allow', allRepositoriesTrusted: false }, node);
    expect(why).toMatch(/WARMSTART_HOST_ACCESS=allow/);
    expect(why).toMatch(/supply registry credentials with the job/);
    expect(why).toMatch(/WARMSTART_ALL_REPOSITORIES_TRUSTED=1/);
    expect(nodeCredentialsPushOff({ hostAccess: 'allow', allRepositoriesTrusted: false }, { source: 'github-app' })).not.toBeNull();
  });
  it('goes ahead with job credentials, with every repository trusted, or under deny', () => {
    expect(nodeCredentialsPushOff({ hostAccess: 'allow', allRepositoriesTrusted: false }, { source: 'job' })).toBeNull();
    expect(nodeCredentialsPushOff({ hostAccess: 'allow', allRepositoriesTrusted: true }, node)).toBeNull();
    expect(nodeCredentialsPushOff({ hostAccess: 'deny', allRepositoriesTrusted: false }, node)).toBeNull();
  });
});
