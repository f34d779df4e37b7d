import { describe, expect, it, vi } from 'vitest';

// jose is loaded with the first token (agent/src/server/jwt.ts): a node without JWT auth never loads it.
const loads = vi.hoisted(() => ({ jose: 0 }));
vi.mock('jose', async (importOriginal) => {
  loads.jose++;
  return importOriginal();
});
const { createJwtVerifier } = await import('../../../agent/src/server/jwt.js');

describe('the JWT verifier', () => {
  it('loads jose with the first token, once; a malformed JWKS URL fails when configured, before that', async () => {
    expect(() => createJwtVerifier({ jwksUrl: 'not a url', audience: 'a', issuer: 'i' })).toThrow();
    const verify = createJwtVerifier({ jwksUrl: 'http://127.0.0.1:9/jwks.json', audience: 'a', issuer: 'i' });
    expect(loads.jose).toBe(0);
    // Not a JWS: jose refuses it before it would fetch any key.
    await expect(verify('bm90.YQ.c2ln')).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_JW/) });
    await expect(verify('bm90.YQ.c2ln')).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_JW/) });
    expect(loads.jose).toBe(1);
  });
});
