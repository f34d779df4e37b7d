import { describe, expect, it } from 'vitest';
import { configFromEnv, DEFAULT_IMAGE } from '../../../agent/src/config/agent-config.js';
import { isWarmstartError } from '../../../agent/src/errors.js';
import { parseListen, serveConfigFromEnv } from '../../../agent/src/config/serve-config.js';

describe('configFromEnv', () => {
  it('has no cache registry by default', () => {
    const c = configFromEnv({});
    expect(c.cacheRegistry).toBeNull();
    expect(c.defaultImage).toBe(DEFAULT_IMAGE);
    expect(c.stateDir).toBe('/var/lib/warmstart');
    expect(c.pushTimeoutMs).toBe(600_000);
  });

  it('reads WARMSTART_CACHE_PULL_FIRST: auto by default, always, and refuses anything else', () => {
    expect(configFromEnv({}).cachePullFirst).toBe('auto');
    expect(configFromEnv({ WARMSTART_CACHE_PULL_FIRST: 'always' }).cachePullFirst).toBe('always');
    for (const v of ['never', 'yes', 'ALWAYS']) {
      try {
        configFromEnv({ WARMSTART_CACHE_PULL_FIRST: v });
        expect.unreachable();
      } catch (e) {
        expect(isWarmstartError(e, 'INVALID_ARGUMENT')).toBe(true);
      }
    }
  });

  it('defaults to ghcr.io only when GitHub App credentials are configured', () => {
    const app = { WARMSTART_GITHUB_APP_ID: '1', WARMSTART_GITHUB_APP_PRIVATE_KEY_FILE: '/k.pem', WARMSTART_GITHUB_INSTALLATION_ID: '2' };
    expect(configFromEnv(app).cacheRegistry).toBe('ghcr.io');
    expect(configFromEnv({ ...app, WARMSTART_CACHE_REGISTRY: 'registry.example.com/ns' }).cacheRegistry).toBe('registry.example.com/ns');
  });

  it('refuses half a GitHub App and non-positive timeouts', () => {
    expect(() => configFromEnv({ WARMSTART_GITHUB_APP_ID: '1' })).toThrow(/GitHub App/);
    for (const v of ['0', '-3', 'ten']) {
      try {
        configFromEnv({ WARMSTART_PUSH_TIMEOUT_SECONDS: v });
        expect.unreachable();
      } catch (e) {
        expect(isWarmstartError(e, 'INVALID_ARGUMENT')).toBe(true);
      }
    }
  });

  it('takes the runtime dir from WARMSTART_RUNTIME_DIR, then systemd, then /run/warmstart', () => {
    expect(configFromEnv({ WARMSTART_RUNTIME_DIR: '/a', RUNTIME_DIRECTORY: '/b' }).runtimeDir).toBe('/a');
    expect(configFromEnv({ RUNTIME_DIRECTORY: '/b' }).runtimeDir).toBe('/b');
    expect(configFromEnv({}).runtimeDir).toBe('/run/warmstart');
  });
});

describe('serveConfigFromEnv', () => {
  it('defaults to loopback:7780, two builds, local repos refused, no control plane', () => {
    const s = serveConfigFromEnv({});
    expect(s).toMatchObject({
      host: '127.0.0.1',
      port: 7780,
      maxConcurrentBuilds: 2,
      allowLocalRepos: false,
      controlPlane: null,
      shutdownGraceMs: 60_000,
    });
  });

  it('parses listen addresses and refuses bad ones', () => {
    expect(parseListen('[::1]:8080')).toEqual({ host: '::1', port: 8080 });
    expect(parseListen('0.0.0.0:1')).toEqual({ host: '0.0.0.0', port: 1 });
    for (const bad of ['7780', 'host:', 'host:99999', ':80']) expect(() => parseListen(bad)).toThrow(/HOST:PORT/);
  });

  it('refuses a concurrency that is not a positive whole number', () => {
    expect(() => serveConfigFromEnv({ WARMSTART_MAX_CONCURRENT_BUILDS: '0' })).toThrow(/positive whole number/);
    expect(() => serveConfigFromEnv({ WARMSTART_MAX_CONCURRENT_BUILDS: '1.5' })).toThrow(/positive whole number/);
  });
});
