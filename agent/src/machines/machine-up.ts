/**
 * `machine up`: a provisioned machine, from the cache when the same inputs
 * were provisioned before. Miss: launch the base, copy the files in, run the
 * provision script, capture the result as the cache image (the machine keeps
 * running). Hit: launch from the cache image. Both then run the post-launch
 * hook, which re-applies what differs per machine and per host and so must
 * never be baked into the cache image.
 *
 * Launch files. Files the hook writes (the machine's state file) can be
 * written by the launch itself on a hit, before the machine first starts,
 * where the backend has launch templates (Incus/LXD): on a miss the paths
 * get a template before the capture and are listed on the cache image
 * (`dev.warmstart.launch-files`); a hit passes their content to `launch` and
 * tells the hook which were written. That saves the round trip into a
 * freshly started machine (LXD's first file-API call starts a file server
 * in it, about 50 ms here).
 */
import type { LaunchFile, SnapshotBackend } from '../backends/backend.js';
import { isWarmstartError } from '../errors.js';
import { NO_PROGRESS, type JobProgress } from '../jobs/job-progress.js';
import { CACHE_PROPERTIES, cacheImageName } from './cache.js';
import { machineKey, normalizeFiles, type MachineFile } from './machine-key.js';
import { copyFileIn, runProvisionScript } from './provision.js';

/** What the post-launch hook is told about the machine it runs for. */
export interface PostLaunchContext {
  backend: SnapshotBackend;
  instance: string;
  key: string;
  cache: 'hit' | 'miss';
  base: string;
  /** whether git is in the machine's image, when known (recorded on the cache image at capture); null: unknown */
  gitInImage: boolean | null;
  /** paths of the hook's `launchFiles` the launch wrote already */
  filesWritten: readonly string[];
}

/** What a launch file's content may depend on: everything known before the launch. */
export type LaunchFileContext = Omit<PostLaunchContext, 'gitInImage' | 'filesWritten'>;

/** Runs after every launch, hit or miss (see `hostSpecificsHook` for the default). */
export interface PostLaunchHook {
  (ctx: PostLaunchContext): Promise<void>;
  /** files the hook would write that a launch can write instead (see "Launch files" above) */
  launchFiles?: (ctx: LaunchFileContext) => LaunchFile[];
}

/** Options of {@link machineUp}. */
export interface MachineUpOptions {
  /** the machine to create; it must not exist yet */
  name: string;
  /** the image provisioning starts from */
  base: string;
  /** the provision script (`path` only names it in messages; its content is what counts) */
  provision?: { path: string; content: Buffer };
  /** files copied in before the script runs, at absolute paths in the machine */
  files?: MachineFile[];
  postLaunch?: PostLaunchHook;
  /** told each phase as it runs (the API's job events); default: nobody */
  progress?: JobProgress;
  /** a monotonic clock in ms; default performance.now */
  now?: () => number;
}

/** The JSON result of `machine up`. */
export interface MachineUpResult {
  instance: string;
  cache: 'hit' | 'miss';
  /** the full cache key (sha256); the image is `warmstart-cache-<first 16>` */
  key: string;
  /** wall time of the whole call */
  ms: number;
}

