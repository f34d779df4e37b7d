import { WarmstartError } from '../errors.js';
import { buildOptionsProblems, runArgsProblems } from './host-access-args.js';
import { capabilityProblem, mountObjectProblem, mountStringProblem, securityOptProblem } from './host-access-rules.js';

/** One thing a repository asks for that would reach the node, and why it is refused. */
export interface HostAccessFinding {
  /** where it is, e.g. `runArgs[2]`, `mounts[0]`, `docker-compose.yml: services.app.env_file` */
  field: string;
  /** the value as written (shortened), or null for a flag such as `privileged` */
  value: string | null;
  reason: string;
}

/**
 * Every host-access finding of one devcontainer.json (or one entry of an
 * image's `devcontainer.metadata` label, or a local feature's
 * devcontainer-feature.json, which the CLI merges the same way). Pure: it
 * reads nothing. Compose files are checked by compose-host-access.ts.
 */
export function configHostAccess(config: Record<string, unknown>, prefix = ''): HostAccessFinding[] {
  const found: HostAccessFinding[] = [];
  const add = (field: string, value: unknown, reason: string): void => {
    found.push({ field: `${prefix}${field}`, value: value === null ? null : shorten(value), reason });
  };

  if (config.privileged !== undefined && config.privileged !== false) {
    add('privileged', null, 'a privileged container holds every device and capability of the node');
  }
  list(config.mounts).forEach((m, i) => {
    const why = typeof m === 'string' ? mountStringProblem(m) : isRecord(m) ? mountObjectProblem(m) : 'not a mount';
    if (why) add(`mounts[${i}]`, m, why);
  });
  if (typeof config.workspaceMount === 'string' && config.workspaceMount !== '') {
    // The agent replaces workspaceMount with the workspace's volume, so the
    // repository's never reaches docker; a bind of anything but the workspace
    // folder still asks for the node's files, and is refused as such.
    const own = /(^|,)\s*(source|src)=\$\{localWorkspaceFolder\}\s*(,|$)/.test(config.workspaceMount);
    const why = own ? null : mountStringProblem(config.workspaceMount);
    if (why) add('workspaceMount', config.workspaceMount, why);
  }
  list(config.capAdd).forEach((c, i) => {
    const why = capabilityProblem(c);
    if (why) add(`capAdd[${i}]`, c, why);
  });
  list(config.securityOpt).forEach((s, i) => {
    const why = securityOptProblem(s);
    if (why) add(`securityOpt[${i}]`, s, why);
  });
  for (const p of runArgsProblems(list(config.runArgs))) add(`runArgs[${p.index}]`, p.arg, p.reason);
  const build = isRecord(config.build) ? config.build : {};
  for (const p of buildOptionsProblems(list(build.options))) add(`build.options[${p.index}]`, p.arg, p.reason);
  return found;
}

/**
 * The findings of an image's `devcontainer.metadata` label: a JSON array of
 * config fragments (or one object) that the CLI merges into the container it
 * starts. A label that is not JSON is itself a finding: what it asks for
 * cannot be known.
 */
export function metadataHostAccess(label: string | undefined): HostAccessFinding[] {
  if (label === undefined || label === '') return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(label);
  } catch {
    return [{ field: 'devcontainer.metadata', value: shorten(label), reason: 'the label is not JSON, so what it asks for cannot be checked' }];
  }
  const entries = Array.isArray(parsed) ? parsed : [parsed];
  return entries.flatMap((e, i) => (isRecord(e) ? configHostAccess(e, `devcontainer.metadata[${i}].`) : []));
}

/** The one error for a refused config: its message names every field, its detail says why for each. */
export function hostAccessDenied(findings: HostAccessFinding[], where: string): WarmstartError {
  const fields = findings.map((f) => f.field);
  return new WarmstartError(
    'HOST_ACCESS_DENIED',
    `${where} asks for access to the node, which this node's policy refuses (WARMSTART_HOST_ACCESS=deny): ${fields.join(', ')}`,
    { detail: findings.map((f) => `${f.field}${f.value === null ? '' : ` ${f.value}`}: ${f.reason}`).join('; ') },
  );
}

/** A value that may be one item or a list (compose and devcontainer.json allow both), as a list. */
export function list(v: unknown): unknown[] {
  if (Array.isArray(v)) return v;
  return v === undefined || v === null ? [] : [v];
}

/** A value as shown in a finding: at most 160 characters. */
export function shorten(v: unknown): string {
  const text = typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
  return text.length > 160 ? `${text.slice(0, 160)}…` : text;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
