// A fleet that mixes the classic builder (node 1) and BuildKit (nodes 2 and
// 3): each builder keeps its own moving tag (agent/src/cache/ref.ts
// builderRef), so neither overwrites the other's layer cache; exact tags are
// shared. And two nodes cold-starting one repository at the same moment.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedCacheRef, registryPath } from '../support/cache-ref.js';
import { parseResult, runCli, testEnv } from '../support/cli.js';
import { missExactTag } from '../support/config-edit.js';
import { cleanUp, imageExists } from '../support/docker.js';
import { testNodes, type TestNode } from '../support/nodes.js';
import { makeRepo, runId, twoStepFiles } from '../support/repos.js';
import { loadTestbed } from '../support/testbed.js';

const tb = loadTestbed();
const nodes = testNodes(tb);
const run = runId('mix');
const registry = `${tb.registry}/warmstart-test/${run}`;
const auth = `Basic ${Buffer.from(`${tb.registryUser}:${tb.registryPassword}`).toString('base64')}`;
const ACCEPT = ['application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.oci.image.manifest.v1+json'].join(', ');

const files = twoStepFiles('two builders fixture');

interface Started {
  node: TestNode;
  id: string;
  env: Record<string, string>;
}
const started: Started[] = [];

async function up(node: TestNode, repo: string, id: string) {
  const env = await testEnv(tb.baseImage, { WARMSTART_CACHE_REGISTRY: registry, ...node.env });
  started.push({ node, id, env });
  const r = await runCli(['up', repo, '--workspace-id', id, '--registry-username', tb.registryUser, '--registry-password-stdin', '--json'], {
    env,
    input: `${tb.registryPassword}\n`,
  });
  const events = await readFile(join(env.WARMSTART_STATE_DIR!, 'workspaces', id, 'events.ndjson'), 'utf8');
  return { code: r.code, stderr: r.stderr, result: parseResult(r), events };
}

async function registryGet(path: string, accept?: string): Promise<Response> {
  return fetch(`http://${tb.registry}/v2/${path}`, { headers: { authorization: auth, ...(accept ? { accept } : {}) } });
}

async function tags(ref: string): Promise<string[]> {
  const res = await registryGet(`${registryPath(ref)}/tags/list`);
  return res.ok ? (((await res.json()) as { tags?: string[] | null }).tags ?? []) : [];
}

/** The manifest under `tag`, after checking that its config and every layer are in the registry; the config's labels. */
async function completeImage(ref: string, tag: string): Promise<{ digest: string; labels: Record<string, string> }> {
  const path = registryPath(ref);
  const res = await registryGet(`${path}/manifests/${tag}`, ACCEPT);
  expect(res.status, `${path}:${tag}`).toBe(200);
  const digest = res.headers.get('docker-content-digest')!;
  const manifest = (await res.json()) as { config: { digest: string }; layers: { digest: string }[] };
  for (const blob of [manifest.config, ...manifest.layers]) {
    const head = await fetch(`http://${tb.registry}/v2/${path}/blobs/${blob.digest}`, { method: 'HEAD', headers: { authorization: auth } });
    expect(head.status, `${path}@${blob.digest} (under ${tag})`).toBe(200);
  }
  const config = (await (await registryGet(`${path}/blobs/${manifest.config.digest}`)).json()) as { config?: { Labels?: Record<string, string> } };
  return { digest, labels: config.config?.Labels ?? {} };
}

const exactTags = async (ref: string) => (await tags(ref)).filter((t) => /^exact-[0-9a-f]{40}$/.test(t));

