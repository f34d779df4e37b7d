/**
 * Golden images: a running workspace container committed as a Docker image
 * other workspaces start from (docs/machines.md "Golden images"), optionally
 * pushed to the cache registry so any node can run it.
 *
 * Owner rule. A workspace's owner is the `owner` its record holds (the
 * subject of the JWT that created it, state/workspace-store.ts), else its
 * container's `warmstart.owner` label when set (not for a workspace-scoped
 * caller: a repository's devcontainer.json can set container labels), else
 * the workspace has no owner. `owner` (the CLI's `--owner`, a node-wide
 * API caller's body; a workspace-scoped caller's is ignored) must then
 * equal the workspace's owner exactly, or the capture is refused with
 * OWNER_MISMATCH; a workspace with no owner can be captured by anyone on
 * the node, and the given owner (if any) is recorded. The image's `dev.warmstart.owner` label is the
 * workspace's owner, else the given one, else empty (no owner).
 *
 * With the repository (`withWorkspace`). The workspace folder lives on the
 * workspace's volume, which a commit does not capture. Its files are read
 * from the running container as one tar, audited on the way (credential
 * files, git configs holding a credential, any file with a known secret's
 * bytes: credential-audit.ts) and unpacked into a never-started container of
 * the committed image, which is committed again: the image plus one layer
 * at the folder, labelled `dev.warmstart.workspace-folder`. The bytes
 * audited are the bytes committed (one read), so nothing written between a
 * check and a copy can slip in. The image's owner is then the workspace's
 * alone; a given owner is only checked against it.
 *
 * Names. Local images are `warmstart-golden/<name>:<tag>`; pushed ones
 * `<registry host>[/<namespace>]/golden/<name>:<tag>` in the cache registry
 * (`--cache-registry` or WARMSTART_CACHE_REGISTRY), with the registry
 * credentials the pipeline uses: the ones given for this command first, then
 * the agent's (GitHub App, static).
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { PushResult } from '../../../shared/src/workspace-result.js';
import { sourceDefaults } from '../backends/docker.js';
import { splitTag } from '../cache/image-ref.js';
import { pushCache } from '../cache/push-cache.js';
import { parseCacheRegistry, parseImageRef, type CacheRegistry } from '../cache/ref.js';
import type { AgentConfig } from '../config/agent-config.js';
import type { CommitSpec, ContainerDetails, DockerEngine, ImageSummary } from '../docker/engine.js';
import { describeError, WarmstartError } from '../errors.js';
import { CONTAINER_GIT_DIR } from '../git/container-credentials.js';
import { NO_PROGRESS, type JobProgress } from '../jobs/job-progress.js';
import { resolveCredentials, staticCredentials, type CredentialSource } from '../registry/credentials.js';
import { toDockerAuthConfig } from '../registry/docker-config.js';
import type { WorkspaceStore } from '../state/workspace-store.js';
import { WORKSPACE_LABEL } from '../workspace/default-container.js';
import { workspaceVolume } from '../workspace/remove.js';
import { validateWorkspaceId } from '../workspace/validate.js';
import { assertNoCredentials, auditWorkspaceArchive, neutralGitEnv } from './credential-audit.js';
import {
  LABELS,
  LOCAL_REPOSITORY_PREFIX,
  localRef,
  mergeCapabilities,
  parseCapabilitiesLabel,
  PUSH_PATH,
  pushRef,
  SOURCE_WORKSPACE_COMMIT,
  validateCapabilities,
  validateImageName,
  validateImageTag,
  validateOwner,
} from './rules.js';
import { unlessMissing } from '../util/best-effort.js';

/** The container label that names a workspace's owner (set by whoever starts it on someone's behalf). */
export const OWNER_LABEL = 'warmstart.owner';
/**
 * Labels of the workspace container that must not travel with the image:
 * a container run from it would otherwise be taken for the workspace (or
 * machine) by warmstart and the devcontainers CLI.
 */
const HOST_LABELS = /^(warmstart\.|devcontainer\.(local_folder|config_file)$)/;

export interface GoldenDeps {
  engine: DockerEngine;
  store: WorkspaceStore;
  config: AgentConfig;
  credentialSources: CredentialSource[];
}

