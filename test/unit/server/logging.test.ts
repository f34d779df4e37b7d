import { describe, expect, it } from 'vitest';
import { memoryLogger, testServer, TOKEN, validBody } from './harness.js';
import { createLogger, logLevelFromEnv, stdoutIsJournal } from '../../../agent/src/server/logger.js';

const SECRETS = [TOKEN, 'registry-password-123', 'git-token-789', 'callback-token-456'];

describe('logging', () => {
  it('never writes the Authorization header or secrets from a body, on success, refusal or failure', async () => {
    const { logger, output } = memoryLogger();
    const { app, jobs } = testServer({ logger });
    const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

    expect((await app.inject({ method: 'POST', url: '/v1/workspaces', headers, payload: validBody('a') })).statusCode).toBe(202);
    // A repeat is answered with the workspace; another body for the id is refused.
    expect((await app.inject({ method: 'POST', url: '/v1/workspaces', headers, payload: validBody('a') })).statusCode).toBe(200);
    const other = { ...validBody('a'), configName: 'other' };
    expect((await app.inject({ method: 'POST', url: '/v1/workspaces', headers, payload: other })).statusCode).toBe(409);
    const invalid = { ...validBody('b'), cache: { registry: 'ghcr.io', password: 'registry-password-123', extra: 1 } };
    expect((await app.inject({ method: 'POST', url: '/v1/workspaces', headers, payload: invalid })).statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/v1/workspaces', headers: { authorization: `Bearer ${TOKEN}x` } })).statusCode).toBe(401);
    jobs.failWith = Object.assign(new Error('boom'), { config: { password: 'registry-password-123' } });
    const failed = await app.inject({ method: 'GET', url: '/v1/workspaces', headers });
    expect(failed.statusCode).toBe(500);

    const log = output();
    expect(log).toContain('"service":"warmstart"');
    for (const secret of SECRETS) expect(log).not.toContain(secret);

    // The unknown error is logged, with the request id the client got back.
    const lines = log
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const error = lines.find((l) => l.level === 50);
    expect(error).toMatchObject({ reqId: failed.headers['x-request-id'], msg: 'request failed', err: { message: 'boom' } });
  });

  it('redacts secrets wherever the code puts them in a log object', () => {
    const { logger, output } = memoryLogger();
    logger.info(
      {
        req: { headers: { authorization: `Bearer ${TOKEN}` } },
        password: 'registry-password-123',
        body: { gitToken: 'git-token-789', cache: { password: 'registry-password-123' }, callback: { token: 'callback-token-456' } },
        job: { cache: { password: 'registry-password-123' }, callback: { token: 'callback-token-456' } },
        request: { headers: { authorization: `Bearer ${TOKEN}` } },
      },
      'with secrets',
    );
    const log = output();
    for (const secret of SECRETS) expect(log).not.toContain(secret);
    expect(log).toContain('[redacted]');
    expect(JSON.parse(log).job.cache.password).toBe('[redacted]');
  });
});

describe('log level and journald priorities', () => {
  it('WARMSTART_LOG_LEVEL picks the level (default info); another word is a configuration error', () => {
    expect(logLevelFromEnv({})).toBe('info');
    expect(logLevelFromEnv({ WARMSTART_LOG_LEVEL: ' Debug ' })).toBe('debug');
    expect(() => logLevelFromEnv({ WARMSTART_LOG_LEVEL: 'verbose' })).toThrow(/WARMSTART_LOG_LEVEL takes one of/);
    const lines: string[] = [];
    const logger = createLogger({
      level: logLevelFromEnv({ WARMSTART_LOG_LEVEL: 'warn' }),
      destination: { write: (l: string) => void lines.push(l) },
    });
    logger.info('not shown');
    logger.warn('shown');
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['shown']);
  });

  it('under journald each line starts with its syslog priority, so journalctl -p ranks it', () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', destination: { write: (l: string) => void lines.push(l) }, journald: true });
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    logger.fatal('f');
    expect(lines.map((l) => l.slice(0, 3))).toEqual(['<7>', '<6>', '<4>', '<3>', '<2>']);
    expect(JSON.parse(lines[3]!.slice(3))).toMatchObject({ msg: 'e', service: 'warmstart' });
  });
});

describe('stdoutIsJournal', () => {
  it('only when JOURNAL_STREAM names the very stream stdout is (an inherited one that stdout was moved off does not count)', async () => {
    const { openSync, fstatSync, closeSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const fd = openSync(join(tmpdir(), `warmstart-journal-${process.pid}`), 'w');
    try {
      const st = fstatSync(fd);
      expect(stdoutIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd)).toBe(true);
      expect(stdoutIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1}` }, fd)).toBe(false);
      expect(stdoutIsJournal({}, fd)).toBe(false);
      expect(stdoutIsJournal({ JOURNAL_STREAM: 'garbage' }, fd)).toBe(false);
    } finally {
      closeSync(fd);
    }
  });
});
