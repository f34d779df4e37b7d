/**
 * A start whose repository config builds needs no default image: the
 * workspace volume is filled through a never-started container of an empty
 * image the agent makes itself (docker/dockerode-engine.ts fillerImage). The
 * default image is pulled only where it runs: a lightweight workspace on the
 * same node fails without it, naming it.
 */
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { parseResult, runCli, testEnv } from '../support/cli.js';
import { cleanUp } from '../support/docker.js';
import { makeRepo, runId } from '../support/repos.js';
import { loadTestbed } from '../support/testbed.js';

const tb = loadTestbed();
const run = runId('nodef');
const ids = [`${run}-build`, `${run}-light`];
// A registry port nothing listens on: any pull of the default image fails at once.
const NO_SUCH_DEFAULT = '127.0.0.1:9/warmstart-test/no-default:1';

afterAll(async () => {
  await cleanUp({ runId: run, workspaceIds: ids });
});

describe('no default image on the node (real engine, devcontainers CLI)', () => {
  it('a Dockerfile config starts with its files in the volume; a lightweight workspace fails naming the missing default image', async () => {
    const repo = await makeRepo(
      {
        '.devcontainer/devcontainer.json': JSON.stringify({ build: { dockerfile: 'Dockerfile' } }),
        '.devcontainer/Dockerfile': 'FROM @@BASE_IMAGE@@\nLABEL warmstart.test-run=@@RUN_ID@@\n',
        'hello.txt': 'from the clone\n',
      },
      { runId: run, baseImage: tb.baseImage },
    );
    const env = await testEnv(tb.baseImage, { WARMSTART_DEFAULT_IMAGE: NO_SUCH_DEFAULT });
    const built = await runCli(['up', repo, '--workspace-id', ids[0]!, '--json'], { env });
    expect(built.code, built.stderr).toBe(0);
    const result = parseResult(built);
    expect(result).toMatchObject({ outcome: 'ready', profile: 'devcontainer' });
    const inside = await execa('docker', ['exec', result.containerId!, 'sh', '-c', 'cat /workspaces/*/hello.txt']);
    expect(String(inside.stdout)).toBe('from the clone');
    const images = String((await execa('docker', ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}'])).stdout).split('\n');
    expect(images).not.toContain(NO_SUCH_DEFAULT);
    expect(images).toContain('warmstart/volume-filler:1');

    const light = await runCli(['up', repo, '--workspace-id', ids[1]!, '--lightweight', '--json'], { env });
    expect(light.code).toBe(1);
    expect(light.stdout + light.stderr).toContain('no-default');
  });
});
