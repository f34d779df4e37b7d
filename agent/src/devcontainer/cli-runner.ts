import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { cachedProbe, probeFingerprint } from './builder-probe-cache.js';
import { WarmstartError } from '../errors.js';
import type { DevcontainerCli, UpOptions, UpResult } from './cli.js';
import { loadExeca } from './load-execa.js';

/** Path of the pinned CLI's entry script in node_modules (never a global install). */
export function pinnedCliScript(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@devcontainers/cli/package.json')), 'devcontainer.js');
}

/** Builds the argv of `devcontainer up`; exported so tests can check it exactly. */
export function upArgs(o: UpOptions, dockerPath: string): string[] {
  const args = ['up', '--workspace-folder', o.workspaceFolder];
  if (o.configPath) args.push('--config', o.configPath);
  args.push('--override-config', o.overrideConfigPath);
  for (const [k, v] of Object.entries(o.idLabels)) args.push('--id-label', `${k}=${v}`);
  args.push('--log-format', 'json', '--docker-path', dockerPath);
  return args;
}

/** How much of the CLI's stdout is kept: its result is one JSON line at the end. */
const MAX_STDOUT = 4 * 1024 * 1024;

/** Finds the result: the last stdout line that is a JSON object. */
export function parseUpResult(stdout: string): Record<string, unknown> | null {
  const lines = stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('{'));
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const value: unknown = JSON.parse(lines[i]!);
      if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
    } catch {
      // not the result line; keep looking
    }
  }
  return null;
}

/**
 * What the CLI may inherit from the agent's environment. A repository's
 * devcontainer.json reads the CLI's environment through `${localEnv:...}` into
 * build args, containerEnv or mounts, so whatever the CLI inherits, any
 * repository can copy into its container and into the pushed cache image. The
 * agent's own settings (git token, registry password) and whatever else an
 * operator keeps in the service's environment stay out; what the CLI and the
 * docker CLI need to run stays in.
 */
const INHERITED = new Set([
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'LANG',
  'LC_ALL',
  'LC_CTYPE',
  'TZ',
  'TMPDIR',
  'TERM',
  'DOCKER_HOST',
  'DOCKER_TLS_VERIFY',
  'DOCKER_CERT_PATH',
  'DOCKER_CONTEXT',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'NODE_EXTRA_CA_CERTS',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'XDG_RUNTIME_DIR',
]);

/** The CLI's environment: the inherited allow-list plus the job's own additions. */
export function cliEnv(base: NodeJS.ProcessEnv, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    if (v !== undefined && INHERITED.has(k)) env[k] = v;
  }
  return { ...env, ...extra };
}

export interface CliRunnerOptions {
  /** node binary; the agent's own by default */
  node?: string;
  script?: string;
  dockerPath?: string;
  /** grace between SIGTERM and SIGKILL of the CLI's process group */
  killGraceMs?: number;
  /** the jobs' `cliPluginsExtraDirs` (AgentConfig.dockerCliPluginDirs): the buildx probe looks there too */
  cliPluginDirs?: readonly string[];
  /** where the buildx probe's answer is kept between processes (builder-probe-cache.ts); absent: probe every time */
  probeCacheFile?: string;
}

/** DevcontainerCli over the pinned @devcontainers/cli, run with execa. */
export class DevcontainerCliRunner implements DevcontainerCli {
  private readonly node: string;
  private readonly script: string;
  private readonly dockerPath: string;
  private readonly killGraceMs: number;
  private readonly cliPluginDirs: readonly string[];

  constructor(options: CliRunnerOptions = {}) {
    this.node = options.node ?? process.execPath;
    this.script = options.script ?? pinnedCliScript();
    this.dockerPath = options.dockerPath ?? 'docker';
    this.killGraceMs = options.killGraceMs ?? 5_000;
    this.cliPluginDirs = options.cliPluginDirs ?? [];
    this.probeCacheFile = options.probeCacheFile ?? null;
  }

  private readonly probeCacheFile: string | null;

  private classic: Promise<boolean> | null = null;

  usesClassicBuilder(): Promise<boolean> {
    const probe = (): Promise<boolean> => (this.cliPluginDirs.length === 0 ? this.buildxMissing() : this.buildxMissingWithPluginDirs());
    const file = this.probeCacheFile;
    this.classic ??= file
      ? probeFingerprint({ pluginDirs: this.cliPluginDirs, dockerPath: this.dockerPath }).then((f) => cachedProbe(file, f, probe))
      : probe();
    return this.classic;
  }