export interface CreateGoldenOptions {
  workspaceId: string;
  name: string;
  /** `latest` when absent or empty */
  tag?: string | null;
  /** custom capabilities, stored as `custom:<c>` */
  capabilities?: string[];
  owner?: string | null;
  /** the caller's token is scoped to this workspace: the owner comes from the record only, never a label */
  scoped?: boolean;
  push?: boolean;
  /** the workspace folder's files go into the image as its last layer */
  withWorkspace?: boolean;
  /** HOST[:PORT][/NAMESPACE]; the agent's cache registry when absent */
  registry?: string | null;
  /** registry credentials for this command (tried before the agent's) */
  username?: string | null;
  password?: string | null;
}

export interface GoldenImage {
  name: string;
  tag: string;
  /** local ref: `warmstart-golden/<name>:<tag>` */
  ref: string;
  id: string;
  owner: string | null;
  os: string;
  capabilities: string[];
  createdAt: string | null;
  /** other local tags of the image in a registry's `golden/<name>:<tag>` (where it was pushed) */
  pushedRefs: string[];
  labels: Record<string, string>;
}

export interface CreateGoldenResult {
  image: GoldenImage;
  workspaceId: string;
  containerId: string;
  push: PushResult;
}

/** Everything a create needs, checked before any engine call. */
export interface CreatePlan {
  workspaceId: string;
  name: string;
  tag: string;
  custom: string[];
  owner: string | null;
  registry: CacheRegistry | null;
  pushRef: string | null;
}

function planCreate(o: CreateGoldenOptions, config: AgentConfig): CreatePlan {
  const workspaceId = validateWorkspaceId(o.workspaceId);
  const name = validateImageName(o.name);
  const tag = validateImageTag(o.tag);
  const custom = validateCapabilities(o.capabilities);
  const owner = o.owner === undefined || o.owner === null ? null : validateOwner(o.owner);
  if (((o.username ?? null) === null) !== ((o.password ?? null) === null)) {
    throw new WarmstartError('INVALID_ARGUMENT', 'registry username and password go together: give both or neither');
  }
  let registry: CacheRegistry | null = null;
  let ref: string | null = null;
  if (o.push) {
    const setting = o.registry ?? config.cacheRegistry;
    if (!setting) throw new WarmstartError('INVALID_REGISTRY', 'no cache registry to push to: pass --cache-registry or set WARMSTART_CACHE_REGISTRY');
    registry = parseCacheRegistry(setting);
    ref = pushRef(registry, name, tag);
    parseImageRef(ref); // too long for a registry: INVALID_CACHE_REF, before anything is made
  }
  return { workspaceId, name, tag, custom, owner, registry, pushRef: ref };
}

/** The workspace's owner (see the rule at the top), or null. */
async function workspaceOwner(store: WorkspaceStore, id: string, container: ContainerDetails, scoped: boolean): Promise<string | null> {
  const record = await store.load(id);
  if (typeof record?.owner === 'string' && record.owner !== '') return record.owner;
  if (scoped) return null;
  return container.labels[OWNER_LABEL] || null;
}

