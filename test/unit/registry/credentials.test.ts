import { describe, expect, it } from 'vitest';
import { resolveCredentials, staticCredentials, type CredentialSource } from '../../../agent/src/registry/credentials.js';

const never: CredentialSource = {
  get: () => Promise.reject(new Error('must not be asked')),
};

describe('staticCredentials', () => {
  it('answers for no host at all when it was given none: credentials are never unbound', async () => {
    const s = staticCredentials({ registry: [], username: 'u', password: 'p' }, 'static');
    expect(await s.get('ghcr.io')).toBeNull();
    expect(await s.get('evil.example')).toBeNull();
    expect(await staticCredentials({ registry: null, username: 'u', password: 'p' }, 'static').get('ghcr.io')).toBeNull();
  });

  it('answers for each of its hosts, reporting the host asked for, and for no other', async () => {
    const s = staticCredentials({ registry: ['registry.example:5000', 'ghcr.io'], username: 'u', password: 'p' }, 'static');
    expect(await s.get('GHCR.io')).toEqual({ registry: 'GHCR.io', username: 'u', password: 'p', source: 'static' });
    expect((await s.get('registry.example:5000'))?.username).toBe('u');
    // Same name, other port; other name, same port; a suffix trick.
    expect(await s.get('registry.example:5001')).toBeNull();
    expect(await s.get('registry.example')).toBeNull();
    expect(await s.get('evil.example:5000')).toBeNull();
    expect(await s.get('ghcr.io.evil.example')).toBeNull();
  });

  it('matches its registry case-insensitively, ignoring a scheme and trailing slash', async () => {
    const s = staticCredentials({ registry: 'https://Registry.Example:5000/', username: 'u', password: 'p' }, 'job');
    expect((await s.get('registry.example:5000'))?.source).toBe('job');
    expect(await s.get('registry.example')).toBeNull();
    expect(await s.get('ghcr.io')).toBeNull();
  });

  it('has nothing when username or password is empty', async () => {
    expect(await staticCredentials({ registry: 'x', username: '', password: 'p' }, 'static').get('x')).toBeNull();
    expect(await staticCredentials({ registry: 'x', username: 'u', password: '' }, 'static').get('x')).toBeNull();
  });
});

describe('resolveCredentials', () => {
  it('returns the first source that has something, in order', async () => {
    const job = staticCredentials({ registry: 'ghcr.io', username: 'job', password: 'j' }, 'job');
    const stat = staticCredentials({ registry: ['ghcr.io', 'quay.io'], username: 'static', password: 's' }, 'static');
    expect((await resolveCredentials([job, stat, never], 'ghcr.io'))?.username).toBe('job');
    expect((await resolveCredentials([job, stat], 'quay.io'))?.username).toBe('static');
    expect(await resolveCredentials([job, stat], 'evil.example')).toBeNull();
  });

  it('returns null when no source has anything', async () => {
    expect(await resolveCredentials([], 'ghcr.io')).toBeNull();
    expect(await resolveCredentials([staticCredentials({ registry: 'a', username: 'u', password: 'p' }, 'static')], 'b')).toBeNull();
  });

  it('propagates a failing source and honours an aborted signal', async () => {
    await expect(resolveCredentials([never], 'ghcr.io')).rejects.toThrow('must not be asked');
    await expect(resolveCredentials([never], 'ghcr.io', AbortSignal.abort())).rejects.toMatchObject({ name: 'AbortError' });
  });
});
