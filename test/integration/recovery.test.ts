import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseResult, runCli, testEnv } from '../support/cli.js';
import { cleanUp, containersWithLabel, readFromVolume, volumeExists } from '../support/docker.js';
import { makeRepo, runId } from '../support/repos.js';
import { loadTestbed } from '../support/testbed.js';
import { expectedCacheRef } from '../support/cache-ref.js';

/**
 * docs/how-it-works.md "Pipeline" step 9: a Dockerfile whose build fails gives a `recovery`
 * workspace (exit 3) on the default image, with the build log kept in the
 * workspace volume, and the volume survives the next failed `up`.
 */
const tb = loadTestbed();
const run = runId('recov');
const id = `${run}-ws`;
const volume = `warmstart-ws-${id}`;
const namespace = `warmstart-test/${run}`;
/** the ref a push would go to (none must), set once the repository exists */
let ref: string | undefined;
const LOG = '.devcontainer-build-error.log';
const STDERR_LINE = /^(?:\x1b\[[0-9;]*m)*fatal: toolchain-compile-error-7731$/m;

interface Inspect {
  Id: string;
  Config: { Image: string; Labels: Record<string, string> };
  State: { Running: boolean };
  Mounts: { Type: string; Name?: string; Destination: string }[];
}

async function inspect(containerId: string): Promise<Inspect> {
  const r = await execa('docker', ['inspect', containerId]);
  return (JSON.parse(String(r.stdout)) as Inspect[])[0]!;
}

describe('recovery when the repository config does not build (real engine, devcontainers CLI)', () => {
  let repo: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    repo = await makeRepo('broken-build', { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'broken' });
    ref = expectedCacheRef(`${tb.registry}/${namespace}`, repo);
    // A working registry with good credentials: without the fallback, a push would happen.
    env = await testEnv(tb.baseImage, { WARMSTART_CACHE_REGISTRY: `${tb.registry}/${namespace}` });
  });
  afterAll(async () => {
    await cleanUp({ runId: run, workspaceIds: [id], refs: ref ? [ref] : [] });
    // Anything else this run's build left behind (e.g. the failed build step's container).
    const left = await containersWithLabel(`warmstart.test-run=${run}`);
    if (left.length) await execa('docker', ['rm', '-f', ...left], { reject: false });
    await cleanUp({ runId: run });
    await rm(env.WARMSTART_STATE_DIR!, { recursive: true, force: true });
    await rm(join(repo, '..', '..'), { recursive: true, force: true });
  });

  const up = () =>
    runCli(['up', repo, '--workspace-id', id, '--registry-username', tb.registryUser, '--registry-password-stdin', '--json'], {
      env,
      input: `${tb.registryPassword}\n`,
    });

  it('falls back to the default image with the build log in the volume, and keeps the volume on the next failed up', async () => {
    const first = await up();
    const r = parseResult(first);
    expect(first.code, first.stderr).toBe(3);
    expect(r.outcome).toBe('recovery');
    expect(r.profile).toBe('recovery');
    expect(r.error?.code).toBe('DEVCONTAINER_UP_FAILED');
    expect(r.timings.ready).toBeGreaterThan(0);
    expect(r.timings.fallback).toBeGreaterThanOrEqual(0);
    // Recovery never pushes, although registry and credentials were fine.
    expect(r.push.status).toBe('skipped');
    expect(r.push.reason).toMatch(/recovery/);

    // A running container of the default image, the workspace volume mounted.
    expect(r.containerId).toMatch(/^[0-9a-f]{64}$/);
    const c = await inspect(r.containerId!);
    expect(c.State.Running).toBe(true);
    expect(c.Config.Image).toBe(tb.baseImage);
    expect(c.Config.Labels['warmstart.profile']).toBe('recovery');
    expect(c.Config.Labels['warmstart.workspace']).toBe(id);
    expect(c.Mounts).toContainEqual(expect.objectContaining({ Type: 'volume', Name: volume, Destination: '/workspaces/broken' }));

    // The failed build's output is in the workspace, next to the repository.
    const log = await readFromVolume(volume, LOG, tb.baseImage);
    // The RUN step's own stderr line (not just the echoed command of 'Step n/m : RUN ...').
    expect(log).toMatch(STDERR_LINE);
    expect(log).toContain('DEVCONTAINER_UP_FAILED');
    expect(await readFromVolume(volume, '.devcontainer/Dockerfile', tb.baseImage)).toContain('toolchain-compile-error-7731');
    // ...and in the events log, the same failure streamed from the build.
    const events = await readFile(join(env.WARMSTART_STATE_DIR!, 'workspaces', id, 'events.ndjson'), 'utf8');
    // (docker's output arrives in chunks: the line may start a chunk or follow a newline inside one)
    expect(events).toMatch(/(?:"text":"|\\n)(?:\\u001b\[[0-9;]*m)*fatal: toolchain-compile-error-7731/);

    // Only the recovery container carries the workspace label: no failed dev container left.
    expect(await containersWithLabel(`warmstart.workspace=${id}`)).toEqual([r.containerId!.slice(0, 12)]);
    // Nothing from the failed build is left, running or stopped: the classic
    // builder keeps a failed step's container unless told --force-rm.
    expect(await containersWithLabel(`warmstart.test-run=${run}`)).toEqual([]);

    // The user works in the recovery container; that work must survive the next attempt.
    const marker = `kept-${run}`;
    const w = await execa(
      'docker',
      ['run', '--rm', '--label', `warmstart.test-run=${run}`, '-v', `${volume}:/v`, tb.baseImage, 'sh', '-c', `echo ${marker} > /v/marker.txt`],
      { reject: false },
    );
    expect(w.exitCode, String(w.stderr)).toBe(0);

    const second = await up();
    const r2 = parseResult(second);
    expect(second.code, second.stderr).toBe(3);
    expect(r2.outcome).toBe('recovery');
    expect(r2.profile).toBe('recovery');
    expect(r2.error?.code).toBe('DEVCONTAINER_UP_FAILED');
    expect(r2.push.status).toBe('skipped');
    expect(await volumeExists(volume)).toBe(true);
    expect((await readFromVolume(volume, 'marker.txt', tb.baseImage))?.trim()).toBe(marker);
    expect(await readFromVolume(volume, LOG, tb.baseImage)).toMatch(STDERR_LINE);
    // The first recovery container was replaced, not duplicated.
    expect(r2.containerId).not.toBe(r.containerId);
    expect(await containersWithLabel(`warmstart.workspace=${id}`)).toEqual([r2.containerId!.slice(0, 12)]);
    expect((await inspect(r2.containerId!)).Mounts).toContainEqual(expect.objectContaining({ Type: 'volume', Name: volume }));

    console.log(
      `recovery: first up ${first.wallMs} ms wall (ready ${r.timings.ready} ms), second up ${second.wallMs} ms wall (ready ${r2.timings.ready} ms)`,
    );
  });
});
