import { builderRef, parseCacheRegistry, resolveCacheRef, type Builder } from '../cache/ref.js';
import { configFromEnv } from '../config/agent-config.js';
import { WarmstartError } from '../errors.js';
import { builderOf } from '../workspace/plan.js';
import { parseRepository } from '../workspace/repository.js';
import { validateConfigName } from '../workspace/validate.js';
import { parseCommandArgs } from './args.js';
import { EXIT, reportError, type CommandResult, type Io } from './output.js';

/**
 * `warmstart cache ref <repository>`: print the moving cache ref a workspace
 * would use on this node: its builder's (`--builder` names one instead).
 */
export async function cacheRefCommand(argv: string[], io: Io): Promise<CommandResult> {
  const json = argv.includes('--json');
  try {
    const { values, positionals } = parseCommandArgs(
      argv,
      { 'config-name': { type: 'string' }, 'cache-registry': { type: 'string' }, builder: { type: 'string' }, json: { type: 'boolean' } },
      1,
    );
    const config = configFromEnv(io.env);
    const configName = values['config-name'] !== undefined ? validateConfigName(values['config-name']) : null;
    const repo = parseRepository(positionals[0]!, { cwd: io.cwd });
    const registrySetting = values['cache-registry'] ?? config.cacheRegistry;
    if (!registrySetting) {
      throw new WarmstartError('INVALID_REGISTRY', 'no cache registry: pass --cache-registry or set WARMSTART_CACHE_REGISTRY');
    }
    const wanted = values.builder;
    if (wanted !== undefined && wanted !== 'classic' && wanted !== 'buildkit') {
      throw new WarmstartError('INVALID_ARGUMENT', `--builder must be classic or buildkit, got ${JSON.stringify(wanted.slice(0, 40))}`);
    }
    const builder: Builder =
      wanted ??
      (await builderOf(
        new (await import('../devcontainer/cli-runner.js')).DevcontainerCliRunner({ cliPluginDirs: config.dockerCliPluginDirs ?? [] }),
      ));
    const ref = builderRef(resolveCacheRef({ registry: parseCacheRegistry(registrySetting), repo, configName })!, builder);
    io.stdout(json ? `${JSON.stringify({ ref, builder })}\n` : `${ref}\n`);
    return EXIT.ready;
  } catch (err) {
    return reportError(io, err, json);
  }
}
