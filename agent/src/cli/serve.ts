import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createAgent } from '../agent.js';
import type { BackendName, SnapshotBackend } from '../backends/backend.js';
import { createBackend } from '../backends/factory.js';
import type { BackendTiming } from '../machines/machine-snapshot.js';
import { callbackUrlProblem } from '../callbacks/callback-url.js';
import { FileOutbox } from '../callbacks/file-outbox.js';
import { defaultNodeId, startHeartbeat } from '../callbacks/heartbeat.js';
import { assertPrunable } from '../cache/prune-run.js';
import { startPruneSchedule } from '../cache/prune-schedule.js';
import { parseCacheRegistry } from '../cache/ref.js';
import { configFromEnv } from '../config/agent-config.js';
import { pruneScheduleFromEnv } from '../config/prune-config.js';
import { describeError, WarmstartError } from '../errors.js';
import { GHCR_HOST, resolveCredentials, type CredentialSource } from '../registry/credentials.js';
import { serveConfigFromEnv } from '../config/serve-config.js';
import { LocalJobManager } from '../jobs/local-job-manager.js';
import { heartbeatStats, outboxNotifier } from '../jobs/notifier.js';
import { PrebuildManager } from '../jobs/prebuild-manager.js';
import { ResourceJobs } from '../jobs/resource-jobs.js';
import { ResourceJobStore } from '../jobs/resource-job-store.js';
import { SecretSet } from '../events/events.js';
import { WorkspaceLifecycle } from '../workspace/lifecycle.js';
import { prepareWorkspace } from '../workspace/pipeline.js';
import { sweepPrebuilds } from '../workspace/prebuild.js';
import { hostGitIdentity } from '../machines/host-git-identity.js';
import { hostSpecificsHook } from '../machines/post-launch.js';
import { reconcile } from '../jobs/reconcile.js';
import { PromMetrics } from '../metrics/prom-metrics.js';
import { sweepJobDirs } from '../state/runtime-dir.js';
import { buildServer } from '../server/app.js';
import { authOptionsFromEnv } from '../server/auth-config.js';
import type { Logger } from 'pino';
import { createLogger, logLevelFromEnv } from '../server/logger.js';
import { tlsOptionsFromEnv } from '../server/tls.js';
import { sdNotifier } from '../server/sd-notify.js';
import { parseCommandArgs } from './args.js';
import { EXIT, reportError, type CommandResult, type Io } from './output.js';
import { packageVersion } from './version.js';

/** Resolves on the first SIGTERM or SIGINT. */
function shutdownSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: string): void => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(sig);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

/**
 * The machine backends of the API, configured from the agent's environment
 * as the CLI's are, each made on first use and then kept: one backend object
 * per name for the life of the process (cloud-hypervisor keeps its VMMs).
 * A failed construction is not kept, so the next request tries again.
 */
function backendsFor(env: NodeJS.ProcessEnv, stateDir: string, timings: Map<string, BackendTiming>): (name: BackendName) => Promise<SnapshotBackend> {
  const made = new Map<BackendName, Promise<SnapshotBackend>>();
  return (name) => {
    let backend = made.get(name);
    if (!backend) {
      // A machine's last launch/boot/restore timing, for `machine up` with a snapshot (kept per machine, replaced each time).
      backend = createBackend(name, env, stateDir, { onTiming: (t) => void timings.set(`${name}/${t.machine}`, { ...t }) });
      made.set(name, backend);
      backend.catch(() => made.delete(name)); // the request that asked gets the error; the next one tries again
    }
    return backend;
  };
}

/**
 * `warmstart serve`: the agent for the control plane. Start-up reconciles the
 * records with Docker and resumes undelivered callbacks; SIGTERM stops taking
 * jobs (503), cancels builds, gives pushes and callbacks the grace period,
 * and exits 0.
 */
