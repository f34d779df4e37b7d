/**
 * The CLI reads the daemon's environment file, so `warmstart doctor` (or
 * any command) on a node checks the configuration `warmstart serve` runs
 * with. `--env-file PATH` names one; without it `/etc/warmstart/env` is read
 * when it exists (the file deploy/install.sh writes and the unit's
 * EnvironmentFile= names); `--env-file none` or `WARMSTART_ENV_FILE=` (empty)
 * reads none. The file's values are defaults: a variable already in the
 * command's environment wins.
 *
 * The format is systemd's EnvironmentFile= one as the installer writes it:
 * `KEY=value` lines, `#` or `;` comments, blank lines, a value optionally in
 * single or double quotes. A line that is none of these is a configuration
 * error naming the line's number (never its text: it may hold a secret).
 */
import { readFileSync } from 'node:fs';
import { WarmstartError } from '../errors.js';
import { isMissing } from '../util/best-effort.js';

export const DEFAULT_ENV_FILE = '/etc/warmstart/env';

/** Parses the file's text; throws INVALID_ARGUMENT on a line it cannot read. */
export function parseEnvFile(text: string, path: string): Record<string, string> {
  const out: Record<string, string> = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new WarmstartError('INVALID_ARGUMENT', `${path}: line ${i + 1} is not KEY=value`);
    let value = m[2]!;
    const quoted = /^"(.*)"$/.exec(value) ?? /^'(.*)'$/.exec(value);
    if (quoted) value = quoted[1]!;
    out[m[1]!] = value;
  });
  return out;
}

/**
 * Takes `--env-file PATH` out of argv (before a `--`) and returns the
 * environment the command runs with: the file's values under `env`'s. A
 * note is returned when the default file exists but cannot be read (a user
 * who is not root on a node): the command runs without it.
 */
export function withEnvFile(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  read: (p: string) => string = (p) => readFileSync(p, 'utf8'),
): {
  argv: string[];
  env: NodeJS.ProcessEnv;
  note: string | null;
} {
  const end = argv.indexOf('--');
  const at = argv.findIndex((a, i) => (end < 0 || i < end) && (a === '--env-file' || a.startsWith('--env-file=')));
  let rest = [...argv];
  let named: string | null = null;
  if (at >= 0) {
    const flag = argv[at]!;
    named = flag.includes('=') ? flag.slice(flag.indexOf('=') + 1) : (argv[at + 1] ?? '');
    if (named === '' || named.startsWith('--')) throw new WarmstartError('INVALID_ARGUMENT', '--env-file needs a path (or none)');
    rest = [...argv.slice(0, at), ...argv.slice(at + (flag.includes('=') ? 1 : 2))];
  }
  const path = named ?? (env.WARMSTART_ENV_FILE !== undefined ? env.WARMSTART_ENV_FILE : DEFAULT_ENV_FILE);
  if (path === '' || path === 'none') return { argv: rest, env, note: null };
  let text: string;
  try {
    text = read(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    if (named === null && path === DEFAULT_ENV_FILE && env.WARMSTART_ENV_FILE === undefined) {
      // The default is read only when it is there; one that is there but unreadable is said, not fatal.
      if (isMissing(err)) return { argv: rest, env, note: null };
      return { argv: rest, env, note: `${path} not read (${code}): running with this environment only` };
    }
    throw new WarmstartError('INVALID_ARGUMENT', `cannot read the environment file ${path}`, { detail: code });
  }
  return { argv: rest, env: { ...parseEnvFile(text, path), ...env }, note: null };
}
