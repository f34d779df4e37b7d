import { WarmstartError } from '../errors.js';

const WORKSPACE_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
const CONFIG_NAME_MAX = 100;
// C0, DEL and C1: none of them belongs in a directory name a human typed.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

/** Quotes caller input for an error message, escaped and kept short. */
function quote(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  const shown = text.length > 80 ? `${text.slice(0, 80)}…` : text;
  return JSON.stringify(shown);
}

/**
 * Returns `id` unchanged if it is a valid workspace id, else throws
 * INVALID_WORKSPACE_ID. The id ends up in Docker volume names and labels, so
 * it is held to a DNS-label-like rule.
 */
export function validateWorkspaceId(id: string): string {
  if (typeof id === 'string' && WORKSPACE_ID.test(id)) return id;
  throw new WarmstartError(
    'INVALID_WORKSPACE_ID',
    `Invalid workspace id ${quote(id)}: it must be 1 to 63 characters of lowercase letters, ` +
      `digits and '-', starting with a letter or digit (^[a-z0-9][a-z0-9-]{0,62}$).`,
  );
}

/**
 * Returns `name` unchanged if it is a valid devcontainer config name, else
 * throws INVALID_CONFIG_NAME. The name selects `.devcontainer/<name>/`, so
 * anything that could step outside that directory is refused.
 */
export function validateConfigName(name: string): string {
  const problem = configNameProblem(name);
  if (problem === null) return name;
  throw new WarmstartError('INVALID_CONFIG_NAME', `Invalid config name ${quote(name)}: ${problem}.`);
}

function configNameProblem(name: unknown): string | null {
  if (typeof name !== 'string' || name.length === 0) return 'it must not be empty';
  // Counted in code points so a name's limit does not depend on its script.
  if ([...name].length > CONFIG_NAME_MAX) return `it must be at most ${CONFIG_NAME_MAX} characters`;
  if (name.includes('/') || name.includes('\\')) return "it must not contain '/' or '\\'";
  if (name.includes('..')) return "it must not contain '..'";
  if (CONTROL_CHARS.test(name)) return 'it must not contain NUL or other control characters';
  if (name.startsWith('.')) return "it must not start with '.'";
  // Names are used as written, never decoded; an escape is a way to sneak in
  // a '/' or '..' past a layer that does decode (a proxy, a shell script).
  if (/%[0-9A-Fa-f]{2}/.test(name)) return 'it must not contain %-escapes';
  // Surrounding blanks are almost always a copy-paste slip, and would make
  // discovery miss the directory the caller meant.
  if (name.trim() !== name) return 'it must not start or end with whitespace';
  return null;
}
