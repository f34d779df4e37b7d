/**
 * The building blocks of the host-access policy (docs/how-it-works.md "Host access"): which
 * capabilities, security options and mounts a repository may ask for when the
 * operator's policy is `deny`. Each answer is null when the value is safe, else
 * the reason it opens the node. Shared by the devcontainer.json checks
 * (host-access.ts), docker's run and build arguments (host-access-args.ts) and
 * compose files (compose-host-access.ts).
 */

/**
 * Capabilities beyond docker's default set that stay inside the container:
 * - SYS_PTRACE: debuggers (gdb, delve, lldb) attach to the container's own
 *   processes; the container has its own PID namespace, so no process of the
 *   node or of another container can be reached.
 * Everything else is refused: SYS_ADMIN (mount, namespaces), SYS_MODULE,
 * DAC_READ_SEARCH (open_by_handle_at reads host files), NET_ADMIN, SYS_RAWIO,
 * SYS_TIME, ALL and the rest either act on the node or widen the kernel
 * surface a container escape goes through.
 */
const SAFE_CAPABILITIES = new Set(['SYS_PTRACE']);

export function capabilityProblem(value: unknown): string | null {
  if (typeof value !== 'string') return 'not a capability name';
  const name = value.trim().toUpperCase().replace(/^CAP_/, '');
  if (SAFE_CAPABILITIES.has(name)) return null;
  return `capability ${name || '""'} is not on the safe list (SYS_PTRACE)`;
}

/**
 * Security options that do not open the node:
 * - seccomp=unconfined: debuggers and profilers need syscalls docker's default
 *   profile blocks (personality to turn off ASLR, perf_event_open). The
 *   capability set stays docker's default and AppArmor stays on, so mount,
 *   module loading and raw devices still fail; what grows is the kernel surface
 *   the container can call, which docs/how-it-works.md "Host access" says.
 * - no-new-privileges (any spelling): only takes rights away.
 * Refused: apparmor=unconfined (lifts the profile that denies writes to /proc
 * and /sys and mounts), label=... (SELinux labels are what keep a container off
 * the node's files), a seccomp profile file (a path on the node, and any
 * profile), systempaths=unconfined (unmasks /proc and /sys).
 */
export function securityOptProblem(value: unknown): string | null {
  if (typeof value !== 'string') return 'not a security option';
  const v = value.trim().toLowerCase().replace(':', '=');
  if (v === 'seccomp=unconfined') return null;
  if (v === 'no-new-privileges' || v === 'no-new-privileges=true') return null;
  return `security option ${JSON.stringify(value)} is not on the safe list (seccomp=unconfined, no-new-privileges)`;
}

/**
 * Variables allowed in a volume name: they name this workspace's own
 * container or folder. `${localEnv:...}` is not: its value is the node's.
 */
const NAME_VARIABLES = ['${devcontainerId}', '${localWorkspaceFolderBasename}', '${containerWorkspaceFolderBasename}'];

/**
 * A named volume is the container's own storage, with two exceptions: the
 * agent's workspace volumes (`warmstart-ws-<id>`) hold other workspaces' work,
 * and a name that is a path (or built from the node's environment) is a bind.
 */
export function volumeNameProblem(name: string): string | null {
  let plain = name;
  for (const v of NAME_VARIABLES) plain = plain.replaceAll(v, 'x');
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(plain))
    return `volume source ${JSON.stringify(name)} is not a plain volume name (a host path or a variable of the node)`;
  if (name.toLowerCase().startsWith('warmstart-'))
    return `volume ${JSON.stringify(name)} is one of the agent's own volumes (another workspace's files)`;
  return null;
}

/**
 * A `--mount` / devcontainer `mounts` entry in docker's `key=value,...` form.
 * Binds are refused (their source is a path on the node); named volumes and
 * tmpfs are the container's own. `volume-opt`/`volume-driver` are refused: the
 * local driver with `o=bind,device=/path` is a bind by another name.
 */
export function mountStringProblem(spec: string): string | null {
  // docker reads the value as CSV; a quoted field could hide a comma.
  if (spec.includes('"') || spec.includes("'")) return 'quoted mount fields are not checked, so they are refused';
  const fields = new Map<string, string>();
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    const key = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (key === '') continue;
    fields.set(key, eq < 0 ? 'true' : part.slice(eq + 1).trim());
  }
  return mountProblem({
    type: fields.get('type') ?? 'volume',
    source: fields.get('source') ?? fields.get('src'),
    extra: [...fields.keys()].filter((k) => k.startsWith('volume-')),
  });
}

/**
 * The object form of devcontainer.json `mounts` ({type, source, target}); the
 * CLI passes on only those three keys, so others cannot add options.
 */
export function mountObjectProblem(m: Record<string, unknown>): string | null {
  return mountProblem({
    type: typeof m.type === 'string' ? m.type : 'volume',
    source: typeof m.source === 'string' ? m.source : undefined,
    extra: [],
  });
}

function mountProblem(m: { type: string; source: string | undefined; extra: string[] }): string | null {
  const type = m.type.toLowerCase();
  if (type === 'bind') return `bind mount of ${JSON.stringify(m.source ?? '')}: a path on the node`;
  if (type === 'tmpfs') return null;
  if (type !== 'volume') return `mount type ${JSON.stringify(m.type)} is not volume or tmpfs`;
  if (m.extra.length > 0) return `volume options ${m.extra.join(', ')} can turn a volume into a bind of a node path`;
  return m.source === undefined || m.source === '' ? null : volumeNameProblem(m.source);
}

/**
 * `-v` / `--volume` short form `[source:]target[:options]`. A source that is
 * a path (absolute, relative, `~`) or holds a variable is a bind.
 */
export function volumeFlagProblem(spec: string): string | null {
  const parts = spec.split(':');
  if (parts.length === 1) return null; // an anonymous volume at that path
  const source = parts[0]!;
  if (source === '') return null;
  if (/^[/.~]/.test(source) || source.includes('$')) return `bind of ${JSON.stringify(source)}: a path on the node`;
  return volumeNameProblem(source);
}
