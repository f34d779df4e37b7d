import { registryTransportsFor } from '../agent.js';
import { inUseRefs, pruneRegistry, type PruneReport } from '../cache/prune-run.js';
import { lazyEngine } from '../docker/lazy-engine.js';
import { createOciApi } from '../registry/oci-api.js';
import { parseCacheRegistry } from '../cache/ref.js';
import { configFromEnv } from '../config/agent-config.js';
import { WarmstartError } from '../errors.js';
import { resolveCredentials, staticCredentials, type CredentialSource } from '../registry/credentials.js';
import { WorkspaceStore } from '../state/workspace-store.js';
import { envWithCacheRegistryFlag, parseCommandArgs, readPassword, REGISTRY_FLAGS } from './args.js';
import { EXIT, reportError, type CommandResult, type Io } from './output.js';

const DAY_MS = 86_400_000;

function count(flag: string, raw: string | undefined, min: number): number | null {
  if (raw === undefined) return null;
  const n = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || !Number.isFinite(n) || n < min)
    throw new WarmstartError('INVALID_ARGUMENT', `--${flag} must be a number ≥ ${min}`);
  return n;
}

/**
 * `warmstart cache prune --registry HOST[:PORT][/NAMESPACE] [--keep N] [--older-than DAYS] [--dry-run]`:
 * removes exact tags (and their signatures) beyond the newest N per
 * repository or older than DAYS; never a moving tag, nor an exact tag a
 * workspace on this node runs from (agent/src/cache/prune-run.ts).
 */
export async function cachePruneCommand(argv: string[], io: Io): Promise<CommandResult> {
  let json = argv.includes('--json');
  try {
    const { values } = parseCommandArgs(
      argv,
      { ...REGISTRY_FLAGS, registry: { type: 'string' }, keep: { type: 'string' }, 'older-than': { type: 'string' }, 'dry-run': { type: 'boolean' } },
      0,
    );
    json = values.json === true;
    const setting = values.registry ?? values['cache-registry'];
    const config = configFromEnv(envWithCacheRegistryFlag(io.env, setting));
    const registrySetting = setting ?? config.cacheRegistry;
    if (!registrySetting)
      throw new WarmstartError('INVALID_REGISTRY', 'no registry: pass --registry HOST[:PORT][/NAMESPACE] or set WARMSTART_CACHE_REGISTRY');
    const keep = count('keep', values.keep, 0);
    const olderThanDays = count('older-than', values['older-than'], 0);
    if (keep === null && olderThanDays === null) throw new WarmstartError('INVALID_ARGUMENT', 'give --keep N, --older-than DAYS or both');
    const { host, namespace } = parseCacheRegistry(registrySetting);
    const password = values['registry-password-stdin'] ? await readPassword(io.readStdin) : null;
    const sources: CredentialSource[] = [];
    if (values['registry-username'] && password !== null)
      sources.push(staticCredentials({ registry: host, username: values['registry-username'], password }, 'job'));
    sources.push(
      staticCredentials(
        { registry: config.registryCredentialHosts, username: config.registryUsername ?? '', password: config.registryPassword ?? '' },
        'static',
      ),
    );
    const report = await pruneRegistry({
      host,
      namespace,
      policy: { keep: keep === null ? null : Math.floor(keep), olderThanMs: olderThanDays === null ? null : olderThanDays * DAY_MS, now: new Date() },
      dryRun: values['dry-run'] === true,
      // The registry reached as dockerd reaches it (the engine's insecure registries, WARMSTART_DOCKER_CERTS_DIR).
      api: createOciApi({ transports: registryTransportsFor(lazyEngine(), config) }),
      creds: await resolveCredentials(sources, host),
      inUse: await inUseRefs(new WorkspaceStore(config.stateDir)),
    });
    io.stdout(json ? `${JSON.stringify(report)}\n` : text(report));
    return report.errors.length > 0 || report.removed.some((r) => r.error) ? EXIT.failed : EXIT.ready;
  } catch (err) {
    return reportError(io, err, json);
  }
}

function text(r: PruneReport): string {
  const lines = r.removed.map(
    (x) =>
      `${r.dryRun ? 'would remove' : x.deleted ? 'removed' : 'failed'} ${x.repository}:${x.tags.join(',')} (${x.why}, created ${x.created ?? 'unknown'})${x.error ? `: ${x.error}` : ''}`,
  );
  for (const s of r.spared) lines.push(`kept ${s.repository}:${s.tag}: ${s.why}`);
  for (const e of r.errors) lines.push(`error ${e.repository}: ${e.message}`);
  lines.push(
    `${r.removed.length} image(s) ${r.dryRun ? 'would go' : 'removed'} from ${r.repositories} repositor${r.repositories === 1 ? 'y' : 'ies'}`,
  );
  return `${lines.join('\n')}\n`;
}
