import type { PrebuildResult } from '../../../shared/src/prebuild-result.js';
import { createAgent } from '../agent.js';
import { configFromEnv } from '../config/agent-config.js';
import { runPrebuild } from '../workspace/prebuild.js';
import { planPrebuild, type PrebuildRequest } from '../workspace/prebuild-plan.js';
import { envWithCacheRegistryFlag, parseCommandArgs, registryPasswordFrom, REGISTRY_FLAGS } from './args.js';
import { EXIT, reportError, type CommandResult, type Io } from './output.js';
import { progressSink } from './progress.js';

const PREBUILD_FLAGS = {
  ...REGISTRY_FLAGS,
  'config-name': { type: 'string' },
  'cache-ref': { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
} as const;

/**
 * `warmstart prebuild <repository>`: build the dev container image and push
 * its moving and exact tags, keeping no workspace. Exit 0 when done or
 * skipped (the result says why), 1 when the build or push failed, 2 for bad
 * input.
 */
export async function prebuildCommand(argv: string[], io: Io): Promise<CommandResult> {
  let json = argv.includes('--json');
  try {
    const { values, positionals } = parseCommandArgs(argv, PREBUILD_FLAGS, 1);
    json = values.json === true;
    const password = await registryPasswordFrom(values, io.readStdin);
    const config = configFromEnv(envWithCacheRegistryFlag(io.env, values['cache-registry']));
    const request: PrebuildRequest = {
      repository: positionals[0]!,
      configName: values['config-name'] ?? null,
      cache: {
        registry: values['cache-registry'] ?? null,
        ref: values['cache-ref'] ?? null,
        username: values['registry-username'] ?? null,
        password,
      },
      cwd: io.cwd,
    };
    // Every input error before the engine is asked anything (runPrebuild plans again, with the id it uses).
    planPrebuild(request, config, 'prebuild-check');
    const agent = await createAgent({ config });
    const result = await runPrebuild(agent, request, progressSink(io.stderr, values.verbose === true));
    if (json) {
      io.stdout(`${JSON.stringify(result)}\n`);
      io.stderr(summary(result));
    } else io.stdout(summary(result));
    return result.status === 'failed' ? EXIT.failed : EXIT.ready;
  } catch (err) {
    return reportError(io, err, json);
  }
}

function summary(r: PrebuildResult): string {
  const secs = (ms: number | null): string => `${((ms ?? 0) / 1000).toFixed(1)}s`;
  const lines = [`${r.status}: prebuild of ${r.repository}${r.configName ? ` (${r.configName})` : ''} in ${secs(r.timings.totalMs)}`];
  if (r.reason) lines.push(`  reason: ${r.reason}`);
  for (const ref of r.pushed) lines.push(`  pushed ${ref}`);
  if (r.timings.buildMs !== null)
    lines.push(`  build ${secs(r.timings.buildMs)}${r.timings.pushMs !== null ? `, push ${secs(r.timings.pushMs)}` : ''}`);
  if (r.error) lines.push(`  error ${r.error.code}: ${r.error.message}`);
  return `${lines.join('\n')}\n`;
}
