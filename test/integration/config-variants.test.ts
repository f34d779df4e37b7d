import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseResult, runCli, testEnv } from '../support/cli.js';
import { cleanUp, containersWithLabel, readFromVolume } from '../support/docker.js';
import { missExactTag } from '../support/config-edit.js';
import { catOn, forgetRun } from '../support/node-docker.js';
import { crossNodePairs, testNodes } from '../support/nodes.js';
import { makeRepo, runId } from '../support/repos.js';
import { loadTestbed } from '../support/testbed.js';
import { expectedCacheRef } from '../support/cache-ref.js';

const tb = loadTestbed();
const run = runId('cfgv');
// The lightweight case gets its own run id: it must build nothing, which is
// checked by looking for images carrying that label.
const lightRun = runId('cfgl');
const namespace = `warmstart-test/${run}`;
const nodes = testNodes(tb);
const pairs = crossNodePairs(nodes);
const ids = {
  jsonc1: `${run}-jsonc-1`,
  jsonc2: `${run}-jsonc-2`,
  jsoncBk1: `${run}-jsonc-bk-1`,
  jsoncBk2: `${run}-jsonc-bk-2`,
  alpha: `${run}-alpha`,
  beta: `${run}-beta`,
  alphaBk: `${run}-alpha-bk`,
  betaBk: `${run}-beta-bk`,
  gamma: `${run}-gamma`,
  root: `${run}-root`,
  none: `${run}-none`,
  light: `${lightRun}-light`,
};
const allIds = Object.values(ids);

/** What a container holds at `path`, or null when it cannot be read. */
async function catInContainer(containerId: string, path: string): Promise<string | null> {
  const r = await execa('docker', ['exec', containerId, 'cat', path], { reject: false });
  return r.exitCode === 0 ? String(r.stdout) : null;
}

async function containerImage(containerId: string): Promise<string> {
  const r = await execa('docker', ['inspect', '-f', '{{.Config.Image}}', containerId]);
  return String(r.stdout).trim();
}

async function imagesLabelled(runLabel: string): Promise<string[]> {
  const r = await execa('docker', ['image', 'ls', '-aq', '--filter', `label=warmstart.test-run=${runLabel}`]);
  return String(r.stdout).split('\n').filter(Boolean);
}

async function events(env: Record<string, string>, id: string): Promise<Array<{ type: string; text?: string }>> {
  const text = await readFile(join(env.WARMSTART_STATE_DIR!, 'workspaces', id, 'events.ndjson'), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; text?: string });
}

