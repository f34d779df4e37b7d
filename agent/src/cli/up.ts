import type { WorkspaceResult } from '../../../shared/src/workspace-result.js';
import { createAgent } from '../agent.js';
import { configFromEnv } from '../config/agent-config.js';
import { describeError, WarmstartError } from '../errors.js';
import { nextSeq, sequencingSink } from '../events/event-seq.js';
import { teeSinks } from '../events/events.js';
import { IllegalTransition, WorkspaceLifecycle } from '../workspace/lifecycle.js';
import { prepareWorkspace } from '../workspace/pipeline.js';
import type { PrepareRequest } from '../workspace/request.js';
import { envWithCacheRegistryFlag, parseCommandArgs, registryPasswordFrom, REGISTRY_FLAGS } from './args.js';
import { EXIT, reportError, type CommandResult, type Io } from './output.js';
import { progressSink } from './progress.js';
import { validateWorkspaceId } from '../workspace/validate.js';

const UP_FLAGS = {
  ...REGISTRY_FLAGS,
  'workspace-id': { type: 'string' },
  'config-name': { type: 'string' },
  lightweight: { type: 'boolean' },
  'cache-ref': { type: 'string' },
  'no-cache': { type: 'boolean' },
  'push-timeout': { type: 'string' },
  'no-push': { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v' },
} as const;

/** A workspace id for `up` without --workspace-id: the repository's name, made valid. */
function defaultWorkspaceId(repository: string): string {
  const last = repository.replace(/\/+$/, '').split(/[/:]/).pop() ?? 'workspace';
  const id = last
    .replace(/\.git$/, '')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63);
  return id || 'workspace';
}

function pushTimeoutMs(value: string | undefined): number | null {
  if (value === undefined) return null;
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !Number.isFinite(n) || n <= 0) {
    throw new WarmstartError('INVALID_ARGUMENT', '--push-timeout takes a positive number of seconds');
  }
  return Math.round(n * 1000);
}

/** `warmstart up`: prepare one workspace in the foreground. */
export async function upCommand(argv: string[], io: Io): Promise<CommandResult> {
  let json = argv.includes('--json');
  try {
    const { values, positionals } = parseCommandArgs(argv, UP_FLAGS, 1);
    json = values.json === true;
    const repository = positionals[0]!;
    const password = await registryPasswordFrom(values, io.readStdin);
    const config = configFromEnv(envWithCacheRegistryFlag(io.env, values['cache-registry']));
    const request: PrepareRequest = {
      workspaceId: values['workspace-id'] ?? defaultWorkspaceId(repository),
      repository,
      configName: values['config-name'] ?? null,
      lightweight: values.lightweight === true,
      cache: {
        disabled: values['no-cache'] === true,
        registry: values['cache-registry'] ?? null,
        ref: values['cache-ref'] ?? null,
        username: values['registry-username'] ?? null,
        password,
      },
      push: { disabled: values['no-push'] === true, timeoutMs: pushTimeoutMs(values['push-timeout']) },
      cwd: io.cwd,
    };
    // The id names the state directory the event log writes to: check it first.
    validateWorkspaceId(request.workspaceId);
    const agent = await createAgent({ config });
    const eventLog = agent.store.eventLog(request.workspaceId, {
      onLost: (e, err) => io.stderr(`warmstart: a ${e.type} event was not recorded: ${describeError(err)}\n`),
    });
    // Numbered on from the id's earlier runs, as the daemon numbers its jobs' events (events/event-seq.ts).
    const firstSeq = nextSeq(await agent.store.readEvents(request.workspaceId));
    const sink = sequencingSink(firstSeq, teeSinks(progressSink(io.stderr, values.verbose === true), eventLog));
    // The pipeline records nothing itself: the workspace's record goes through the lifecycle (workspace/lifecycle.ts).
    const lifecycle = new WorkspaceLifecycle(agent.store);
    const prepared = await prepareWorkspace(agent, request, sink, {
      record: {
        started: async (plan) => {
          await lifecycle.startForeground({
            id: plan.workspaceId,
            repository: plan.repo.cloneUrl,
            configName: plan.configName,
            lightweight: plan.lightweight,
            owner: request.owner ?? null,
          });
        },
        settled: async (r) => {
          await lifecycle.settle(request.workspaceId, r);
        },
      },
    });
    const push = await prepared.push;
    // The record ends with the push's result; if that write fails, it keeps the rest and says so here.
    // (Another process that took the record over since, e.g. a DELETE, keeps it: IllegalTransition, nothing written.)
    const kept = await lifecycle
      .pushSettled(request.workspaceId, prepared.result.outcome, push)
      .catch((err: unknown) => ({ writeError: err instanceof IllegalTransition ? null : err }));
    if (kept.writeError)
      io.stderr(`warning: could not record the push result of workspace ${request.workspaceId}: ${describeError(kept.writeError)}\n`);
    await eventLog.flush();
    const result: WorkspaceResult = { ...prepared.result, push };
    if (json) {
      io.stdout(`${JSON.stringify(result)}\n`);
      // People watching stderr still see how it ended, error code included.
      io.stderr(summary(result));
    } else io.stdout(summary(result));
    return result.outcome === 'ready' ? EXIT.ready : result.outcome === 'recovery' ? EXIT.recovery : EXIT.failed;
  } catch (err) {
    return reportError(io, err, json);
  }
}

function summary(r: WorkspaceResult): string {
  const secs = (ms: number | null | undefined): string => `${((ms ?? 0) / 1000).toFixed(1)}s`;
  const lines = [`${r.outcome}: workspace ${r.workspaceId} (${r.profile ?? 'no container'}) in ${secs(r.timings.ready)}`];
  if (r.containerId) lines.push(`  container ${r.containerId.slice(0, 12)}`);
  const steps = r.cache.stepsTotal !== null ? `, ${r.cache.stepsCached}/${r.cache.stepsTotal} build steps from cache` : '';
  lines.push(`  cache ${r.cache.hit}${r.cache.ref ? ` ${r.cache.ref}` : ''}${steps}${r.cache.reason ? ` (${r.cache.reason})` : ''}`);
  lines.push(`  push ${r.push.status}${r.push.ms !== null ? ` in ${secs(r.push.ms)}` : ''}${r.push.reason ? ` (${r.push.reason})` : ''}`);
  if (r.error) lines.push(`  error ${r.error.code}: ${r.error.message}`);
  return `${lines.join('\n')}\n`;
}
