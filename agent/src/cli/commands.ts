import { WarmstartError } from '../errors.js';
import { withEnvFile } from './env-file.js';
import { EXIT, processIo, type Io } from './output.js';
import { devcontainersCliVersion, packageCommit, packageVersion } from './version.js';
import { withTimeout } from '../util/with-timeout.js';

// Each command is loaded when it is called: `up` must not pay for the
// daemon's HTTP server, and every start counts.

const USAGE = `usage:
  warmstart up <repository> [--workspace-id ID] [--config-name NAME] [--lightweight]
      [--cache-registry HOST[:PORT][/NAMESPACE]] [--cache-ref REF] [--no-cache]
      [--registry-username USER] [--registry-password-stdin]
      [--push-timeout SECONDS] [--no-push] [--json] [--verbose]
  warmstart down <workspace-id> [--purge] [--json]
  warmstart prebuild <repository> [--config-name NAME] [--cache-registry HOST[:PORT][/NAMESPACE]] [--cache-ref REF]
      [--registry-username USER] [--registry-password-stdin] [--json] [--verbose]
  warmstart cache ref <repository> [--config-name NAME] [--cache-registry ...] [--builder classic|buildkit] [--json]
  warmstart cache prune --registry HOST[:PORT][/NAMESPACE] [--keep N] [--older-than DAYS] [--dry-run]
      [--registry-username USER --registry-password-stdin] [--json]
  warmstart image create --workspace ID --name NAME [--tag TAG] [--capability C ...] [--owner USER] [--with-workspace]
      [--push [--cache-registry HOST[:PORT][/NAMESPACE]] [--registry-username USER --registry-password-stdin]] [--json]
  warmstart image list [--json]
  warmstart image rm NAME[:TAG] [--json]
  warmstart doctor [--cache-registry ...] [--registry-username USER] [--registry-password-stdin] [--json]
  warmstart machine up --backend docker|incus|lima|cloud-hypervisor --name N --base IMAGE
      [--provision SCRIPT] [--file HOST_PATH[:MACHINE_PATH] ...] [--snapshot NAME] [--json]
  warmstart machine cache list|prune --backend B [--keep N] [--json]
  warmstart snapshot create|restore|list|delete --backend B --machine M [--name S]
  warmstart serve [--listen HOST:PORT] [--state-dir DIR]
  warmstart --version [--json]
  warmstart completion bash|zsh|fish
Every command reads /etc/warmstart/env when it exists (its variables under the command's own);
--env-file PATH names another, --env-file none reads none.
`;

/** The usage entries (a line and its continuation lines) of USAGE. */
function usageEntries(): string[] {
  const entries: string[] = [];
  for (const line of USAGE.split('\n').slice(1)) {
    if (line.startsWith('  warmstart ')) entries.push(line);
    else if (line.startsWith('      ') && entries.length > 0) entries[entries.length - 1] += `\n${line}`;
  }
  return entries;
}

/**
 * The usage of the command named by the words before `--help`/`-h`
 * (`image`, `image create`, `cache ref`): the entries that start with them;
 * all of it when none do.
 */
export function usageFor(words: readonly string[]): string {
  for (let n = Math.min(words.length, 2); n > 0; n--) {
    const prefix = `  warmstart ${words.slice(0, n).join(' ')}`;
    const found = usageEntries().filter(
      (e) => e === prefix || e.startsWith(`${prefix} `) || e.startsWith(`${prefix}\n`) || e.startsWith(`${prefix}|`),
    );
    if (found.length > 0) return `usage:\n${found.join('\n')}\n`;
  }
  return USAGE;
}

/** Dispatches a command line; returns the exit code. */
export async function main(argv: string[], given: Io = processIo): Promise<number> {
  // The daemon's environment file, under the command's own environment (env-file.ts).
  let io = given;
  try {
    const loaded = withEnvFile(argv, given.env);
    argv = loaded.argv;
    io = { ...given, env: loaded.env };
    if (loaded.note) given.stderr(`warmstart: ${loaded.note}\n`);
  } catch (err) {
    given.stderr(`warmstart: ${err instanceof WarmstartError ? `${err.code}: ${err.message}` : String(err)}\n`);
    return EXIT.badInput;
  }
  const [command, ...rest] = argv;
  if (command === undefined) {
    io.stdout(USAGE);
    return EXIT.ready;
  }
  // `--help` or `-h` anywhere before a `--`: that command's usage, and nothing is run.
  const end = argv.indexOf('--');
  const help = argv.slice(0, end < 0 ? argv.length : end).findIndex((a) => a === '--help' || a === '-h');
  if (help > 0) {
    io.stdout(usageFor(argv.slice(0, help).filter((a) => !a.startsWith('-'))));
    return EXIT.ready;
  }
  switch (command) {
    case 'up':
      return (await import('./up.js')).upCommand(rest, io);
    case 'down':
      return (await import('./down.js')).downCommand(rest, io);
    case 'prebuild':
      return (await import('./prebuild.js')).prebuildCommand(rest, io);
    case 'cache':
      if (rest[0] === 'ref') return (await import('./cache-ref.js')).cacheRefCommand(rest.slice(1), io);
      if (rest[0] === 'prune') return (await import('./cache-prune.js')).cachePruneCommand(rest.slice(1), io);
      break;
    case 'image':
      return (await import('./image.js')).imageCommand(rest, io);
    case 'doctor':
      return (await import('./doctor.js')).doctorCommand(rest, io);
    case 'machine':
      return (await import('./machine.js')).machineCommand(rest, io);
    case 'snapshot':
      return (await import('./snapshot.js')).snapshotCommand(rest, io);
    case 'serve':
      return (await import('./serve.js')).serveCommand(rest, io);
    case '--version':
    case 'version':
      if (rest.includes('--json')) {
        io.stdout(`${JSON.stringify(await versionReport())}\n`);
        return EXIT.ready;
      }
      io.stdout(`${packageVersion()}\n`);
      return EXIT.ready;
    case 'completion': {
      const { completionScript, completionTable } = await import('./completion.js');
      const script = completionScript(rest[0] ?? '', completionTable(usageEntries().map((e) => e.slice('  warmstart '.length))));
      if (script === null) {
        io.stderr(`warmstart: INVALID_ARGUMENT: completion takes bash, zsh or fish\n`);
        return EXIT.badInput;
      }
      io.stdout(script);
      return EXIT.ready;
    }
    case '--help':
    case 'help':
    case '-h':
      io.stdout(USAGE);
      return EXIT.ready;
  }
  io.stderr(`warmstart: INVALID_ARGUMENT: unknown command${command ? ` '${command}'` : ''}\n${USAGE}`);
  return EXIT.badInput;
}

/**
 * `version --json`: what an operator puts in a bug report. The engine is
 * asked (bounded); when it does not answer, `engine` is null and
 * `engineError` says why, and the command still succeeds.
 */
async function versionReport(): Promise<Record<string, unknown>> {
  const base = { version: packageVersion(), commit: packageCommit(), node: process.version, devcontainersCli: devcontainersCliVersion() };
  try {
    const { DockerodeEngine } = await import('../docker/dockerode-engine.js');
    const engine = new DockerodeEngine();
    const v = await withTimeout(engine.versions(), 3_000);
    return { ...base, engine: { version: v.version, apiVersion: v.apiVersion } };
  } catch (err) {
    const { describeError } = await import('../errors.js');
    return { ...base, engine: null, engineError: describeError(err) };
  }
}