  /**
   * Whether `docker buildx version` fails (no docker, no buildx, a timeout).
   * node:child_process, not execa: the first job of a daemon's boot runs
   * this, and loading execa for it held the event loop for about 0.1 s
   * (and cost the daemon 4 MB from then on).
   */
  private buildxMissing(env?: Record<string, string>): Promise<boolean> {
    return new Promise((resolve) => {
      const child = spawn(this.dockerPath, ['buildx', 'version'], {
        stdio: 'ignore',
        timeout: 15_000,
        ...(env ? { env: { ...process.env, ...env } } : {}),
      });
      child.once('error', () => resolve(true)); // no docker to run
      child.once('close', (code) => resolve(code !== 0)); // a timeout kills it: code null
    });
  }

  /** The probe as a job's docker CLI sees it: a throwaway DOCKER_CONFIG naming the same plugin dirs. */
  private async buildxMissingWithPluginDirs(): Promise<boolean> {
    const dir = await mkdtemp(join(tmpdir(), 'warmstart-buildx-probe-'));
    try {
      await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: {}, cliPluginsExtraDirs: this.cliPluginDirs }));
      return await this.buildxMissing({ DOCKER_CONFIG: dir });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async version(): Promise<string> {
    const { execa } = await loadExeca();
    const { stdout } = await execa(this.node, [this.script, '--version'], { timeout: 30_000 });
    return stdout.trim();
  }

  async up(o: UpOptions): Promise<UpResult> {
    // Detached: the CLI starts docker builds of its own; on timeout the whole
    // process group must go, not just the node process. node:child_process
    // rather than execa: a start should not wait for execa's loading (load-execa.ts).
    const child = spawn(this.node, [this.script, ...upArgs(o, this.dockerPath)], {
      env: cliEnv(process.env, o.env),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      // The result is the last line; the CLI's log goes to stderr.
      stdout = (stdout + chunk).slice(-MAX_STDOUT);
    });
    const exited = new Promise<{ exitCode: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
      child.on('error', (error) => resolve({ exitCode: null, signal: null, error }));
      child.on('close', (exitCode, signal) => resolve({ exitCode, signal }));
    });
    if (child.pid !== undefined) o.onStart?.(child.pid);
    let timedOut = false;
    let cancelled = false;
    const killGroup = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        return;
      }
      setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // already gone
        }
      }, this.killGraceMs).unref();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, o.timeoutMs);
    const onAbort = (): void => {
      cancelled = true;
      killGroup();
    };
    o.signal?.addEventListener('abort', onAbort, { once: true });
    if (o.signal?.aborted) onAbort();

    const rl = createInterface({ input: child.stderr });
    rl.on('line', (line) => o.onLog?.(line));
    const done = await exited;
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', onAbort);

    if (timedOut) {
      throw new WarmstartError(
        'DEVCONTAINER_UP_TIMEOUT',
        `devcontainer up did not finish within ${Math.round(o.timeoutMs / 1000)} s and was stopped`,
      );
    }
    if (cancelled) {
      throw new WarmstartError('DEVCONTAINER_UP_FAILED', 'devcontainer up was cancelled');
    }
    const result = parseUpResult(stdout);
    if (!result) {
      throw new WarmstartError('DEVCONTAINER_NO_RESULT', 'devcontainer up printed no result', {
        detail: done.error
          ? `it did not start: ${done.error.message}`
          : `exit code ${done.exitCode ?? 'none'}${done.signal ? `, signal ${done.signal}` : ''}`,
      });
    }
    if (result.outcome !== 'success' || typeof result.containerId !== 'string') {
      const message = typeof result.message === 'string' ? result.message : 'devcontainer up failed';
      const description = typeof result.description === 'string' ? result.description : undefined;
      throw new WarmstartError('DEVCONTAINER_UP_FAILED', message, description ? { detail: description } : {});
    }
    const out: UpResult = { containerId: result.containerId };
    if (typeof result.remoteUser === 'string') out.remoteUser = result.remoteUser;
    if (typeof result.remoteWorkspaceFolder === 'string') out.remoteWorkspaceFolder = result.remoteWorkspaceFolder;
    return out;
  }
}
