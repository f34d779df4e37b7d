import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PromMetrics } from '../../../agent/src/metrics/prom-metrics.js';
import { buildServer } from '../../../agent/src/server/app.js';
import { authOptionsFromEnv } from '../../../agent/src/server/auth-config.js';
import { tlsOptionsFromEnv } from '../../../agent/src/server/tls.js';
import { FakeJobManager } from './fake-job-manager.js';

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code ?? 'thrown';
  }
  return undefined;
};

describe('authOptionsFromEnv', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'warmstart-auth-'));

  it('reads the token file once, trimmed, and the server accepts that token', async () => {
    const file = path.join(dir, 'token');
    writeFileSync(file, '  file-token-0123456789abcdef\n');
    const auth = authOptionsFromEnv({ WARMSTART_API_TOKEN_FILE: file });
    expect(auth).toEqual({ mode: 'bearer', token: 'file-token-0123456789abcdef' });

    const app = buildServer({ jobs: new FakeJobManager(), metrics: new PromMetrics({ processMetrics: false }), auth, version: 't', logger: false });
    const ok = await app.inject({ method: 'GET', url: '/v1/workspaces', headers: { authorization: 'Bearer file-token-0123456789abcdef' } });
    expect(ok.statusCode).toBe(200);
    const withNewline = await app.inject({
      method: 'GET',
      url: '/v1/workspaces',
      headers: { authorization: 'Bearer file-token-0123456789abcdef\n' },
    });
    expect(withNewline.statusCode).toBe(401);
  });

  it('refuses an unreadable, empty or short token file', () => {
    expect(codeOf(() => authOptionsFromEnv({ WARMSTART_API_TOKEN_FILE: path.join(dir, 'missing') }))).toBe('INVALID_ARGUMENT');
    const empty = path.join(dir, 'empty');
    writeFileSync(empty, '\n');
    expect(codeOf(() => authOptionsFromEnv({ WARMSTART_API_TOKEN_FILE: empty }))).toBe('INVALID_ARGUMENT');
    const short = path.join(dir, 'short');
    writeFileSync(short, 'abc');
    expect(codeOf(() => authOptionsFromEnv({ WARMSTART_API_TOKEN_FILE: short }))).toBe('INVALID_ARGUMENT');
  });

  it('takes a JWKS URL only with audience and issuer', () => {
    expect(authOptionsFromEnv({ WARMSTART_JWKS_URL: 'https://cp.example/jwks', WARMSTART_JWT_AUDIENCE: 'a', WARMSTART_JWT_ISSUER: 'i' })).toEqual({
      mode: 'bearer',
      jwt: { jwksUrl: 'https://cp.example/jwks', audience: 'a', issuer: 'i' },
    });
    expect(codeOf(() => authOptionsFromEnv({ WARMSTART_JWKS_URL: 'https://cp.example/jwks', WARMSTART_JWT_AUDIENCE: 'a' }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => authOptionsFromEnv({ WARMSTART_JWKS_URL: 'file:///etc/jwks', WARMSTART_JWT_AUDIENCE: 'a', WARMSTART_JWT_ISSUER: 'i' }))).toBe(
      'INVALID_ARGUMENT',
    );
  });
});

describe('buildServer without auth', () => {
  const base = { jobs: new FakeJobManager(), metrics: new PromMetrics({ processMetrics: false }), version: 't', logger: false as const };

  it('refuses when neither a token nor a JWKS is configured: a configuration error (exit 2) from the settings, and the server will not build', () => {
    expect(codeOf(() => authOptionsFromEnv({}))).toBe('INVALID_ARGUMENT');
    expect(() => authOptionsFromEnv({})).toThrow(/WARMSTART_API_TOKEN_FILE or WARMSTART_JWKS_URL/);
    expect(() => buildServer({ ...base, auth: { mode: 'bearer' } })).toThrow(/API token file or a JWKS URL/);
    expect(() => buildServer({ ...base, auth: { mode: 'bearer', token: '' } })).toThrow();
  });

  it('runs open only when asked for mode none by name', async () => {
    const app = buildServer({ ...base, auth: { mode: 'none' } });
    expect((await app.inject({ method: 'GET', url: '/v1/workspaces' })).statusCode).toBe(200);
  });
});

describe('tlsOptionsFromEnv', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'warmstart-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  writeFileSync(cert, 'CERT');
  writeFileSync(key, 'KEY');

  it('null without either variable, both files with both, an error with one', () => {
    expect(tlsOptionsFromEnv({})).toBeNull();
    expect(tlsOptionsFromEnv({ WARMSTART_TLS_CERT_FILE: cert, WARMSTART_TLS_KEY_FILE: key })).toEqual({
      cert: Buffer.from('CERT'),
      key: Buffer.from('KEY'),
    });
    expect(codeOf(() => tlsOptionsFromEnv({ WARMSTART_TLS_CERT_FILE: cert }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => tlsOptionsFromEnv({ WARMSTART_TLS_CERT_FILE: cert, WARMSTART_TLS_KEY_FILE: path.join(dir, 'nope') }))).toBe(
      'INVALID_ARGUMENT',
    );
  });
});

describe('HTTPS', () => {
  const hasOpenssl = (() => {
    try {
      execFileSync('openssl', ['version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(!hasOpenssl)('serves the API over TLS with the cert and key from the environment', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'warmstart-tls-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    const tls = tlsOptionsFromEnv({ WARMSTART_TLS_CERT_FILE: cert, WARMSTART_TLS_KEY_FILE: key });
    const app = buildServer({
      jobs: new FakeJobManager(),
      metrics: new PromMetrics({ processMetrics: false }),
      auth: { mode: 'none' },
      version: 'tls-test',
      logger: false,
      https: tls,
    });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      expect(base.startsWith('https://')).toBe(true);
      const body = await new Promise<string>((resolve, reject) => {
        https
          .get(`${base}/health`, { ca: readFileSync(cert) }, (res) => {
            let data = '';
            res.on('data', (c) => (data += c));
            res.on('end', () => resolve(data));
          })
          .on('error', reject);
      });
      expect(JSON.parse(body)).toMatchObject({ status: 'ok', version: 'tls-test' });
    } finally {
      await app.close();
    }
  });
});