/** `ID` of /etc/os-release (e.g. `debian`), else the image's OS (e.g. `linux`). */
async function detectOs(engine: DockerEngine, containerId: string, imageOs: string): Promise<string> {
  for (const file of ['/etc/os-release', '/usr/lib/os-release']) {
    try {
      const r = await engine.execInContainer(containerId, ['cat', file]);
      if (r.exitCode !== 0) continue;
      const id = /^ID=(.*)$/m
        .exec(r.stdout)?.[1]
        ?.trim()
        .replace(/^["']|["']$/g, '');
      if (id) return id;
    } catch {
      // no `cat` in the image, or exec refused: fall back to the image's OS
    }
  }
  return imageOs || 'unknown';
}

/**
 * Secrets this node knows of for the workspace: its in-container git token
 * (from the mount's source, and from this agent's runtime dir), the agent's
 * and this command's registry passwords.
 */
async function knownSecrets(
  deps: GoldenDeps,
  container: ContainerDetails,
  workspaceId: string,
  password: string | null | undefined,
): Promise<string[]> {
  const dirs = new Set([join(deps.config.runtimeDir, 'workspaces', workspaceId, 'git')]);
  for (const m of container.mounts) if (m.destination === CONTAINER_GIT_DIR && m.type === 'bind') dirs.add(m.source);
  const tokens = await Promise.all([...dirs].map((d) => unlessMissing(readFile(join(d, 'token'), 'utf8'), null)));
  return [...tokens, deps.config.gitToken, deps.config.registryPassword, password].filter((s): s is string => !!s);
}

/** Finds the workspace's running container; WORKSPACE_NOT_FOUND / WORKSPACE_NOT_RUNNING otherwise. */
async function runningContainer(engine: DockerEngine, workspaceId: string): Promise<ContainerDetails> {
  const containers = await engine.findContainers({ [WORKSPACE_LABEL]: workspaceId });
  if (containers.length === 0) {
    throw new WarmstartError('WORKSPACE_NOT_FOUND', `no container of workspace ${workspaceId} on this node`);
  }
  const running = containers.find((c) => c.state === 'running');
  if (!running) {
    throw new WarmstartError('WORKSPACE_NOT_RUNNING', `workspace ${workspaceId} is not running (container ${containers[0]!.state}): start it first`);
  }
  const details = await engine.inspectContainer(running.id);
  if (!details?.running) throw new WarmstartError('WORKSPACE_NOT_RUNNING', `workspace ${workspaceId} stopped while being captured`);
  return details;
}

/** A capture that passed every check made before anything is created (see {@link checkGoldenImage}). */
export interface CheckedCapture {
  plan: CreatePlan;
  container: ContainerDetails;
  /** the workspace folder, with `withWorkspace` */
  folder: string | null;
  /** the image's owner label (see the rule at the top) */
  owner: string | null;
  /** `warmstart-golden/<name>:<tag>` */
  ref: string;
}

/**
 * Everything a create can check without making anything: the names, tag,
 * capabilities, owner and registry (input errors, 400), that the workspace
 * has a running container (404 WORKSPACE_NOT_FOUND, 409
 * WORKSPACE_NOT_RUNNING), that a given owner is the workspace's (403
 * OWNER_MISMATCH) and, with `withWorkspace`, that its folder is a volume
 * mount. The API answers these before it accepts the job.
 */
export async function checkGoldenImage(deps: GoldenDeps, options: CreateGoldenOptions): Promise<CheckedCapture> {
  const plan = planCreate(options, deps.config);
  const container = await runningContainer(deps.engine, plan.workspaceId);
  const ownerOfWorkspace = await workspaceOwner(deps.store, plan.workspaceId, container, options.scoped === true);
  if (ownerOfWorkspace !== null && plan.owner !== null && plan.owner !== ownerOfWorkspace) {
    throw new WarmstartError('OWNER_MISMATCH', `workspace ${plan.workspaceId} belongs to another owner than ${plan.owner}`);
  }
  const folder = options.withWorkspace ? workspaceFolder(container, plan.workspaceId) : null;
  // The repository's files are the workspace's: they never go out under an owner the caller names.
  const owner = folder ? ownerOfWorkspace : (ownerOfWorkspace ?? plan.owner);
  return { plan, container, folder, owner, ref: localRef(plan.name, plan.tag) };
}

/**
 * Commits the workspace's running container as `warmstart-golden/<name>:<tag>`
 * with the `dev.warmstart.*` labels, after checking that nothing the commit
 * keeps holds a credential; with `push`, tags and pushes it to the cache
 * registry. Input errors throw before any engine call. A failed push keeps
 * the local image and is reported in `push`, not thrown.
 */
export async function createGoldenImage(deps: GoldenDeps, options: CreateGoldenOptions): Promise<CreateGoldenResult> {
  return captureGoldenImage(deps, await checkGoldenImage(deps, options), options);
}

/**
 * The making part of {@link createGoldenImage}, for a checked capture: the
 * credential audit, the commit (with the workspace layer), the push. Its
 * phases go to `progress` (the API's job events).
 */
export async function captureGoldenImage(
  deps: GoldenDeps,
  checked: CheckedCapture,
  options: Pick<CreateGoldenOptions, 'password' | 'username'>,
  progress: JobProgress = NO_PROGRESS,
): Promise<CreateGoldenResult> {
  const { engine } = deps;
  const { plan, container, folder, owner, ref } = checked;

  const secrets = await progress.phase('audit', async () => {
    const changes = await engine.containerChanges(container.id);
    const known = await knownSecrets(deps, container, plan.workspaceId, options.password);
    assertNoCredentials({ container, changes, knownSecrets: known });
    return known;
  });

  const imageId = await progress.phase('commit', async () => {
    const source = await engine.inspectImage(container.imageId);
    const inherited = parseCapabilitiesLabel(source?.labels[LABELS.capabilities]);
    const capabilities = mergeCapabilities(inherited, plan.custom);
    const os = await detectOs(engine, container.id, source?.os ?? '');

    const labels: Record<string, string> = {};
    for (const [k, v] of Object.entries(container.labels)) {
      if (HOST_LABELS.test(k) && source?.labels[k] !== v) labels[k] = '';
    }
    Object.assign(labels, {
      [LABELS.managed]: 'true',
      [LABELS.os]: os,
      [LABELS.owner]: owner ?? '',
      [LABELS.source]: SOURCE_WORKSPACE_COMMIT,
      [LABELS.capabilities]: capabilities.join(','),
    });
    if (folder) labels[LABELS.workspaceFolder] = folder;
    const env = neutralGitEnv(container.env, source?.env ?? []);
    const spec = { labels, ...(env.length ? { env } : {}), ...sourceDefaults(source) };
    return folder
      ? commitWithWorkspace(engine, container.id, folder, secrets, { ref, ...spec })
      : engine.commitContainer(container.id, { ref, ...spec });
  });

  let push: PushResult = { status: 'skipped', ref: null, reason: 'not asked to push', ms: null };
  const { pushRef: target, registry } = plan;
  if (target && registry) {
    // A refused or timed-out push is a result, not a throw: the phase ends ok and the push event says how it went.
    push = await progress.phase('push', () => pushGolden(deps, imageId, target, registry.host, options));
    progress.pushed(push);
  }

  const image = await describeImage(engine, ref);
  if (!image) throw new WarmstartError('BACKEND_ERROR', `the commit left no image ${ref}`);
  return { image, workspaceId: plan.workspaceId, containerId: container.id, push };
}

/** Where the workspace's volume is mounted in its container: the workspace folder. */
function workspaceFolder(container: ContainerDetails, workspaceId: string): string {
  const volume = workspaceVolume(workspaceId);
  const mount = container.mounts.find((m) => m.type === 'volume' && m.name === volume);
  if (!mount) {
    throw new WarmstartError(
      'BACKEND_PRECONDITION',
      `volume ${volume} is not mounted in workspace ${workspaceId}'s container: there is no workspace folder to add`,
    );
  }
  if (dirname(mount.destination) === mount.destination) {
    throw new WarmstartError(
      'BACKEND_PRECONDITION',
      `workspace ${workspaceId}'s volume is mounted at ${mount.destination}, not in a folder an image can hold`,
    );
  }
  return mount.destination;
}

/**
 * Commits the container without its volume, then that image plus the
 * workspace folder's files as one layer (see "With the repository" above).
 * A refused audit leaves no image behind.
 */
async function commitWithWorkspace(engine: DockerEngine, containerId: string, folder: string, secrets: string[], spec: CommitSpec): Promise<string> {
  const base = await engine.commitContainer(containerId, { ...spec, ref: null });
  const source = await engine.archiveOf(containerId, folder);
  const toAudit = new PassThrough();
  const toLayer = new PassThrough();
  source.on('error', (err: Error) => {
    toAudit.destroy(err);
    toLayer.destroy(err);
  });
  source.pipe(toAudit);
  source.pipe(toLayer);
  const audit = auditWorkspaceArchive(toAudit, secrets);
  audit.catch(() => undefined); // awaited before the commit; a failed copy ends the create first
  try {
    return await engine.commitWithArchive(base, toLayer, dirname(folder), spec, async () => {
      const problems = await audit;
      if (problems.length > 0) {
        throw new WarmstartError('BACKEND_PRECONDITION', `refusing to put workspace folder ${folder} into an image: it may hold a credential`, {
          detail: problems.join('; '),
        });
      }
    });
  } catch (err) {
    toAudit.destroy();
    toLayer.destroy();
    if ('destroy' in source && typeof source.destroy === 'function') source.destroy();
    await engine.removeImage(base).catch(() => undefined); // untagged and unused: the error above is the one to report
    throw err;
  }
}

async function pushGolden(
  deps: GoldenDeps,
  imageId: string,
  ref: string,
  host: string,
  o: Pick<CreateGoldenOptions, 'password' | 'username'>,
): Promise<PushResult> {
  const sources: CredentialSource[] = [...deps.credentialSources];
  if (o.username && o.password) sources.unshift(staticCredentials({ registry: host, username: o.username, password: o.password }, 'job'));
  let creds;
  try {
    creds = await resolveCredentials(sources, host);
  } catch (err) {
    return { status: 'failed', ref, reason: `credentials unavailable: ${describeError(err)}`, ms: null };
  }
  // No credentials: try anyway (an open registry takes anonymous pushes); a refusal is reported.
  return pushCache({ engine: deps.engine, imageId, refs: [ref], auth: toDockerAuthConfig(creds), timeoutMs: deps.config.pushTimeoutMs });
}

function fromSummary(i: ImageSummary, name: string, tag: string): GoldenImage {
  const suffix = `/${PUSH_PATH}/${name}:${tag}`;
  return {
    name,
    tag,
    ref: localRef(name, tag),
    id: i.id,
    owner: i.labels[LABELS.owner] || null,
    os: i.labels[LABELS.os] ?? 'unknown',
    capabilities: parseCapabilitiesLabel(i.labels[LABELS.capabilities]),
    createdAt: i.createdAt,
    pushedRefs: i.repoTags.filter((t) => t.endsWith(suffix)),
    labels: i.labels,
  };
}

/** `name` and `tag` of a local golden ref, or null. */
function parseLocalRef(repoTag: string): { name: string; tag: string } | null {
  if (!repoTag.startsWith(LOCAL_REPOSITORY_PREFIX)) return null;
  const { repository: name, tag } = splitTag(repoTag.slice(LOCAL_REPOSITORY_PREFIX.length));
  if (name === '' || tag === null || name.includes('/')) return null;
  return { name, tag };
}

async function describeImage(engine: DockerEngine, ref: string): Promise<GoldenImage | null> {
  const i = await engine.inspectImage(ref);
  const parsed = parseLocalRef(ref);
  if (!i || !parsed || i.labels[LABELS.managed] !== 'true' || i.labels[LABELS.source] !== SOURCE_WORKSPACE_COMMIT) return null;
  return fromSummary({ id: i.id, repoTags: i.repoTags, labels: i.labels, createdAt: i.createdAt }, parsed.name, parsed.tag);
}

/** Golden images on this node, sorted by name and tag. */
export async function listGoldenImages(deps: Pick<GoldenDeps, 'engine'>): Promise<GoldenImage[]> {
  const images = await deps.engine.listImagesWithLabels({ [LABELS.managed]: 'true', [LABELS.source]: SOURCE_WORKSPACE_COMMIT });
  const out: GoldenImage[] = [];
  for (const i of images) {
    for (const t of i.repoTags) {
      const parsed = parseLocalRef(t);
      if (parsed) out.push(fromSummary(i, parsed.name, parsed.tag));
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name) || a.tag.localeCompare(b.tag));
}

/**
 * Removes a local golden image: its `warmstart-golden/<name>:<tag>` tag and
 * the local tags it was pushed under (the registry's copy stays). The image
 * itself goes when no other tag or container holds it. IMAGE_NOT_FOUND when
 * there is no such golden image.
 */
export async function removeGoldenImage(deps: Pick<GoldenDeps, 'engine'>, name: string, tag?: string | null): Promise<GoldenImage> {
  const n = validateImageName(name);
  const t = validateImageTag(tag);
  const image = await describeImage(deps.engine, localRef(n, t));
  if (!image) throw new WarmstartError('IMAGE_NOT_FOUND', `no golden image ${n}:${t} on this node`);
  for (const ref of [image.ref, ...image.pushedRefs]) await deps.engine.removeImage(ref);
  return image;
}
