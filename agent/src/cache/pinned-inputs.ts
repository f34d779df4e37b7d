/**
 * The inputs of an image that live behind moving tags: the base image of
 * every Dockerfile stage and every remote (OCI) feature. Each is pinned to
 * the manifest digest its tag names now, with one manifest HEAD (no pull),
 * and the pins go into the exact-hit key: when `debian:bookworm` or a
 * feature's `:1` moves, the key changes and the next start builds on the new
 * base instead of starting the old image for ever.
 */
import { createHash } from 'node:crypto';
import { describeError } from '../errors.js';
import type { RegistryCredentials } from '../registry/credentials.js';
import type { RegistryClient } from '../registry/registry-client.js';
import { canonicalJson } from './content-key.js';
import { dockerfileBases } from './dockerfile-bases.js';
import { isOciFeature, parsePullRef } from './image-ref.js';

/** Something whose content a tag names. */
export interface PinTarget {
  kind: 'base' | 'feature';
  /** as written (a base after build-arg substitution) */
  ref: string;
}

/** A target and the manifest digest it resolved to. */
export interface Pin extends PinTarget {
  digest: string;
}

/** Either every target pinned, or why not: then there is no exact lookup. */
export type PinOutcome = { pins: Pin[]; reason: null } | { pins: null; reason: string };

export interface PinDeps {
  registry: Pick<RegistryClient, 'headManifest'>;
  /** The credentials for a registry host (bound to hosts: agent/src/registry/credentials.ts); null: anonymous. */
  credentialsFor(host: string): Promise<RegistryCredentials | null>;
  signal?: AbortSignal;
}

/**
 * The targets of a Dockerfile-based config: its Dockerfile's bases and its
 * OCI features (local `./x` features are hashed by content in the key
 * already). A feature of another remote form (a tarball URL) has no digest
 * to ask for, so the key cannot be pinned.
 */
export function pinTargets(
  dockerfile: string,
  buildArgs: Readonly<Record<string, unknown>>,
  features: unknown,
): { targets: PinTarget[]; reason: string | null } {
  const bases = dockerfileBases(dockerfile, buildArgs);
  if (bases.unknown !== null) return { targets: [], reason: bases.unknown };
  const targets: PinTarget[] = bases.refs.map((ref) => ({ kind: 'base', ref }));
  const ids = typeof features === 'object' && features !== null && !Array.isArray(features) ? Object.keys(features) : [];
  for (const id of ids) {
    if (id.startsWith('./') || id.startsWith('../')) continue;
    if (!isOciFeature(id)) return { targets: [], reason: `feature ${JSON.stringify(id)} is not an OCI reference: its content cannot be pinned` };
    targets.push({ kind: 'feature', ref: id });
  }
  return { targets, reason: null };
}

/**
 * Resolves every target at once (the HEADs run in parallel). A reference
 * pinned by digest needs no request. Any target that cannot be resolved
 * (unreachable, 404, refused credentials, a malformed name) makes the whole
 * outcome a reason: a key without that pin could start an image built on a
 * base that has moved since.
 */
export async function resolvePins(deps: PinDeps, targets: readonly PinTarget[]): Promise<PinOutcome> {
  const results = await Promise.all(targets.map((t) => resolveOne(deps, t)));
  const failed = results.find((r): r is string => typeof r === 'string');
  if (failed !== undefined) return { pins: null, reason: failed };
  return { pins: results as Pin[], reason: null };
}

async function resolveOne(deps: PinDeps, target: PinTarget): Promise<Pin | string> {
  const what = `${target.kind} ${target.ref}`;
  const parsed = parsePullRef(target.ref);
  if (parsed === null) return `${what} is not an image reference`;
  if (parsed.digest !== null) return { ...target, digest: parsed.digest };
  try {
    const creds = await deps.credentialsFor(parsed.host);
    const digest = await deps.registry.headManifest(parsed.repository, parsed.reference, creds, deps.signal);
    if (digest === null) return `${what} was not found in its registry`;
    return { ...target, digest };
  } catch (err) {
    return `${what} could not be resolved: ${describeError(err)}`;
  }
}

/** The exact-hit key: the content key with every pin, so a moved tag gives another key. */
export function pinnedKey(contentKey: string, pins: readonly Pin[]): string {
  const sorted = [...pins]
    .map((p) => [p.kind, p.ref, p.digest])
    .sort((a, b) => (a.join('\n') < b.join('\n') ? -1 : a.join('\n') > b.join('\n') ? 1 : 0));
  return createHash('sha256')
    .update(canonicalJson({ v: 1, content: contentKey, pins: sorted }))
    .digest('hex');
}