export async function machineUp(backend: SnapshotBackend, opts: MachineUpOptions): Promise<MachineUpResult> {
  const now = opts.now ?? (() => performance.now());
  const progress = opts.progress ?? NO_PROGRESS;
  const started = now();
  const files = normalizeFiles(opts.files ?? []);
  const key = machineKey({ backend: backend.name, base: opts.base, provisionScript: opts.provision?.content, files });
  const image = cacheImageName(key);
  const found: { properties: Record<string, string> } | null = await progress.phase('lookup', async () =>
    backend.imageInfo ? await backend.imageInfo(image) : (await backend.imageExists(image)) ? { properties: {} } : null,
  );
  const cache = found ? 'hit' : 'miss';
  progress.note(found ? `cache hit: launching ${image}` : `cache miss: provisioning from ${opts.base}, then capturing ${image}`);
  let gitInImage = found ? gitProperty(found.properties[CACHE_PROPERTIES.git]) : null;
  const launchCtx = { backend, instance: opts.name, key, cache, base: opts.base } as const;
  const templated = new Set((found?.properties[CACHE_PROPERTIES.launchFiles] ?? '').split(',').filter(Boolean));
  const launchFiles = found ? (opts.postLaunch?.launchFiles?.(launchCtx) ?? []).filter((f) => templated.has(f.path)) : [];

  // launch throws before creating anything (missing image, name taken): the
  // name may be someone else's machine, so cleanup starts only after it.
  const launched = await progress.phase('launch', () =>
    backend.launch(cache === 'hit' ? image : opts.base, opts.name, launchFiles.length ? { files: launchFiles } : undefined),
  );
  await removingOnFailure(backend, opts.name, async () => {
    if (cache === 'miss') {
      if (files.length) {
        await progress.phase('files', async () => {
          for (const f of files) await copyFileIn(backend, opts.name, f);
        });
      }
      const script = opts.provision;
      if (script) await progress.phase('provision', () => runProvisionScript(backend, opts.name, script.content, script.path));
      await progress.phase('capture', async () => {
        gitInImage = await hasGit(backend, opts.name);
        const templates: string[] = [];
        if (backend.addLaunchTemplate) {
          for (const f of opts.postLaunch?.launchFiles?.(launchCtx) ?? []) {
            await backend.addLaunchTemplate(opts.name, f.path);
            templates.push(f.path);
          }
        }
        await capture(backend, opts.name, image, { key, base: opts.base, git: gitInImage, launchFiles: templates });
      });
    }
    const hook = opts.postLaunch;
    if (hook) await progress.phase('post-launch', () => hook({ ...launchCtx, gitInImage, filesWritten: launched.filesWritten ?? [] }));
  });
  return { instance: opts.name, cache, key, ms: Math.round(now() - started) };
}

/**
 * Captures the cache image. Two misses on the same key at once both
 * provision; the second capture then finds the image made by the first,
 * which is just as good.
 */
async function capture(
  backend: SnapshotBackend,
  machine: string,
  image: string,
  facts: { key: string; base: string; git: boolean | null; launchFiles: string[] },
): Promise<void> {
  const properties: Record<string, string> = {
    [CACHE_PROPERTIES.key]: facts.key,
    [CACHE_PROPERTIES.base]: facts.base,
    [CACHE_PROPERTIES.backend]: backend.name,
    ...(facts.git === null ? {} : { [CACHE_PROPERTIES.git]: facts.git ? 'present' : 'absent' }),
    ...(facts.launchFiles.length ? { [CACHE_PROPERTIES.launchFiles]: facts.launchFiles.join(',') } : {}),
  };
  try {
    await backend.captureImage(machine, image, properties);
  } catch (err) {
    if (isWarmstartError(err, 'BACKEND_PRECONDITION') && (await backend.imageExists(image))) return;
    throw err;
  }
}

/** The `dev.warmstart.git` property's words (also what {@link hasGit} asks the machine to print). */
function gitProperty(value: string | undefined): boolean | null {
  return value === 'present' ? true : value === 'absent' ? false : null;
}

/**
 * Whether the provisioned machine has git, asked once on a miss and kept on
 * the cache image: a hit then needs no exec to learn it (post-launch.ts).
 * Null when the machine cannot say (the hook then asks as before).
 */
async function hasGit(backend: SnapshotBackend, machine: string): Promise<boolean | null> {
  const r = await backend.exec(machine, ['sh', '-c', 'command -v git >/dev/null 2>&1 && echo present || echo absent']).catch(() => null); // cannot ask: null, and the hook asks again
  return r?.exitCode === 0 ? gitProperty(r.stdout.trim()) : null;
}

/** A failed `machine up` leaves no half-made machine behind (the cache image, once captured, stays: it is sound). */
async function removingOnFailure(backend: SnapshotBackend, machine: string, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (err) {
    await backend.removeMachine(machine).catch(() => undefined); // the original error is the one to report
    throw err;
  }
}
