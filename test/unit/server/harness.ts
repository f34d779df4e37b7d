import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { PromMetrics } from '../../../agent/src/metrics/prom-metrics.js';
import { buildServer, type ServerOptions } from '../../../agent/src/server/app.js';
import { createLogger } from '../../../agent/src/server/logger.js';
import { FakeJobManager } from './fake-job-manager.js';

export const TOKEN = 'test-token-0123456789abcdef';
export const AUTH = { authorization: `Bearer ${TOKEN}` };
export const JSON_AUTH = { ...AUTH, 'content-type': 'application/json' };

export interface TestServer {
  app: FastifyInstance;
  jobs: FakeJobManager;
  metrics: PromMetrics;
}

/** The real server over the fake job manager, authenticated by TOKEN unless told otherwise. */
export function testServer(options: Partial<ServerOptions> = {}): TestServer {
  const jobs = new FakeJobManager();
  const metrics = new PromMetrics({ processMetrics: false });
  const app = buildServer({
    jobs,
    metrics,
    auth: { mode: 'bearer', token: TOKEN },
    version: '9.9.9-test',
    logger: false,
    ...options,
  });
  return { app, jobs, metrics };
}

/** A redacting logger that writes into memory, and what it wrote. */
export function memoryLogger(): { logger: Logger; output: () => string } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { logger: createLogger({ level: 'debug', destination }), output: () => chunks.join('') };
}

export const validBody = (id = 'ws-1'): Record<string, unknown> => ({
  id,
  repository: 'octo/hello',
  cache: { registry: 'ghcr.io', username: 'bot', password: 'registry-password-123' },
  callback: { url: 'https://cp.example/api', token: 'callback-token-456' },
  gitToken: 'git-token-789',
});
