import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const loaded = (pkg: string): boolean => Object.keys(require.cache).some((k) => k.includes(`/node_modules/${pkg}/`));

describe('dockerode as the agent loads it', () => {
  it('comes without gRPC; its BuildKit session module loads on first use and gets the call', async () => {
    expect(loaded('@grpc/grpc-js')).toBe(false);
    const { default: Docker } = await import('../../../agent/src/docker/dockerode-module.js');
    expect(typeof Docker).toBe('function');
    expect(typeof new Docker({ socketPath: '/nonexistent.sock' }).listContainers).toBe('function');
    expect(loaded('@grpc/grpc-js')).toBe(false);

    const file = require.resolve('dockerode/lib/session.js');
    const standIn = require.cache[file]!.exports as (docker: unknown, auth: unknown, handler: (...a: unknown[]) => void) => void;
    expect(standIn.name).toBe('loadedWhenUsed');
    // The real withSession dials the engine first: a dial that fails reaches the handler through it.
    const handed = await new Promise<unknown[]>((resolve) => {
      const docker = { modem: { dial: (_o: unknown, cb: (err: Error) => void) => cb(new Error('no engine')) } };
      standIn(docker, null, (...args: unknown[]) => resolve(args));
    });
    expect((handed[0] as Error).message).toBe('no engine');
    expect(loaded('@grpc/grpc-js')).toBe(true);
    expect((require.cache[file]!.exports as { name: string }).name).toBe('withSession');
  });

  it('comes without ssh2; an ssh:// engine loads it on its first request, once, and its connection goes through ssh2', async () => {
    const { default: Docker } = await import('../../../agent/src/docker/dockerode-module.js');
    expect(loaded('ssh2')).toBe(false);
    // An "SSH server" that closes every connection: ssh2 sees the handshake fail.
    let connections = 0;
    const server = createServer((socket) => {
      connections++;
      socket.end('not ssh\r\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const docker = new Docker({ protocol: 'ssh', host: '127.0.0.1', port, username: 'nobody', timeout: 5_000 } as never);
      const sshFile = Object.keys(require.cache).find((k) => k.endsWith('/docker-modem/lib/ssh.js'))!;
      expect((require.cache[sshFile]!.exports as { name: string }).name).toBe('loadedWhenUsed');
      await expect(docker.version()).rejects.toThrow();
      expect(loaded('ssh2')).toBe(true);
      const real = require.cache[sshFile]!.exports as unknown;
      expect(real).toBeTypeOf('function');
      await expect(docker.version()).rejects.toThrow();
      // loaded once: the second request went to the same module, not to a fresh copy
      expect(require.cache[sshFile]!.exports).toBe(real);
      expect(connections).toBe(2);
    } finally {
      server.close();
    }
  });
});
