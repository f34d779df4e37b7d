import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseResult, runCli, testEnv } from '../support/cli.js';
import { expectedCacheRef } from '../support/cache-ref.js';
import { dockerOn, forgetRun, labelledImages, shOn } from '../support/node-docker.js';
import { crossNodePairs } from '../support/nodes.js';
import { makeRepo, runId } from '../support/repos.js';
import { loadTestbed } from '../support/testbed.js';

const tb = loadTestbed();

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

// Per builder: the image built and pushed on one node starts as is on another
// node that never saw the repository (exact tags are shared by both builders;
// the moving tag, which holds the exact image too, is the builder's own).
describe.each(crossNodePairs())('exact-hit prebuilds, $builder builder (real engines, registry, devcontainers CLI)', (pair) => {
  const run = runId(pair.builder === 'buildkit' ? 'exbk' : 'exact');
  const namespace = `warmstart-test/${run}`;
  const registry = `${tb.registry}/${namespace}`;
  const ids = [`${run}-a`, `${run}-b`, `${run}-c`];
  let repo: string;
  let buildEnv: Record<string, string>;
  let startEnv: Record<string, string>;
  const up = (env: Record<string, string>, id: string) =>
    runCli(['up', repo, '--workspace-id', id, '--registry-username', tb.registryUser, '--registry-password-stdin', '--json'], {
      env,
      input: `${tb.registryPassword}\n`,
    });

  beforeAll(async () => {
    repo = await makeRepo(files, { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'exact' });
    buildEnv = await testEnv(tb.baseImage, { WARMSTART_CACHE_REGISTRY: registry, ...pair.build.env });
    startEnv = await testEnv(tb.baseImage, { WARMSTART_CACHE_REGISTRY: registry, ...pair.start.env });
  });
  afterAll(async () => {
    await forgetRun(pair.build, { runId: run, workspaceIds: ids });
    await forgetRun(pair.start, { runId: run, workspaceIds: ids });
  });

  it(`pushes an exact tag after a build on ${pair.build.name}, then ${pair.start.name} starts the finished image without any docker build`, async () => {
    const cold = await up(buildEnv, ids[0]!);
    const first = parseResult(cold);
    expect(cold.code, cold.stderr).toBe(0);
    expect(first.outcome).toBe('ready');
    expect(first.cache.hit).toBe('miss');
    expect(first.push.status).toBe('pushed');
    const exactPushed = (await readFile(join(buildEnv.WARMSTART_STATE_DIR!, 'workspaces', ids[0]!, 'events.ndjson'), 'utf8')).includes(
      '"phase":"key"',
    );
    expect(exactPushed).toBe(true);

    // The other node never saw the repository: nothing this fixture built is there.
    const before = new Set(await labelledImages(pair.start, run));
    expect(before.size).toBe(0);

    const warm = await up(startEnv, ids[1]!);
    const second = parseResult(warm);
    expect(warm.code, warm.stderr).toBe(0);
    expect(second.cache.hit).toBe('exact');
    expect(second.cache.ref).toMatch(/:exact-[0-9a-f]{40}$/);
    expect(second.cache.stepsTotal).toBeNull();
    expect(second.push.status).toBe('skipped');

    // No build ran: the CLI ran no `docker build` / `docker buildx build`,
    // the log has no build step, and the only new image on the engine is the one pulled.
    const events = await readFile(join(startEnv.WARMSTART_STATE_DIR!, 'workspaces', ids[1]!, 'events.ndjson'), 'utf8');
    expect(events).not.toMatch(/Run: \S*docker (?:buildx )?build /);
    expect(events).not.toMatch(/Step \d+\/\d+ :/);
    expect(events).not.toMatch(/#\d+ \[(?:\S+ )?\d+\/\d+\] RUN /);
    // One new image: the moving tag is the exact image (push-cache.ts puts one
    // labelled manifest under both tags), so its pull, started beside the
    // clone, is the only one; no exact tag was looked up or pulled.
    const added = (await labelledImages(pair.start, run)).filter((i) => !before.has(i));
    const info = JSON.parse(String((await dockerOn(pair.start, ['inspect', second.containerId!])).stdout)) as { Image: string }[];
    const movingRef = expectedCacheRef(registry, repo, null, pair.builder);
    expect(second.cache.ref!.slice(0, second.cache.ref!.lastIndexOf(':'))).toBe(movingRef.slice(0, movingRef.lastIndexOf(':')));
    const moving = String((await dockerOn(pair.start, ['image', 'inspect', '-f', '{{.Id}}', movingRef])).stdout).trim();
    expect(added).toEqual([info[0]!.Image]);
    expect(moving).toBe(info[0]!.Image);
    expect(events).toContain('the moving image is the exact image for this key');
    expect(events).not.toContain('"phase":"exact-lookup"');
    const exactImage = JSON.parse(String((await dockerOn(pair.start, ['image', 'inspect', info[0]!.Image])).stdout)) as {
      Config: { Labels: Record<string, string> };
    }[];
    expect(exactImage[0]!.Config.Labels['dev.warmstart.repository']).toBe(`local:${repo}`);
    expect(exactImage[0]!.Config.Labels['dev.warmstart.builder']).toBe(pair.builder);
    expect(exactImage[0]!.Config.Labels['dev.warmstart.content-key']).toMatch(new RegExp(`^${second.cache.ref!.slice(-40)}[0-9a-f]{24}$`));

    // The finished image is what was built, and the config still applies:
    // postCreateCommand ran once, as remoteUser.
    expect(await shOn(pair.start, second.containerId!, 'cat /built-by-dockerfile /feature-installed')).toBe('built\nfeature');
    expect(await shOn(pair.start, second.containerId!, 'cat /tmp/post-create-runs')).toBe('dev');
    expect(await shOn(pair.start, second.containerId!, 'cat /workspaces/exact/README.md')).toBe('exact hit fixture');
  });

  it(`misses the exact tag when the Dockerfile changes, and ${pair.start.name}, fresh again, builds from the layer cache`, async () => {
    // The moving tag now holds the exact image (the labelled copy): its layers must still serve this builder.
    await forgetRun(pair.start, { runId: run, workspaceIds: [ids[1]!], refs: [expectedCacheRef(registry, repo, null, pair.builder)] });
    expect(await labelledImages(pair.start, run)).toEqual([]);
    await execa(
      'sh',
      [
        '-c',
        'echo "RUN echo changed > /changed" >> .devcontainer/Dockerfile && git add -A && git -c user.email=t@t -c user.name=t commit -qm change',
      ],
      { cwd: repo },
    );
    const cli = await up(startEnv, ids[2]!);
    const third = parseResult(cli);
    expect(cli.code, cli.stderr).toBe(0);
    expect(third.outcome).toBe('ready');
    expect(third.cache.hit).toBe('layers');
    expect(third.cache.stepsCached).toBeGreaterThan(0);
    expect(third.cache.stepsCached).toBeLessThan(third.cache.stepsTotal!);
    // Every step but the new one (and the feature layer on top of it) came from the cache.
    expect(await shOn(pair.start, third.containerId!, 'cat /built-by-dockerfile /changed /feature-installed')).toBe('built\nchanged\nfeature');
  });
});