describe('a fleet with both builders (node 1 classic, nodes 2 and 3 BuildKit)', () => {
  afterAll(async () => {
    for (const s of started) await cleanUp({ runId: run, workspaceIds: [s.id], ...(s.node.dockerHost ? { dockerHost: s.node.dockerHost } : {}) });
    for (const n of [nodes.node2, nodes.node3]) {
      await cleanUp({ runId: run, dockerHost: n.dockerHost });
      await execa('docker', ['builder', 'prune', '-af'], { env: { DOCKER_HOST: n.dockerHost! }, reject: false });
    }
  });

  describe('each builder keeps its own moving tag', () => {
    let repo: string;
    let classicRef: string;
    let buildkitRef: string;
    beforeAll(async () => {
      repo = await makeRepo(files, { runId: run, baseImage: tb.baseImage, owner: 'acme', name: `mixed-${run}` });
      classicRef = expectedCacheRef(registry, repo, null, 'classic');
      buildkitRef = expectedCacheRef(registry, repo, null, 'buildkit');
    });

    it('a BuildKit node does not take the classic image as cache, and neither overwrites the other', async () => {
      // Node 1 (classic) starts the repository first.
      const a = await up(nodes.node1, repo, `${run}-m1`);
      expect(a.code, a.stderr).toBe(0);
      expect(a.result.cache).toMatchObject({ ref: classicRef, hit: 'miss' });
      expect(a.result.push).toMatchObject({ status: 'pushed', ref: classicRef });

      // Node 2 (BuildKit), another exact key, same layers: its own tag is empty,
      // so it builds every step; the classic image is neither pulled nor offered as cache.
      await missExactTag(repo);
      const b = await up(nodes.node2, repo, `${run}-m2`);
      expect(b.code, b.stderr).toBe(0);
      expect(b.result.cache).toMatchObject({ ref: buildkitRef, hit: 'miss' });
      expect(b.result.cache.reason).toMatch(/CACHE_IMAGE_MISSING|not found|manifest unknown/i);
      expect(b.result.cache.stepsCached).toBe(0);
      expect(b.result.cache.stepsTotal).toBe(2);
      expect(b.events).not.toContain(`--cache-from ${classicRef}`);
      expect(await imageExists(classicRef, nodes.node2.dockerHost)).toBe(false);
      expect(b.result.push).toMatchObject({ status: 'pushed', ref: buildkitRef });

      // Both moving tags are there, each labelled by the builder that made it.
      expect((await completeImage(classicRef, 'devcontainer-cache')).labels['dev.warmstart.builder']).toBe('classic');
      expect((await completeImage(buildkitRef, 'buildkit-devcontainer-cache')).labels['dev.warmstart.builder']).toBe('buildkit');

      // Node 1 again, another key: its classic tag was not overwritten, every step is cached.
      await missExactTag(repo);
      const c = await up(nodes.node1, repo, `${run}-m3`);
      expect(c.code, c.stderr).toBe(0);
      expect(c.result.cache).toMatchObject({ ref: classicRef, hit: 'layers', reason: null });
      expect(c.result.cache.stepsTotal).toBe(a.result.cache.stepsTotal);
      expect(c.result.cache.stepsCached).toBe(c.result.cache.stepsTotal);

      // Node 3 (BuildKit) never saw the repository: every step from node 2's BuildKit tag.
      await missExactTag(repo);
      const d = await up(nodes.node3, repo, `${run}-m4`);
      expect(d.code, d.stderr).toBe(0);
      expect(d.result.cache).toMatchObject({ ref: buildkitRef, hit: 'layers', reason: null });
      expect(d.result.cache.stepsTotal).toBe(2);
      expect(d.result.cache.stepsCached).toBe(2);
      expect(d.events).toContain(`--cache-from ${buildkitRef}`);
      expect(d.events).toMatch(/#\d+ CACHED/);
    });
  });

  describe('two nodes cold-start one repository at the same moment', () => {
    let repo: string;
    let classicRef: string;
    let buildkitRef: string;
    beforeAll(async () => {
      repo = await makeRepo(files, { runId: run, baseImage: tb.baseImage, owner: 'acme', name: `monday-${run}` });
      classicRef = expectedCacheRef(registry, repo, null, 'classic');
      buildkitRef = expectedCacheRef(registry, repo, null, 'buildkit');
    });

    it('both are ready, the registry ends with complete moving and exact tags, and a third start on either node is an exact hit', async () => {
      const [one, two] = await Promise.all([up(nodes.node1, repo, `${run}-c1`), up(nodes.node2, repo, `${run}-c2`)]);
      for (const r of [one, two]) {
        expect(r.code, r.stderr).toBe(0);
        expect(r.result.outcome).toBe('ready');
        expect(r.result.cache.hit).toBe('miss');
        expect(r.result.push.status).toBe('pushed');
      }

      // One exact tag (the same content on both), and each builder's moving tag;
      // every manifest names a config and layers the registry holds.
      const exact = await exactTags(classicRef);
      expect(exact).toHaveLength(1);
      const exactImage = await completeImage(classicRef, exact[0]!);
      expect(exactImage.labels['dev.warmstart.repository']).toBe(`local:${repo}`);
      expect(exactImage.labels['dev.warmstart.content-key']!.startsWith(exact[0]!.slice('exact-'.length))).toBe(true);
      const classicMoving = await completeImage(classicRef, 'devcontainer-cache');
      const buildkitMoving = await completeImage(buildkitRef, 'buildkit-devcontainer-cache');
      // The exact tag holds whichever node labelled last; that node's moving tag is the same manifest.
      expect([classicMoving.digest, buildkitMoving.digest]).toContain(exactImage.digest);

      // A third start, on a node that saw nothing (node 3) and on node 1 again.
      const three = await up(nodes.node3, repo, `${run}-c3`);
      expect(three.code, three.stderr).toBe(0);
      expect(three.result.cache.hit).toBe('exact');
      expect(three.result.cache.ref).toBe(`${classicRef.slice(0, classicRef.lastIndexOf(':'))}:${exact[0]}`);
      expect(three.events).not.toMatch(/Run: \S*docker (?:buildx )?build /);
      const four = await up(nodes.node1, repo, `${run}-c4`);
      expect(four.code, four.stderr).toBe(0);
      expect(four.result.cache.hit).toBe('exact');
      const files = await execa('docker', ['exec', three.result.containerId!, 'cat', '/step-one', '/step-two'], {
        env: { DOCKER_HOST: nodes.node3.dockerHost! },
      });
      expect(String(files.stdout)).toBe('one\ntwo');
    });
  });
});
