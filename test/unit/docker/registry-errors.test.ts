import { describe, expect, it } from 'vitest';
import { classifyRegistryMessage } from '../../../agent/src/docker/registry-errors.js';

describe('classifyRegistryMessage', () => {
  it('maps the engine text to stable codes', () => {
    expect(classifyRegistryMessage('dial tcp 127.0.0.1:5000: connect: connection refused', 'pull').code).toBe('REGISTRY_UNREACHABLE');
    expect(classifyRegistryMessage('unauthorized: authentication required', 'push').code).toBe('REGISTRY_AUTH_FAILED');
    expect(classifyRegistryMessage('denied: requested access to the resource is denied', 'push').code).toBe('REGISTRY_PUSH_DENIED');
    expect(classifyRegistryMessage('manifest unknown: manifest unknown', 'pull').code).toBe('CACHE_IMAGE_MISSING');
  });

  it('keeps the engine text of an unclassified error in the message, where reasons show it', () => {
    const e = classifyRegistryMessage('received unexpected HTTP status: 503 Service Unavailable\nmore', 'pull');
    expect(e.code).toBe('REGISTRY_ERROR');
    expect(e.message).toBe('registry error during pull: received unexpected HTTP status: 503 Service Unavailable');
    expect(classifyRegistryMessage('', 'push').message).toBe('registry error during push');
    expect(classifyRegistryMessage('x'.repeat(1000), 'push').message.length).toBeLessThan(260);
  });
});
