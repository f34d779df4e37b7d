import type Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { DockerodeEngine } from '../../../agent/src/docker/dockerode-engine.js';

/** An error as node's http client gives it when the engine's socket is missing or refuses. */
const down = (code: string): Error => Object.assign(new Error(`connect ${code} /var/run/docker.sock`), { code });

/** A dockerode stand-in whose createVolume fails with `failures` first, then answers. */
function flaky(failures: Error[]): { docker: Docker; calls: () => number } {
  let calls = 0;
  const docker = {
    createVolume: async () => {
      calls += 1;
      const next = failures.shift();
      if (next) throw next;
      return {};
    },
  } as unknown as Docker;
  return { docker, calls: () => calls };
}

describe('DockerodeEngine while the engine restarts', () => {
  it('sends a request again once the engine answers, when it never reached the engine', async () => {
    const f = flaky([down('ENOENT'), down('ECONNREFUSED')]);
    const engine = new DockerodeEngine(f.docker, { engineWaitMs: 2_000, retryEveryMs: 10 });
    await engine.createVolume('v', {});
    expect(f.calls()).toBe(3);
  });

  it('gives up with DOCKER_UNAVAILABLE when the engine stays away', async () => {
    const f = flaky(Array.from({ length: 1000 }, () => down('ECONNREFUSED')));
    const engine = new DockerodeEngine(f.docker, { engineWaitMs: 100, retryEveryMs: 10 });
    await expect(engine.createVolume('v', {})).rejects.toMatchObject({ code: 'DOCKER_UNAVAILABLE' });
    expect(f.calls()).toBeGreaterThan(1);
  });

  it('does not send again a request the engine may have acted on', async () => {
    const f = flaky([Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })]);
    const engine = new DockerodeEngine(f.docker, { engineWaitMs: 2_000, retryEveryMs: 10 });
    await expect(engine.createVolume('v', {})).rejects.toMatchObject({ code: 'DOCKER_OPERATION_FAILED' });
    expect(f.calls()).toBe(1);
  });
});