export async function serveCommand(argv: string[], io: Io): Promise<CommandResult> {
  try {
    const { values } = parseCommandArgs(argv, { listen: { type: 'string' }, 'state-dir': { type: 'string' } }, 0);
    const env = values['state-dir'] ? { ...io.env, WARMSTART_STATE_DIR: values['state-dir'] } : io.env;
    const config = configFromEnv(env);
    const serve = serveConfigFromEnv(env, values.listen);
    const pruneConfig = pruneScheduleFromEnv(env);
    if (pruneConfig && !config.cacheRegistry) {
      throw new WarmstartError('INVALID_ARGUMENT', 'WARMSTART_CACHE_PRUNE_INTERVAL needs a cache registry (WARMSTART_CACHE_REGISTRY) to prune');
    }
    // Before anything listens: a refusal later would leave the server running.
    if (pruneConfig && config.cacheRegistry) assertPrunable(parseCacheRegistry(config.cacheRegistry).host);
    const auth = authOptionsFromEnv(env);
    const https = tlsOptionsFromEnv(env);
    const version = packageVersion();
    const logger = createLogger({ level: logLevelFromEnv(env) });
    // Under systemd's Type=notify: the unit is `active` only once the API answers (server/sd-notify.ts).
    const systemd = sdNotifier({ env, warn: (message) => logger.error(message) });

    await systemd.status('starting: connecting to the Docker engine');
    const agent = await createAgent({ config });
    logger.info({ docker: await agent.engine.version(), version, stateDir: config.stateDir }, 'starting');
    await sweepJobDirs(config.runtimeDir);
    // The one owner of the workspace records, from reconcile on (workspace/lifecycle.ts).
    const lifecycle = new WorkspaceLifecycle(agent.store, { logger });
    const report = await reconcile(agent.store, agent.engine, logger, lifecycle);
    if (report.restarted.length || report.missing.length) logger.warn(report, 'reconciled with Docker');
    const prebuildsLeft = await sweepPrebuilds(agent).catch((err: unknown) => {
      logger.error({ err: err instanceof Error ? err.message : String(err) }, 'could not remove what interrupted prebuilds left');
      return [] as string[];
    });
    if (prebuildsLeft.length) logger.warn({ prebuilds: prebuildsLeft }, 'removed what interrupted prebuilds left');
    // Machine and image jobs: kept under <state>/jobs; one the previous agent was stopped in is now failed (AGENT_RESTARTED).
    const agentSecrets = new SecretSet();
    agentSecrets.add(config.gitToken, config.registryPassword);
    const resourceJobs = new ResourceJobs({
      store: new ResourceJobStore(join(config.stateDir, 'jobs')),
      logger,
      scrub: (text) => agentSecrets.scrub(text),
    });
    await resourceJobs.load();

    const metrics = new PromMetrics({ version });
    // Callback files carry the control plane's token: the runtime dir (tmpfs), not the state dir.
    const callbackPolicy = { origins: serve.callbackOrigins };
    const outbox = new FileOutbox({
      dir: join(config.runtimeDir, 'callbacks'),
      logger,
      // DNS may have changed since the URL was accepted: checked again before each attempt.
      checkTarget: (url) => callbackUrlProblem(url, callbackPolicy),
      onAttempt: (outcome) => metrics.callbackAttempt(outcome),
    });
    await outbox.start();
    const jobs = new LocalJobManager({
      deps: agent,
      pipeline: prepareWorkspace,
      notifier: outboxNotifier(outbox, callbackPolicy),
      lifecycle,
      metrics,
      logger,
      maxConcurrent: serve.maxConcurrentBuilds,
      allowLocalRepos: serve.allowLocalRepos,
    });
    const timings = new Map<string, BackendTiming>();
    const machines = {
      backends: backendsFor(env, config.stateDir, timings),
      lastTiming: (backend: BackendName, machine: string) => timings.get(`${backend}/${machine}`),
      postLaunch: hostSpecificsHook({ git: (await hostGitIdentity()) ?? undefined }),
    };
    // Prebuilds take their build slots from the workspace jobs: one limit for every build on this node.
    const prebuilds = new PrebuildManager({ deps: agent, slots: jobs, logger, allowLocalRepos: serve.allowLocalRepos });
    const app = buildServer({
      jobs,
      metrics,
      auth,
      version,
      logger,
      https,
      machines,
      images: agent,
      prebuilds,
      resourceJobs,
      engine: agent.engine,
      callbacksPending: () => outbox.pending(),
    });
    await app.listen({ host: serve.host, port: serve.port });
    const bound = app.server.address();
    const where = bound && typeof bound === 'object' ? `${bound.address}:${bound.port}` : `${serve.host}:${serve.port}`;
    await systemd.ready(`serving on ${https ? 'https' : 'http'} ${where}`);
    // Pings go on while draining: a drain that takes the grace period is not a hang.
    const stopWatchdog = systemd.startWatchdog();
    // A GitHub App that cannot get what the agent asks for is reported now, in words to act on, not at the first push.
    if (config.githubApp) void probeGithubApp(agent.credentialSources, logger);
    const cacheRegistry = config.cacheRegistry;
    const prune =
      pruneConfig && cacheRegistry
        ? startPruneSchedule({
            config: pruneConfig,
            registry: cacheRegistry,
            // a source that fails: the prune runs anonymously and the registry's refusal is what it reports
            credentials: () => resolveCredentials(agent.credentialSources, parseCacheRegistry(cacheRegistry).host).catch(() => null),
            store: agent.store,
            api: agent.oci,
            logger,
            metrics: metrics.registry,
          })
        : null;

    const cp = serve.controlPlane;
    const heartbeat = cp
      ? startHeartbeat({
          url: cp.url,
          nodeId: cp.nodeId ?? defaultNodeId(env),
          ...(cp.tokenFile ? { token: (await readFile(cp.tokenFile, 'utf8')).trim() } : {}),
          intervalMs: cp.heartbeatMs,
          version,
          stats: heartbeatStats(jobs),
          diskPath: config.stateDir,
          logger,
        })
      : null;

    const signal = await shutdownSignal();
    const t0 = Date.now();
    logger.info({ signal, graceMs: serve.shutdownGraceMs }, 'shutting down: no new jobs');
    await systemd.stopping(`draining: ${jobs.stats().running} running`);
    jobs.stopAccepting();
    prebuilds.stopAccepting();
    resourceJobs.stopAccepting();
    jobs.cancelBuilds();
    prebuilds.cancelAll();
    // Machine and image jobs cannot be cancelled halfway: they get the grace period; one still running is failed at the next start.
    const drained = (
      await Promise.all([jobs.drain(serve.shutdownGraceMs), prebuilds.drain(serve.shutdownGraceMs), resourceJobs.drain(serve.shutdownGraceMs)])
    ).every(Boolean);
    if (!drained) logger.warn({ machineAndImageJobs: resourceJobs.running() }, 'grace period over with pushes or jobs still running');
    const left = Math.max(1_000, serve.shutdownGraceMs - (Date.now() - t0));
    await outbox.flush?.(Math.min(left, 5_000));
    await outbox.stop();
    heartbeat?.stop();
    await prune?.stop();
    await app.close();
    stopWatchdog();
    logger.info({ pendingCallbacks: outbox.pending() }, 'stopped');
    if (!drained) {
      // A push still under way holds the event loop open (its progress stream
      // from Docker) and would keep the process alive past the grace period,
      // until systemd kills it. Leave now: its record stays `pending` and the
      // next start's reconcile marks it failed; Docker drops the push when
      // the connection closes.
      await new Promise<void>((resolve) => logger.flush(() => resolve()));
      process.exit(EXIT.ready);
    }
    return EXIT.ready;
  } catch (err) {
    return reportError(io, err, false);
  }
}

/** Asks the App for its registry token once at start-up; a refusal is logged as an error (the agent still serves). */
async function probeGithubApp(sources: readonly CredentialSource[], logger: Logger): Promise<void> {
  try {
    await resolveCredentials(sources, GHCR_HOST);
    logger.info('GitHub App: installation token for ghcr.io granted (packages: write)');
  } catch (err) {
    const detail = err instanceof WarmstartError ? err.detail : undefined;
    logger.error(
      { err: describeError(err), ...(detail ? { detail } : {}) },
      'GitHub App cannot get its ghcr.io token: cache pushes will fail until this is fixed',
    );
  }
}
