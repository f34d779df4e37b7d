import { parseCacheRegistry, resolveCacheRef } from '../cache/ref.js';
import { configFromEnv } from '../config/agent-config.js';
import { WarmstartError } from '../errors.js';
import { parseRepository } from '../workspace/repository.js';
import { validateConfigName } from '../workspace/validate.js';
import { parseCommandArgs } from './args.js';
import { EXIT, reportError, type CommandResult, type Io } from './output.js';

/** `warmstart cache ref <repository>`: print the moving cache ref a workspace would use. */
export async function cacheRefCommand(argv: string[], io: Io): Promise<CommandResult> {
  const json = argv.includes('--json');
  try {
    const { values, positionals } = parseCommandArgs(
      argv,
      { 'config-name': { type: 'string' }, 'cache-registry': { type: 'string' }, json: { type: 'boolean' } },
      1,
    );
    const config = configFromEnv(io.env);
    const configName = values['config-name'] !== undefined ? validateConfigName(values['config-name']) : null;
    const repo = parseRepository(positionals[0]!, { cwd: io.cwd });
    const registrySetting = values['cache-registry'] ?? config.cacheRegistry;
    if (!registrySetting) {
      throw new WarmstartError('INVALID_REGISTRY', 'no cache registry: pass --cache-registry or set WARMSTART_CACHE_REGISTRY');
    }
    const ref = resolveCacheRef({ registry: parseCacheRegistry(registrySetting), repo, configName });
    io.stdout(json ? `${JSON.stringify({ ref })}\n` : `${ref}\n`);
    return EXIT.ready;
  } catch (err) {
    return reportError(io, err, json);
  }
}
