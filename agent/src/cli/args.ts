import { parseArgs, type ParseArgsConfig } from 'node:util';
import { WarmstartError } from '../errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Flags shared by the commands that talk to a cache registry. */
export const REGISTRY_FLAGS = {
  'cache-registry': { type: 'string' },
  'registry-username': { type: 'string' },
  'registry-password-stdin': { type: 'boolean' },
  json: { type: 'boolean' },
} as const satisfies Options;

/** util.parseArgs, with its errors turned into INVALID_ARGUMENT (exit 2). */
export function parseCommandArgs<O extends Options>(argv: string[], options: O, positionals: number) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new WarmstartError('INVALID_ARGUMENT', (err as Error).message);
  }
  if (parsed.positionals.length !== positionals) {
    throw new WarmstartError('INVALID_ARGUMENT', `expected ${positionals} argument(s), got ${parsed.positionals.length}`);
  }
  return parsed;
}

/** Reads a password from stdin (first line, trailing newline dropped); refuses an empty one. */
export async function readPassword(readStdin: () => Promise<string>): Promise<string> {
  const text = await readStdin();
  const password = text.replace(/\r?\n$/, '');
  if (password === '') throw new WarmstartError('INVALID_ARGUMENT', '--registry-password-stdin read an empty password');
  return password;
}

/**
 * The environment the CLI's config is read from, with `--cache-registry`
 * standing in for WARMSTART_CACHE_REGISTRY (flags win over env). The CLI is
 * run by the operator, so the registry they name on the command line is
 * "the configured one": the static credentials belong to its host unless
 * WARMSTART_REGISTRY_CREDENTIAL_HOSTS says otherwise (agent-config.ts).
 */
export function envWithCacheRegistryFlag(env: NodeJS.ProcessEnv, flag: string | undefined): NodeJS.ProcessEnv {
  return flag === undefined ? env : { ...env, WARMSTART_CACHE_REGISTRY: flag };
}

/**
 * The registry password from stdin when `--registry-password-stdin` is given;
 * the flag and `--registry-username` go together (INVALID_ARGUMENT otherwise).
 */
export async function registryPasswordFrom(
  values: { 'registry-password-stdin'?: boolean | undefined; 'registry-username'?: string | undefined },
  readStdin: () => Promise<string>,
): Promise<string | null> {
  const password = values['registry-password-stdin'] ? await readPassword(readStdin) : null;
  if (password !== null && !values['registry-username']) {
    throw new WarmstartError('INVALID_ARGUMENT', '--registry-password-stdin needs --registry-username');
  }
  if (values['registry-username'] && password === null) {
    throw new WarmstartError('INVALID_ARGUMENT', '--registry-username needs --registry-password-stdin');
  }
  return password;
}
