import { createAgent } from '../agent.js';
import { parseCacheRegistry } from '../cache/ref.js';
import { configFromEnv } from '../config/agent-config.js';
import { describeError } from '../errors.js';
import { resolveCredentials, staticCredentials, type CredentialSource } from '../registry/credentials.js';
import { describeRoute } from '../registry/registry-transports.js';
import { GitCli } from '../git/git-cli.js';
import { envWithCacheRegistryFlag, parseCommandArgs, readPassword, REGISTRY_FLAGS } from './args.js';
import { EXIT, reportError, type CommandResult, type Io } from './output.js';

interface Check {
  name: string;
  status: 'ok' | 'fail' | 'skip';
  detail: string;
}

/** `warmstart doctor`: one line per thing a workspace needs; non-zero exit if any fails. */
export async function doctorCommand(argv: string[], io: Io): Promise<CommandResult> {
  let json = argv.includes('--json');
  try {
    const { values } = parseCommandArgs(argv, REGISTRY_FLAGS, 0);
    json = values.json === true;
    const config = configFromEnv(envWithCacheRegistryFlag(io.env, values['cache-registry']));
    const password = values['registry-password-stdin'] ? await readPassword(io.readStdin) : null;
    const agent = await createAgent({ config });
    const checks: Check[] = [];
    const run = async (name: string, fn: () => Promise<string | { skip: string }>): Promise<void> => {
      try {
        const out = await fn();
        checks.push(typeof out === 'string' ? { name, status: 'ok', detail: out } : { name, status: 'skip', detail: out.skip });
      } catch (err) {
        checks.push({ name, status: 'fail', detail: describeError(err) });
      }
    };
    await run('docker engine', async () => `Docker ${await agent.engine.version()}`);
    await run('devcontainer CLI', async () => `@devcontainers/cli ${await agent.devcontainer.version()}`);
    await run('git', async () => new GitCli().version());

    const registrySetting = values['cache-registry'] ?? config.cacheRegistry;
    const registries = new Set(config.registryCredentialHosts);
    if (!registrySetting) {
      checks.push({ name: 'cache registry', status: 'skip', detail: 'none configured: workspaces build without a cache' });
    } else {
      const host = parseCacheRegistry(registrySetting).host;
      const namespace = parseCacheRegistry(registrySetting).namespace;
      registries.add(host.toLowerCase());
      const sources: CredentialSource[] = [...agent.credentialSources];
      if (values['registry-username'] && password !== null) {
        sources.unshift(staticCredentials({ registry: host, username: values['registry-username'], password }, 'job'));
      }
      let creds: Awaited<ReturnType<typeof resolveCredentials>> = null;
      await run('credentials', async () => {
        creds = await resolveCredentials(sources, host);
        return creds ? `${creds.source} credentials for ${host} (user ${creds.username})` : { skip: 'none: pulls of public images only, no push' };
      });
      await run('cache registry', async () => {
        await agent.registry.checkAuth(host, creds);
        return `${host} answers${creds ? ' and accepts the credentials' : ''}`;
      });
      await run('push permission', async () => {
        if (!creds) return { skip: 'no credentials: pushes are skipped' };
        const probeRepo = `${host}/${namespace ? `${namespace}/` : ''}warmstart-doctor/probe`;
        await agent.registry.probePush(probeRepo, creds);
        return `a blob upload to ${probeRepo} was accepted (and cancelled)`;
      });
    }
    // How the agent's own calls reach each configured registry (as dockerd would), and over what the probes above got answers.
    const transports = agent.registryTransports;
    for (const registry of registries) {
      await run('registry mode', async () => {
        if (!transports) return { skip: `${registry}: no registry routes wired` };
        return `${registry}: ${describeRoute(await transports.route(registry), transports.answeredOver(registry))}`;
      });
    }
    if (json) io.stdout(`${JSON.stringify({ ok: checks.every((c) => c.status !== 'fail'), checks })}\n`);
    else for (const c of checks) io.stdout(`${c.status.padEnd(4)} ${c.name}: ${c.detail}\n`);
    return checks.some((c) => c.status === 'fail') ? EXIT.failed : EXIT.ready;
  } catch (err) {
    return reportError(io, err, json);
  }
}
