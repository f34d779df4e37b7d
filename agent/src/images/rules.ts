/**
 * Golden image naming rules and labels (docs/machines.md "Golden images").
 * Every check here runs before anything is created; a refusal is an input
 * error (exit 2, HTTP 400) with a stable code.
 */
import { WarmstartError } from '../errors.js';

/** docs/machines.md "Golden images": the name. 2 to 64 characters. */
export const IMAGE_NAME = /^[a-z0-9][a-z0-9._-]{1,63}$/;
/** docs/machines.md "Golden images": the tag. 1 to 63 characters. */
export const IMAGE_TAG = /^[A-Za-z0-9._-]{1,63}$/;
/**
 * Docker's own grammar for a repository path component: separators
 * (`.`, `_`, `__`, a run of `-`) only between letters or digits. A name the
 * DESIGN rule allows but Docker does not (`ab-`, `a..b`) is refused here,
 * not by the engine halfway through.
 */
const DOCKER_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
export const DEFAULT_TAG = 'latest';
export const MAX_CUSTOM_CAPABILITIES = 10;
export const MAX_CAPABILITY_LENGTH = 40;
export const CUSTOM_PREFIX = 'custom:';
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

export const LABELS = {
  managed: 'dev.warmstart.managed',
  os: 'dev.warmstart.os',
  owner: 'dev.warmstart.owner',
  source: 'dev.warmstart.source',
  capabilities: 'dev.warmstart.capabilities',
  /** where the repository is in an image made `--with-workspace` */
  workspaceFolder: 'dev.warmstart.workspace-folder',
} as const;
export const SOURCE_WORKSPACE_COMMIT = 'workspace-commit';

/** Local golden images are `warmstart-golden/<name>:<tag>`; pushed ones `<registry>[/<namespace>]/golden/<name>:<tag>`. */
export const LOCAL_REPOSITORY_PREFIX = 'warmstart-golden/';
export const PUSH_PATH = 'golden';

const show = (v: string): string => JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}…` : v);

/** Throws INVALID_IMAGE_NAME unless `name` is a valid golden image name. */
export function validateImageName(name: string): string {
  const invalid = (why: string): never => {
    throw new WarmstartError('INVALID_IMAGE_NAME', `Invalid image name ${show(name)}: ${why}.`);
  };
  if (typeof name !== 'string' || name.length < 2 || name.length > 64) invalid('it must be 2 to 64 characters');
  if (!IMAGE_NAME.test(name)) {
    invalid("use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit");
  }
  if (!DOCKER_COMPONENT.test(name)) {
    invalid("Docker needs a letter or digit on both sides of '.', '_', '__' or a run of '-' (and at the end)");
  }
  return name;
}

/** The tag to use: DEFAULT_TAG when none or empty; throws INVALID_IMAGE_TAG when it breaks the rule. */
export function validateImageTag(tag: string | null | undefined): string {
  if (tag === undefined || tag === null || tag === '') return DEFAULT_TAG;
  const invalid = (why: string): never => {
    throw new WarmstartError('INVALID_IMAGE_TAG', `Invalid image tag ${show(tag)}: ${why}.`);
  };
  if (tag.length > 63) invalid('it must be at most 63 characters');
  if (!IMAGE_TAG.test(tag)) invalid("use letters, digits, '.', '_' and '-'");
  // Docker refuses a tag that starts with '.' or '-'.
  if (/^[.-]/.test(tag)) invalid("Docker does not accept a tag starting with '.' or '-'");
  return tag;
}

/**
 * Checks the custom capabilities given for a new image (at most 10 distinct,
 * each 1 to 40 characters, no comma, no control character) and returns
 * them, de-duplicated in the order given, as stored: `custom:<c>`.
 * Throws INVALID_CAPABILITY.
 */
export function validateCapabilities(given: readonly string[] | undefined): string[] {
  const unique = [...new Set(given ?? [])];
  for (const c of unique) {
    const invalid = (why: string): never => {
      throw new WarmstartError('INVALID_CAPABILITY', `Invalid capability ${show(c)}: ${why}.`);
    };
    const length = [...c].length;
    if (length === 0) invalid('it must not be empty');
    if (length > MAX_CAPABILITY_LENGTH) invalid(`it must be at most ${MAX_CAPABILITY_LENGTH} characters`);
    if (c.includes(',')) invalid('it must not contain a comma (the label is a comma-joined list)');
    if (CONTROL.test(c)) invalid('it must not contain control characters');
  }
  if (unique.length > MAX_CUSTOM_CAPABILITIES) {
    throw new WarmstartError('INVALID_CAPABILITY', `Too many capabilities: ${unique.length} given, at most ${MAX_CUSTOM_CAPABILITIES}.`);
  }
  return unique.map((c) => `${CUSTOM_PREFIX}${c}`);
}

/** The capabilities in a `dev.warmstart.capabilities` label (comma-joined), blanks dropped. */
export function parseCapabilitiesLabel(value: string | undefined): string[] {
  if (!value) return [];
  return value
    .split(',')
    .map((c) => c.trim())
    .filter((c) => c !== '');
}

/** Inherited first, then the new custom ones; each once, in first-seen order. */
export function mergeCapabilities(inherited: readonly string[], custom: readonly string[]): string[] {
  return [...new Set([...inherited, ...custom])];
}

/** Parses `NAME[:TAG]` (tag `latest` when absent), both checked. */
export function parseImageArg(value: string): { name: string; tag: string } {
  const colon = value.indexOf(':');
  if (colon < 0) return { name: validateImageName(value), tag: DEFAULT_TAG };
  return { name: validateImageName(value.slice(0, colon)), tag: validateImageTag(value.slice(colon + 1)) };
}

export function localRef(name: string, tag: string): string {
  return `${LOCAL_REPOSITORY_PREFIX}${name}:${tag}`;
}

/** `<host>[/<namespace>]/golden/<name>:<tag>` in the cache registry. */
export function pushRef(registry: { host: string; namespace: string | null }, name: string, tag: string): string {
  return `${registry.host}/${registry.namespace ? `${registry.namespace}/` : ''}${PUSH_PATH}/${name}:${tag}`;
}

/**
 * A caller whose token is scoped to one workspace may name images only under
 * that workspace's prefix, `<workspaceId>` or `<workspaceId>-...`: the names
 * outside it are the node's (other workspaces pull them by name), and a
 * scoped caller taking one would replace what others start from. Throws
 * IMAGE_NAME_FORBIDDEN (403).
 */
export function assertNameInWorkspace(name: string, workspaceId: string): void {
  if (name === workspaceId || name.startsWith(`${workspaceId}-`)) return;
  throw new WarmstartError(
    'IMAGE_NAME_FORBIDDEN',
    `Image name ${show(name)} is outside this workspace's names: a token scoped to workspace ${workspaceId} may name images ${workspaceId} or ${workspaceId}-<suffix>.`,
  );
}

/** Owners are logins or e-mail-like ids; compared exactly. Throws INVALID_ARGUMENT. */
export function validateOwner(owner: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/.test(owner)) {
    throw new WarmstartError(
      'INVALID_ARGUMENT',
      `Invalid owner ${show(owner)}: use 1 to 128 letters, digits, '.', '_', '@', '+' or '-', starting with a letter or digit.`,
    );
  }
  return owner;
}
