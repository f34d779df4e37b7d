import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { discoverConfig } from '../../../agent/src/devcontainer/discover.js';
import { repositoryHostAccess } from '../../../agent/src/devcontainer/repository-host-access.js';
import { hostAccessRefusal } from '../../../agent/src/workspace/host-access-gate.js';
import { useScratchRepo } from '../../support/scratch-repo.js';

const scratch = useScratchRepo('host-access');

/** A compose config at .devcontainer/ with the given compose file; the findings' fields. */
async function composeFindings(compose: string): Promise<string[]> {
  await scratch.put('.devcontainer/devcontainer.json', '{ "dockerComposeFile": "docker-compose.yml", "service": "app", "workspaceFolder": "/w" }');
  await scratch.put('.devcontainer/docker-compose.yml', compose);
  const discovered = (await discoverConfig(scratch.repo))!;
  return (await repositoryHostAccess(discovered, scratch.repo)).map((f) => f.field);
}

const F = '.devcontainer/docker-compose.yml: ';

describe('host access: compose files', () => {
  it('refuses a bind outside the clone, allows one via .. that stays inside', async () => {
    const found = await composeFindings(`
services:
  app:
    image: x
    volumes:
      - ..:/workspaces/repo:cached
      - ../src:/src
      - /etc:/host-etc:ro
      - ../..:/parent
      - type: bind
        source: /root/.docker
        target: /creds
      - data:/data
volumes:
  data: {}
`);
    expect(found).toEqual([`${F}services.app.volumes[2]`, `${F}services.app.volumes[3]`, `${F}services.app.volumes[4].source`]);
  });

  it('refuses a bind through a symlink that leaves the clone', async () => {
    await mkdir(path.join(scratch.base, 'outside'));
    await symlink(path.join(scratch.base, 'outside'), path.join(scratch.repo, 'escape'));
    const found = await composeFindings('services:\n  app:\n    image: x\n    volumes:\n      - ../escape:/e\n');
    expect(found).toEqual([`${F}services.app.volumes[0]`]);
  });

  it('refuses env_file outside the clone, a context of /, and variables in paths', async () => {
    const found = await composeFindings(`
services:
  app:
    build:
      context: /
      dockerfile: Dockerfile
    env_file:
      - ./ok.env
      - /etc/environment
  db:
    image: x
    env_file: ../../secrets.env
    volumes:
      - \${HOME}/.ssh:/ssh
`);
    expect(found).toEqual([
      `${F}services.app.env_file[1]`,
      `${F}services.app.build.context`,
      `${F}services.db.env_file`,
      `${F}services.db.volumes[0]`,
    ]);
  });

  it('refuses privileged, host namespaces, devices, caps, build secrets and external volumes', async () => {
    const found = await composeFindings(`
services:
  app:
    image: x
    privileged: true
    network_mode: host
    pid: host
    ipc: host
    devices: ["/dev/kvm:/dev/kvm"]
    cap_add: [SYS_PTRACE, SYS_ADMIN]
    security_opt: ["seccomp:unconfined", "apparmor:unconfined"]
  db:
    image: x
    network_mode: service:app
    build:
      context: .
      secrets: [creds]
volumes:
  stolen:
    external: true
    name: warmstart-ws-victim
secrets:
  creds:
    file: /root/.docker/config.json
`);
    expect(found.sort()).toEqual(
      [
        'secrets.creds.file',
        'volumes.stolen.external',
        'volumes.stolen.name',
        'services.app.privileged',
        'services.app.network_mode',
        'services.app.pid',
        'services.app.ipc',
        'services.app.devices',
        'services.app.cap_add[1]',
        'services.app.security_opt[1]',
        'services.db.build.secrets',
      ]
        .map((f) => `${F}${f}`)
        .sort(),
    );
  });

  it('follows include into the clone and refuses one outside it', async () => {
    await scratch.put('.devcontainer/more.yml', 'services:\n  extra:\n    image: x\n    privileged: true\n');
    const found = await composeFindings('include:\n  - more.yml\n  - /etc/compose.yml\nservices:\n  app:\n    image: x\n');
    expect(found).toEqual([`.devcontainer/more.yml: services.extra.privileged`, `${F}include[1]`]);
  });

  it('refuses a file it cannot parse', async () => {
    expect(await composeFindings('services: [unclosed\n')).toEqual([`${F}(file)`]);
  });

  it('accepts an ordinary dev compose file', async () => {
    const found = await composeFindings(`
services:
  app:
    build: { context: .., dockerfile: .devcontainer/Dockerfile }
    volumes: ["..:/workspaces/repo:cached", "node_modules:/workspaces/repo/node_modules"]
    cap_add: [SYS_PTRACE]
    security_opt: [seccomp:unconfined]
    env_file: .env
    ports: ["3000:3000"]
    command: sleep infinity
  db:
    image: postgres:16
    network_mode: service:app
volumes:
  node_modules:
`);
    expect(found).toEqual([]);
  });
});

describe('host access: local features and the policy switch', () => {
  it("refuses what a local feature's devcontainer-feature.json asks for", async () => {
    await scratch.put('.devcontainer/devcontainer.json', '{ "image": "x", "features": { "./f": {} } }');
    await scratch.put(
      '.devcontainer/f/devcontainer-feature.json',
      '{ "id": "f", "version": "1.0.0", "privileged": true, "mounts": [{ "type": "bind", "source": "/", "target": "/host" }] }',
    );
    await scratch.put('.devcontainer/f/install.sh', 'true');
    const discovered = (await discoverConfig(scratch.repo))!;
    expect((await repositoryHostAccess(discovered, scratch.repo)).map((f) => f.field)).toEqual([
      'features["./f"].privileged',
      'features["./f"].mounts[0]',
    ]);
  });

  it('deny refuses with HOST_ACCESS_DENIED naming every field; allow finds nothing', async () => {
    await scratch.put(
      '.devcontainer/devcontainer.json',
      '{ "image": "x", "privileged": true, "runArgs": ["--pid=host"], "mounts": ["source=${localEnv:DOCKER_CONFIG},target=/c,type=bind"] }',
    );
    const discovered = (await discoverConfig(scratch.repo))!;
    const err = await hostAccessRefusal('deny', discovered, scratch.repo);
    expect(err?.code).toBe('HOST_ACCESS_DENIED');
    expect(err?.message).toContain('privileged, mounts[0], runArgs[0]');
    expect(await hostAccessRefusal('allow', discovered, scratch.repo)).toBeNull();
  });

  it('a clean config passes under deny', async () => {
    await writeFile(path.join(scratch.repo, 'x'), '');
    await scratch.put(
      '.devcontainer/devcontainer.json',
      '{ "image": "x", "runArgs": ["--cap-add=SYS_PTRACE", "--init"], "mounts": ["source=cache,target=/c,type=volume"] }',
    );
    const discovered = (await discoverConfig(scratch.repo))!;
    expect(await hostAccessRefusal('deny', discovered, scratch.repo)).toBeNull();
  });
});
