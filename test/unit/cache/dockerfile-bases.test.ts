import { describe, expect, it } from 'vitest';
import { dockerfileBases } from '../../../agent/src/cache/dockerfile-bases.js';
import { isOciFeature, parsePullRef } from '../../../agent/src/cache/image-ref.js';

const refs = (text: string, args: Record<string, unknown> = {}): string[] => {
  const out = dockerfileBases(text, args);
  expect(out.unknown).toBeNull();
  return out.refs;
};
const unknown = (text: string, args: Record<string, unknown> = {}): string | null => dockerfileBases(text, args).unknown;

describe('dockerfileBases: the images a Dockerfile builds on', () => {
  it('lists every stage, skipping references to earlier stages (any case) and scratch', () => {
    const text = `# syntax=docker/dockerfile:1
FROM golang:1.22 AS Build
RUN go build
from --platform=$BUILDPLATFORM node:20-slim as web
FROM build AS again
FROM scratch
COPY --from=build /app /app
FROM WEB
FROM debian:bookworm
`;
    expect(refs(text)).toEqual(['golang:1.22', 'node:20-slim', 'debian:bookworm']);
  });

  it('drops the --platform flag and keeps the image after it', () => {
    expect(refs('FROM --platform=linux/amd64 ghcr.io/acme/base:stable AS b\n')).toEqual(['ghcr.io/acme/base:stable']);
  });

  it('substitutes ARGs declared before the first FROM, with defaults and build.args overriding them', () => {
    const text = 'ARG REG=docker.io\nARG VARIANT=bookworm\nFROM ${REG}/library/debian:$VARIANT\n';
    expect(refs(text)).toEqual(['docker.io/library/debian:bookworm']);
    expect(refs(text, { VARIANT: 'trixie' })).toEqual(['docker.io/library/debian:trixie']);
    expect(refs('ARG V=1\nARG IMG="node:${V}"\nFROM $IMG\n', { V: 22 })).toEqual(['node:22']);
  });

  it('ignores ARGs declared after the first FROM (a FROM cannot see them) and build args for undeclared names', () => {
    expect(refs('ARG TAG=12\nFROM debian:$TAG\nARG TAG=13\nFROM debian:$TAG\n', { OTHER: 'x' })).toEqual(['debian:12']);
  });

  it('supports ${VAR:-default} and ${VAR:+word}', () => {
    expect(refs('ARG TAG\nFROM debian:${TAG:-12}\n')).toEqual(['debian:12']);
    expect(refs('ARG TAG\nFROM debian:${TAG:-12}\n', { TAG: '13' })).toEqual(['debian:13']);
    expect(refs('ARG SLIM=1\nFROM debian:12${SLIM:+-slim}\n')).toEqual(['debian:12-slim']);
    expect(refs('ARG SLIM\nFROM debian:12${SLIM:+-slim}\n')).toEqual(['debian:12']);
  });

  it('keeps a digest-pinned reference as written, and joins continuation lines', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(refs(`FROM \\\n  node:20@${digest} \\\n  AS base\n`)).toEqual([`node:20@${digest}`]);
  });

  it('says why when a FROM cannot be known before the build', () => {
    expect(unknown('FROM $NOT_DECLARED\n')).toMatch(/FROM \$NOT_DECLARED/);
    expect(unknown('ARG IMG\nFROM $IMG\n')).toMatch(/known only at build time/);
    expect(unknown('ARG IMG=node\nFROM $IMG\n', { IMG: '${localEnv:BASE}' })).toMatch(/FROM \$IMG/);
    expect(unknown('ARG TAG=1\nFROM debian:${TAG%%.*}\n')).not.toBeNull();
    expect(unknown('FROM\n')).toMatch(/names no image/);
  });
});

describe('parsePullRef: what a pull of the reference asks the registry for', () => {
  it('maps Docker Hub names to docker.io and library/', () => {
    expect(parsePullRef('node:20')).toEqual({ host: 'docker.io', repository: 'docker.io/library/node', reference: '20', digest: null });
    expect(parsePullRef('debian')).toMatchObject({ repository: 'docker.io/library/debian', reference: 'latest' });
    expect(parsePullRef('acme/tool:1')).toMatchObject({ repository: 'docker.io/acme/tool', reference: '1' });
    expect(parsePullRef('docker.io/node:20')).toMatchObject({ repository: 'docker.io/library/node', reference: '20' });
  });

  it('keeps other registries, ports included, and prefers a digest over a tag', () => {
    const digest = `sha256:${'b'.repeat(64)}`;
    expect(parsePullRef('127.0.0.1:5002/team/base:stable')).toEqual({
      host: '127.0.0.1:5002',
      repository: '127.0.0.1:5002/team/base',
      reference: 'stable',
      digest: null,
    });
    expect(parsePullRef('localhost:5000/base')).toMatchObject({ host: 'localhost:5000', reference: 'latest' });
    expect(parsePullRef(`ghcr.io/acme/base:1@${digest}`)).toMatchObject({ repository: 'ghcr.io/acme/base', reference: digest, digest });
    expect(parsePullRef('node@sha256:short')).toBeNull();
    expect(parsePullRef('node:')).toBeNull();
  });

  it('tells OCI features from local folders, tarball URLs and short ids', () => {
    expect(isOciFeature('ghcr.io/devcontainers/features/node:1')).toBe(true);
    expect(isOciFeature('localhost:5002/features/x:1')).toBe(true);
    expect(isOciFeature('./local-feature')).toBe(false);
    expect(isOciFeature('https://example.com/feature.tgz')).toBe(false);
    expect(isOciFeature('node')).toBe(false);
    expect(isOciFeature('acme/features/x@v1')).toBe(false);
  });
});