describe('devcontainer config variants (real engine, registry, devcontainers CLI)', () => {
  let env: Record<string, string>;
  const refs: string[] = [];

  beforeAll(async () => {
    env = await testEnv(tb.baseImage);
  });
  afterAll(async () => {
    const elsewhere = [ids.jsonc1, ids.jsoncBk1, ids.jsoncBk2, ids.alphaBk, ids.betaBk];
    await cleanUp({ runId: run, workspaceIds: allIds.filter((id) => !elsewhere.includes(id)), refs });
    await cleanUp({ runId: lightRun });
    // The matrix cases ran on node 2 (both builders) and node 3 as well.
    await forgetRun(nodes.node2, { runId: run, workspaceIds: [ids.jsonc1, ids.jsoncBk1, ids.alphaBk, ids.betaBk], refs });
    await forgetRun(nodes.node3, { runId: run, workspaceIds: [ids.jsoncBk2], refs });
  });

  // Per builder: the cacheFrom merge and the layer hit, built on one node and
  // started on another (BuildKit imports both cache refs from the registry
  // itself; the repo's own does not exist).
  it.each(pairs)(
    'JSONC config with its own cacheFrom ($builder builder): builds its own Dockerfile, ours goes first, a start on another node hits',
    async (pair) => {
      const bk = pair.builder === 'buildkit';
      const repo = await makeRepo('jsonc-own-cachefrom', {
        runId: run,
        baseImage: tb.baseImage,
        owner: 'Acme',
        name: bk ? 'Jsonc-Own-Bk' : 'Jsonc-Own',
      });
      const ref = expectedCacheRef(`${tb.registry}/${namespace}`, repo, null, pair.builder);
      const own = '127.0.0.1:5002/elsewhere/own-cache:latest';
      refs.push(ref);
      const [id1, id2] = bk ? [ids.jsoncBk1, ids.jsoncBk2] : [ids.jsonc1, ids.jsonc2];
      const buildEnv = { ...env, ...pair.build.env };
      const startEnv = { ...env, ...pair.start.env };
      const args = (id: string) => [
        'up',
        repo,
        '--workspace-id',
        id,
        '--cache-registry',
        `${tb.registry}/${namespace}`,
        '--registry-username',
        tb.registryUser,
        '--registry-password-stdin',
        '--json',
      ];

      const cold = await runCli(args(id1), { env: buildEnv, input: `${tb.registryPassword}\n` });
      const first = parseResult(cold);
      expect(cold.code, cold.stderr).toBe(0);
      expect(first.outcome).toBe('ready');
      expect(first.profile).toBe('devcontainer');
      expect(first.error).toBeNull();
      expect(first.cache).toMatchObject({ ref, hit: 'miss' });
      expect(first.cache.stepsTotal).toBeGreaterThan(0);
      expect(first.cache.stepsCached).toBe(0);
      expect(first.push).toMatchObject({ status: 'pushed', ref });
      expect(await catOn(pair.build, first.containerId!, '/from-own-dockerfile')).toBe("built from the repo's own Dockerfile");

      // Another exact key, same layers: the layer path (an exact hit would build nothing).
      await missExactTag(repo);
      // The start node never saw the repository (BuildKit's own cache is keyed by content, not by the run's LABEL).
      await forgetRun(pair.start, { runId: run });
      const warm = await runCli(args(id2), { env: startEnv, input: `${tb.registryPassword}\n` });
      const second = parseResult(warm);
      expect(warm.code, warm.stderr).toBe(0);
      expect(second.outcome).toBe('ready');
      expect(second.profile).toBe('devcontainer');
      expect(second.cache).toMatchObject({ ref, hit: 'layers', reason: null });
      expect(second.cache.stepsTotal).toBe(first.cache.stepsTotal);
      expect(second.cache.stepsCached).toBe(second.cache.stepsTotal);
      expect(second.containerId).not.toBe(first.containerId);
      expect(await catOn(pair.start, second.containerId!, '/from-own-dockerfile')).toBe("built from the repo's own Dockerfile");

      // The docker build the CLI ran names both cache images, ours first; the
      // repo's own (which does not exist anywhere) did not break the build.
      const build = (await events(startEnv, id2)).find((e) => e.type === 'log' && e.text !== undefined && e.text.includes(`--cache-from ${ref}`));
      expect(build, 'no event shows the docker build with our --cache-from').toBeDefined();
      const line = build!.text!;
      expect(line).toMatch(bk ? /docker buildx build / : /docker build /);
      const ours = line.indexOf(`--cache-from ${ref}`);
      const theirs = line.indexOf(`--cache-from ${own}`);
      expect(theirs, line).toBeGreaterThan(-1);
      expect(ours).toBeLessThan(theirs);
      // Each appears once: de-duplicated, not repeated.
      expect(line.split(`--cache-from ${ref}`).length - 1).toBe(1);
      expect(line.split(`--cache-from ${own}`).length - 1).toBe(1);
    },
  );

  describe('named configs', () => {
    let repo: string;
    const registry = `${tb.openRegistry}/${namespace}`;
    beforeAll(async () => {
      repo = await makeRepo('named', { runId: run, baseImage: tb.baseImage, owner: 'Acme', name: 'Named' });
    });
    const up = (id: string, name: string, extra: Record<string, string> = {}) =>
      runCli(['up', repo, '--workspace-id', id, '--config-name', name, '--cache-registry', registry, '--no-push', '--json'], {
        env: { ...env, ...extra },
      });

    // Per builder: a config name and the builder both go into the moving tag.
    it.each([nodes.node1, nodes.node2])(
      '--config-name alpha and beta build their own config, each with its own cache ref ($builder builder)',
      async (node) => {
        const bk = node.builder === 'buildkit';
        const a = await up(bk ? ids.alphaBk : ids.alpha, 'alpha', node.env);
        const ra = parseResult(a);
        expect(a.code, a.stderr).toBe(0);
        expect(ra).toMatchObject({ outcome: 'ready', profile: 'devcontainer', error: null });
        expect(ra.cache.ref).toBe(expectedCacheRef(registry, repo, 'alpha', node.builder));
        expect(ra.cache.stepsTotal).toBeGreaterThan(0);
        expect(await catOn(node, ra.containerId!, '/which-config')).toBe('alpha');

        const b = await up(bk ? ids.betaBk : ids.beta, 'beta', node.env);
        const rb = parseResult(b);
        expect(b.code, b.stderr).toBe(0);
        expect(rb).toMatchObject({ outcome: 'ready', profile: 'devcontainer', error: null });
        expect(rb.cache.ref).toBe(expectedCacheRef(registry, repo, 'beta', node.builder));
        expect(rb.cache.ref).not.toBe(ra.cache.ref);
        expect(await catOn(node, rb.containerId!, '/which-config')).toBe('beta');
        expect(rb.containerId).not.toBe(ra.containerId);
      },
    );

    it('a missing named config is a recovery with DEVCONTAINER_CONFIG_INVALID, never the default config silently', async () => {
      const g = await up(ids.gamma, 'gamma');
      const rg = parseResult(g);
      expect(g.code, g.stderr).toBe(3);
      expect(rg.outcome).toBe('recovery');
      expect(rg.profile).toBe('recovery');
      expect(rg.error?.code).toBe('DEVCONTAINER_CONFIG_INVALID');
      expect(rg.error?.message).toContain('gamma');
      expect(rg.push.status).toBe('skipped');
      // The container runs the default image: neither alpha's nor beta's build.
      expect(rg.containerId).not.toBeNull();
      expect(await containerImage(rg.containerId!)).toBe(tb.baseImage);
      expect(await catInContainer(rg.containerId!, '/which-config')).toBeNull();
      // The cause is kept in the workspace for the user.
      const log = await readFromVolume(`warmstart-ws-${ids.gamma}`, '.devcontainer-build-error.log', tb.baseImage);
      expect(log).toContain('DEVCONTAINER_CONFIG_INVALID');
    });
  });

  it('a root .devcontainer.json is found and built', async () => {
    const repo = await makeRepo('root-config', { runId: run, baseImage: tb.baseImage });
    const r = await runCli(['up', repo, '--workspace-id', ids.root, '--json'], { env });
    const res = parseResult(r);
    expect(r.code, r.stderr).toBe(0);
    expect(res).toMatchObject({ outcome: 'ready', profile: 'devcontainer', error: null });
    // No registry configured: the cache is off, but the build still ran.
    expect(res.cache.hit).toBe('disabled');
    expect(res.cache.stepsTotal).toBeGreaterThan(0);
    expect(await catInContainer(res.containerId!, '/which-config')).toBe('root');
  });

  it('no config: the default image with the repository mounted, cache disabled, push skipped', async () => {
    const repo = await makeRepo('no-config', { runId: run, baseImage: tb.baseImage });
    // A registry and credentials are configured, so "disabled" and "skipped" come from the missing config.
    const r = await runCli(
      [
        'up',
        repo,
        '--workspace-id',
        ids.none,
        '--cache-registry',
        `${tb.registry}/${namespace}`,
        '--registry-username',
        tb.registryUser,
        '--registry-password-stdin',
        '--json',
      ],
      { env, input: `${tb.registryPassword}\n` },
    );
    const res = parseResult(r);
    expect(r.code, r.stderr).toBe(0);
    expect(res.outcome).toBe('ready');
    expect(res.profile).toBe('lightweight');
    expect(res.error).toBeNull();
    expect(res.cache.hit).toBe('disabled');
    expect(res.cache.reason).toMatch(/no devcontainer config/i);
    expect(res.cache.stepsTotal).toBeNull();
    expect(res.push.status).toBe('skipped');
    expect(res.push.reason).toBeTruthy();
    expect(await containerImage(res.containerId!)).toBe(tb.baseImage);
    expect(await catInContainer(res.containerId!, '/workspaces/no-config/README.md')).toBe('No dev container config here.');
    expect(await containersWithLabel(`warmstart.workspace=${ids.none}`)).toEqual([res.containerId!.slice(0, 12)]);
  });

  it('--lightweight on a repo with a config builds nothing', async () => {
    const repo = await makeRepo('small', { runId: lightRun, baseImage: tb.baseImage });
    const r = await runCli(
      ['up', repo, '--workspace-id', ids.light, '--lightweight', '--cache-registry', `${tb.openRegistry}/${namespace}`, '--json'],
      { env },
    );
    const res = parseResult(r);
    expect(r.code, r.stderr).toBe(0);
    expect(res.outcome).toBe('ready');
    expect(res.profile).toBe('lightweight');
    expect(res.cache.hit).toBe('disabled');
    expect(res.cache.reason).toMatch(/lightweight/);
    expect(res.cache.stepsTotal).toBeNull();
    expect(res.cache.stepsCached).toBeNull();
    expect(res.push.status).toBe('skipped');
    expect(res.timings.up).toBeUndefined();
    expect(await containerImage(res.containerId!)).toBe(tb.baseImage);
    // The repo's Dockerfile did not run: its marker is absent and no image carries its label.
    expect(await catInContainer(res.containerId!, '/which-config')).toBeNull();
    expect(await imagesLabelled(lightRun)).toEqual([]);
    // The repository is there all the same.
    expect(await catInContainer(res.containerId!, '/workspaces/small/.devcontainer/devcontainer.json')).toContain('dockerfile');
  });
});
