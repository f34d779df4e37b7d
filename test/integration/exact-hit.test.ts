import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseResult, runCli, testEnv } from '../support/cli.js';
import { cleanUp, wipeImages } from '../support/docker.js';
import { makeRepo, runId } from '../support/repos.js';
import { loadTestbed } from '../support/testbed.js';

const tb = loadTestbed();
const run = runId('exact');
const namespace = `warmstart-test/${run}`;
const ids = [`${run}-a`, `${run}-b`, `${run}-c`];

const files = {
  '.devcontainer/devcontainer.json': `{
    // lifecycle and user settings must survive an exact hit, which builds nothing
    "build": { "dockerfile": "Dockerfile" },
    "features": { "./marker": {} },
    "remoteUser": "dev",
    "postCreateCommand": "id -un >> /tmp/post-create-runs",
  }`,
  '.devcontainer/Dockerfile': `FROM @@BASE_IMAGE@@
LABEL warmstart.test-run=@@RUN_ID@@
RUN echo 'dev:x:1000:1000::/home/dev:/bin/sh' >> /etc/passwd && echo 'dev:x:1000:' >> /etc/group \\
 && mkdir -p /home/dev && chown 1000:1000 /home/dev && echo built > /built-by-dockerfile
`,
  '.devcontainer/marker/devcontainer-feature.json': '{ "id": "marker", "version": "1.0.0", "name": "marker" }',
  '.devcontainer/marker/install.sh': '#!/bin/sh\necho feature > /feature-installed\n',
  'README.md': 'exact hit fixture\n',
};

/** Images carrying this run's label: every layer the fixture's Dockerfile makes has it. */
async function imageIds(): Promise<Set<string>> {
  const r = await execa('docker', ['image', 'ls', '-aq', '--no-trunc', '--filter', `label=warmstart.test-run=${run}`]);
  return new Set(String(r.stdout).split('\n').filter(Boolean));
}

async function exec(containerId: string, cmd: string): Promise<string> {
  return String((await execa('docker', ['exec', containerId, 'sh', '-c', cmd])).stdout).trim();
}

describe('exact-hit prebuilds (real engine, registry, devcontainers CLI)', () => {
  let repo: string;
  let env: Record<string, string>;
  const up = (id: string) =>
    runCli(['up', repo, '--workspace-id', id, '--registry-username', tb.registryUser, '--registry-password-stdin', '--json'], {
      env,
      input: `${tb.registryPassword}\n`,
    });

  beforeAll(async () => {
    repo = await makeRepo(files, { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'exact' });
    env = await testEnv(tb.baseImage, { WARMSTART_CACHE_REGISTRY: `${tb.registry}/${namespace}` });
  });
  afterAll(async () => {
    await cleanUp({ runId: run, workspaceIds: ids });
  });

  it('pushes an exact tag after a build, then starts the finished image on a fresh node without any docker build', async () => {
    const first = parseResult(await up(ids[0]!));
    expect(first.outcome).toBe('ready');
    expect(first.cache.hit).toBe('miss');
    expect(first.push.status).toBe('pushed');
    const exactPushed = (await readFile(join(env.WARMSTART_STATE_DIR!, 'workspaces', ids[0]!, 'events.ndjson'), 'utf8')).includes('"phase":"key"');
    expect(exactPushed).toBe(true);

    // A fresh node: nothing this fixture built is left.
    await cleanUp({ runId: run, workspaceIds: [ids[0]!] });
    await wipeImages(run);
    const before = await imageIds();
    expect(before.size).toBe(0);

    const warm = await up(ids[1]!);
    const second = parseResult(warm);
    expect(warm.code, warm.stderr).toBe(0);
    expect(second.cache.hit).toBe('exact');
    expect(second.cache.ref).toMatch(/:exact-[0-9a-f]{40}$/);
    expect(second.cache.stepsTotal).toBeNull();
    expect(second.push.status).toBe('skipped');

    // No build ran: the CLI ran no `docker build`, the log has no build step,
    // and the only new image on the engine is the one pulled.
    const events = await readFile(join(env.WARMSTART_STATE_DIR!, 'workspaces', ids[1]!, 'events.ndjson'), 'utf8');
    expect(events).not.toMatch(/Run: \S*docker build /);
    expect(events).not.toMatch(/Step \d+\/\d+ :/);
    // One new image: the moving tag is the exact image (push-cache.ts puts one
    // labelled manifest under both tags), so its pull, started beside the
    // clone, is the only one; no exact tag was looked up or pulled.
    const added = [...(await imageIds())].filter((i) => !before.has(i));
    const info = JSON.parse(String((await execa('docker', ['inspect', second.containerId!])).stdout)) as { Image: string }[];
    const movingRef = second.cache.ref!.replace(/:exact-[0-9a-f]{40}$/, ':devcontainer-cache');
    const moving = String((await execa('docker', ['image', 'inspect', '-f', '{{.Id}}', movingRef])).stdout).trim();
    expect(added).toEqual([info[0]!.Image]);
    expect(moving).toBe(info[0]!.Image);
    expect(events).toContain('the moving image is the exact image for this key');
    expect(events).not.toContain('"phase":"exact-lookup"');
    const exactImage = JSON.parse(String((await execa('docker', ['image', 'inspect', info[0]!.Image])).stdout)) as { Config: { Labels: Record<string, string> } }[];
    expect(exactImage[0]!.Config.Labels['dev.warmstart.repository']).toBe(`local:${repo}`);
    expect(exactImage[0]!.Config.Labels['dev.warmstart.builder']).toBe('classic');
    expect(exactImage[0]!.Config.Labels['dev.warmstart.content-key']).toMatch(new RegExp(`^${second.cache.ref!.slice(-40)}[0-9a-f]{24}$`));

    // The finished image is what was built, and the config still applies:
    // postCreateCommand ran once, as remoteUser.
    expect(await exec(second.containerId!, 'cat /built-by-dockerfile /feature-installed')).toBe('built\nfeature');
    expect(await exec(second.containerId!, 'cat /tmp/post-create-runs')).toBe('dev');
    expect(await exec(second.containerId!, 'cat /workspaces/exact/README.md')).toBe('exact hit fixture');
  });

  it('misses the exact tag when the Dockerfile changes, and builds from the layer cache', async () => {
    await cleanUp({ runId: run, workspaceIds: [ids[1]!] });
    await wipeImages(run);
    await execa('sh', ['-c', 'echo "RUN echo changed > /changed" >> .devcontainer/Dockerfile && git add -A && git -c user.email=t@t -c user.name=t commit -qm change'], { cwd: repo });
    const third = parseResult(await up(ids[2]!));
    expect(third.outcome).toBe('ready');
    expect(third.cache.hit).toBe('layers');
    expect(third.cache.stepsCached).toBeGreaterThan(0);
    expect(third.cache.stepsCached).toBeLessThan(third.cache.stepsTotal!);
  });
});
