import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readImageConfig } from '../../agent/src/cache/relabel.js';
import { pinnedCliScript } from '../../agent/src/devcontainer/cli-runner.js';
import { createOciApi } from '../../agent/src/registry/oci-api.js';
import { parseResult, runCli, testEnv } from '../support/cli.js';
import { wipeImages } from '../support/docker.js';
import { eventsOnDisk } from '../support/events.js';
import { dockerOn, forgetRun, shOn } from '../support/node-docker.js';
import { testNodes, type TestNode } from '../support/nodes.js';
import { makeRepo, runId } from '../support/repos.js';
import { loadTestbed } from '../support/testbed.js';

const tb = loadTestbed();
const nodes = testNodes(tb);

// Per builder, on one node of it: the classic builder (node 1) takes `FROM`
// from the engine's images, BuildKit (node 2) resolves it in the registry
// itself, and `--no-cache` (an expired exact image) must also skip BuildKit's
// own build cache, which outlives the images.
describe.each([nodes.node1, nodes.node2])(
  'exact keys follow moving base and feature tags, $builder builder (real engines, registries, devcontainers CLI)',
  (node: TestNode) => {
    const run = runId(node.builder === 'buildkit' ? 'frbk' : 'fresh');
    const namespace = `warmstart-test/${run}`;
    const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((s) => `${run}-${s}`);
    // A team's moving base tag, in the open registry.
    const baseRef = `${tb.openRegistry}/${run}/base:stable`;
    // A local-only tag in the same registry's name space: the build finds it on the engine, the registry has no such tag.
    const unpushedRef = `${tb.openRegistry}/${run}/base:never-pushed`;
    // The pinned CLI (0.89.0) fetches a feature over plain http only from a host named `localhost`
    // (its registry scheme function); the agent's own HEAD treats localhost as loopback too.
    const featureRepo = `localhost:${tb.openRegistry.split(':')[1]}/${run}/features`;
    const featureRef = `${featureRepo}/marker:1`;

    const files = (base: string): Record<string, string> => ({
      '.devcontainer/devcontainer.json': `{
      "build": { "dockerfile": "Dockerfile" },
      "features": { "${featureRef}": {} },
    }`,
      '.devcontainer/Dockerfile': `FROM ${base}\nLABEL warmstart.test-run=@@RUN_ID@@\nRUN echo built > /built\n`,
      'README.md': 'fresh exact key fixture\n',
    });

    /**
     * Builds `ref` as the testbed base plus /base-version, labelled with the run so wipes remove it, and pushes it unless told not to;
     * on `on`'s engine (default node 1), with the classic builder.
     */
    async function makeBase(ref: string, version: string, push = true, on: TestNode = nodes.node1): Promise<void> {
      const dockerfile = `FROM ${tb.baseImage}\nLABEL warmstart.test-run=${run}\nRUN echo ${version} > /base-version\n`;
      const env = { DOCKER_BUILDKIT: '0', ...(on.dockerHost ? { DOCKER_HOST: on.dockerHost } : {}) };
      await execa('docker', ['build', '-q', '-t', ref, '-'], { input: dockerfile, env });
      if (push) await execa('docker', ['push', ref], { env });
    }

    /** Publishes the `marker` feature at `version` with the pinned CLI: tags 1, 1.0, <version> and latest move to it. */
    async function publishFeature(version: string, writes: string): Promise<void> {
      const dir = await mkdtemp(join(tmpdir(), 'warmstart-feature-'));
      try {
        await mkdir(join(dir, 'src', 'marker'), { recursive: true });
        await writeFile(join(dir, 'src', 'marker', 'devcontainer-feature.json'), JSON.stringify({ id: 'marker', version, name: 'marker' }));
        await writeFile(join(dir, 'src', 'marker', 'install.sh'), `#!/bin/sh\necho ${writes} > /feature-version\n`, { mode: 0o755 });
        await execa(process.execPath, [
          pinnedCliScript(),
          'features',
          'publish',
          join(dir, 'src'),
          '--registry',
          featureRepo.split('/')[0]!,
          '--namespace',
          `${run}/features`,
        ]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }

    const exec = (containerId: string, cmd: string): Promise<string> => shOn(node, containerId, cmd);

    let repo: string;
    let env: Record<string, string>;
    const up = (id: string, extra: Record<string, string> = {}) =>
      runCli(['up', repo, '--workspace-id', id, '--registry-username', tb.registryUser, '--registry-password-stdin', '--json'], {
        env: { ...env, ...extra },
        input: `${tb.registryPassword}\n`,
      });
    /** A node that never saw the repository: its containers, every image of this run and BuildKit's cache are gone (the testbed base stays). */
    const freshNode = async (id: string) => {
      await forgetRun(node, { runId: run, workspaceIds: [id] });
      await wipeImages(run, [baseRef], node.dockerHost);
    };

    beforeAll(async () => {
      await makeBase(baseRef, 'one');
      await publishFeature('1.0.0', 'one');
      repo = await makeRepo(files(baseRef), { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'fresh' });
      env = await testEnv(tb.baseImage, { WARMSTART_CACHE_REGISTRY: `${tb.registry}/${namespace}`, ...node.env });
    });
    afterAll(async () => {
      await forgetRun(node, { runId: run, workspaceIds: ids, refs: [baseRef, unpushedRef] });
      // makeBase builds and pushes the moving base on node 1.
      if (node.dockerHost) await forgetRun(nodes.node1, { runId: run, refs: [baseRef, unpushedRef] });
    });

    it('builds on a moved base tag instead of starting the old exact image, then hits the new one', async () => {
      const first = parseResult(await up(ids[0]!));
      expect(first.outcome).toBe('ready');
      expect(first.cache.hit).toBe('miss');
      expect(first.push.status).toBe('pushed');
      expect(await exec(first.containerId!, 'cat /base-version /feature-version')).toBe('one\none');
      const pinned = (await eventsOnDisk(env.WARMSTART_STATE_DIR!, ids[0]!)).find((e) => e.phase === 'pin' && e.type === 'note');
      expect(pinned?.text).toContain(`${baseRef}@sha256:`);
      expect(pinned?.text).toContain(`${featureRef}@sha256:`);

      // The base tag moves to another image; the next start is on a node without any image of the run.
      await makeBase(baseRef, 'two');
      await freshNode(ids[0]!);
      const second = parseResult(await up(ids[1]!));
      expect(second.outcome).toBe('ready');
      expect(second.cache.hit).not.toBe('exact');
      expect(second.cache.ref).not.toMatch(/:exact-/);
      expect(second.push.status).toBe('pushed');
      expect(await exec(second.containerId!, 'cat /base-version /built')).toBe('two\nbuilt');

      await freshNode(ids[1]!);
      const third = parseResult(await up(ids[2]!));
      expect(third.cache.hit).toBe('exact');
      expect(await exec(third.containerId!, 'cat /base-version /feature-version')).toBe('two\none');
    });

    it('builds with a remote feature whose tag moved, instead of starting the old exact image', async () => {
      await publishFeature('1.0.1', 'two');
      await freshNode(ids[2]!);
      const fourth = parseResult(await up(ids[3]!));
      expect(fourth.outcome).toBe('ready');
      expect(fourth.cache.hit).not.toBe('exact');
      expect(fourth.push.status).toBe('pushed');
      expect(await exec(fourth.containerId!, 'cat /base-version /feature-version')).toBe('two\ntwo');

      // The one after it, on another fresh node, starts the image built with the new feature.
      await freshNode(ids[3]!);
      const again = parseResult(await up(ids[6]!));
      expect(again.cache.hit).toBe('exact');
      expect(await exec(again.containerId!, 'cat /base-version /feature-version')).toBe('two\ntwo');
      await forgetRun(node, { runId: run, workspaceIds: [ids[6]!] });
    });

    it('does not start an exact image older than WARMSTART_EXACT_MAX_AGE: it builds every step again and pushes a fresh one', async () => {
      await freshNode(ids[3]!);
      const before = Date.now();
      // The exact image the last start pushed is older than a second by now.
      await new Promise((r) => setTimeout(r, 1500));
      const fifth = parseResult(await up(ids[4]!, { WARMSTART_EXACT_MAX_AGE: '1s' }));
      expect(fifth.outcome).toBe('ready');
      expect(fifth.cache.hit).toBe('miss');
      expect(fifth.cache.stepsCached).toBe(0);
      expect(fifth.cache.stepsTotal).toBeGreaterThan(0);
      expect(fifth.cache.reason).toMatch(
        /^EXACT_IMAGE_EXPIRED: the exact image was made \S+ \(\S+ ago\), older than WARMSTART_EXACT_MAX_AGE \(1s\)$/,
      );
      expect(fifth.push.status).toBe('pushed');
      // The exact tag in the registry now names the newly built image, and the
      // node keeps no local tag of the expired one it pulled.
      const noted = (await eventsOnDisk(env.WARMSTART_STATE_DIR!, ids[4]!)).map((e) => e.text ?? '').join('\n');
      const exactRef = /(\S+:exact-[0-9a-f]{40}) is in the registry/.exec(noted)?.[1];
      expect(exactRef).toBeDefined();
      expect((await dockerOn(node, ['image', 'inspect', exactRef!])).exitCode).not.toBe(0);
      const creds = { registry: tb.registry, username: tb.registryUser, password: tb.registryPassword, source: 'static' as const };
      const facts = await readImageConfig(
        createOciApi(),
        exactRef!.slice(0, exactRef!.lastIndexOf(':')),
        exactRef!.slice(exactRef!.lastIndexOf(':') + 1),
        creds,
      );
      expect(Date.parse(facts!.created!)).toBeGreaterThan(before);
    });

    it('starts without an exact lookup when a base cannot be resolved in its registry, with the reason', async () => {
      await freshNode(ids[4]!);
      // A base only this engine has: the build uses it, the registry has never heard of the tag.
      await makeBase(unpushedRef, 'local', false, node);
      await execa(
        'sh',
        ['-c', `sed -i 's#^FROM .*#FROM ${unpushedRef}#' .devcontainer/Dockerfile && git -c user.email=t@t -c user.name=t commit -qam local-base`],
        { cwd: repo },
      );
      const sixth = parseResult(await up(ids[5]!));
      expect(sixth.outcome).toBe('ready');
      expect(sixth.cache.hit).toBe('layers');
      expect(sixth.cache.reason).toBe(`no exact lookup: base ${unpushedRef} was not found in its registry`);
      expect(sixth.push.status).toBe('pushed');
      expect(await exec(sixth.containerId!, 'cat /base-version')).toBe('local');
    });
  },
);
