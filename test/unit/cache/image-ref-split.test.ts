/**
 * The one place refs are split into repository and tag (cache/image-ref.ts):
 * a port's ':' is never taken for the tag's, and a ref without a tag says so.
 */
import { describe, expect, it } from 'vitest';
import { splitTag, withTag } from '../../../agent/src/cache/image-ref.js';
import { builderRef } from '../../../agent/src/cache/ref.js';
import { exactRefFor } from '../../../agent/src/workspace/exact.js';

describe('splitTag and withTag', () => {
  it.each([
    ['127.0.0.1:5000/acme/app:devcontainer-cache', '127.0.0.1:5000/acme/app', 'devcontainer-cache'],
    ['ghcr.io/acme/app:exact-0123', 'ghcr.io/acme/app', 'exact-0123'],
    ['localhost:5000/app', 'localhost:5000/app', null],
    ['[::1]:5000/app', '[::1]:5000/app', null],
    ['[::1]:5000/app:v1', '[::1]:5000/app', 'v1'],
    ['warmstart-golden/base:latest', 'warmstart-golden/base', 'latest'],
    ['node', 'node', null],
  ] as const)('%s', (ref, repository, tag) => {
    expect(splitTag(ref)).toEqual({ repository, tag });
    expect(withTag(ref, 'x')).toBe(`${repository}:x`);
  });

  it('is what the exact and per-builder refs are built with', () => {
    expect(exactRefFor('127.0.0.1:5000/acme/app:devcontainer-cache', 'ab'.repeat(32))).toBe(`127.0.0.1:5000/acme/app:exact-${'ab'.repeat(20)}`);
    expect(builderRef('127.0.0.1:5000/acme/app:devcontainer-cache', 'buildkit')).toBe('127.0.0.1:5000/acme/app:buildkit-devcontainer-cache');
    expect(builderRef('127.0.0.1:5000/acme/app:devcontainer-cache', 'classic')).toBe('127.0.0.1:5000/acme/app:devcontainer-cache');
  });
});
