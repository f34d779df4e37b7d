import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const grpcLoaded = (): boolean => Object.keys(require.cache).some((k) => k.includes('@grpc/grpc-js'));

describe('dockerode as the agent loads it', () => {
  it('comes without gRPC; its BuildKit session module loads on first use and gets the call', async () => {
    expect(grpcLoaded()).toBe(false);
    const { default: Docker } = await import('../../../agent/src/docker/dockerode-module.js');
    expect(typeof Docker).toBe('function');
    expect(typeof new Docker({ socketPath: '/nonexistent.sock' }).listContainers).toBe('function');
    expect(grpcLoaded()).toBe(false);

    const file = require.resolve('dockerode/lib/session.js');
    const standIn = require.cache[file]!.exports as (docker: unknown, auth: unknown, handler: (...a: unknown[]) => void) => void;
    expect(standIn.name).toBe('withSessionWhenUsed');
    // The real withSession dials the engine first: a dial that fails reaches the handler through it.
    const handed = await new Promise<unknown[]>((resolve) => {
      const docker = { modem: { dial: (_o: unknown, cb: (err: Error) => void) => cb(new Error('no engine')) } };
      standIn(docker, null, (...args: unknown[]) => resolve(args));
    });
    expect((handed[0] as Error).message).toBe('no engine');
    expect(grpcLoaded()).toBe(true);
    expect((require.cache[file]!.exports as { name: string }).name).toBe('withSession');
  });
});
