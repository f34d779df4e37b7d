import { lstat, open, realpath } from 'node:fs/promises';
import path from 'node:path';
import { isRecord, list, shorten, type HostAccessFinding } from './host-access.js';
import { capabilityProblem, securityOptProblem, volumeNameProblem } from './host-access-rules.js';
import { within } from './within.js';

/** Compose files larger than this are refused unread, as devcontainer.json is (discover.ts). */
const MAX_COMPOSE_BYTES = 1024 * 1024;
/** `include` and `extends: {file}` chains followed at most this deep. */
const MAX_FILES = 32;

interface Walk {
  /** the clone, as given and symlink-resolved */
  root: string;
  realRoot: string;
  /** compose resolves relative paths against the first file's directory (the project directory) */
  projectDir: string;
  seen: Set<string>;
  found: HostAccessFinding[];
}

/**
 * Host-access findings of the compose files a config names (`dockerComposeFile`,
 * already confined to the clone by discover.ts), and of the files they pull in
 * through `include` and `extends`. Binds, `env_file`s, build contexts and
 * secret files inside the clone are the repository's own files and pass;
 * outside it (after `..` and symlinks), or built from a variable, they are
 * findings. So are privileged services, host namespaces, devices and the rest
 * that host-access-rules.ts refuses for devcontainer.json.
 */
export async function composeHostAccess(configDir: string, repoDir: string, composeFiles: unknown): Promise<HostAccessFinding[]> {
  const files = (Array.isArray(composeFiles) ? composeFiles : [composeFiles]).filter((f): f is string => typeof f === 'string' && f !== '');
  if (files.length === 0) return [];
  const root = path.resolve(repoDir);
  const walk: Walk = {
    root,
    realRoot: await realpath(root),
    projectDir: path.dirname(path.resolve(configDir, files[0]!)),
    seen: new Set(),
    found: [],
  };
  for (const f of files) await checkFile(walk, path.resolve(configDir, f));
  return walk.found;
}

async function checkFile(walk: Walk, file: string): Promise<void> {
  const label = path.relative(walk.root, file).split(path.sep).join('/');
  const add = (field: string, value: unknown, reason: string): void => {
    walk.found.push({ field: `${label}: ${field}`, value: value === null ? null : shorten(value), reason });
  };
  if (walk.seen.has(file)) return;
  if (walk.seen.size >= MAX_FILES) return add('include', null, `more than ${MAX_FILES} compose files`);
  walk.seen.add(file);
  const doc = await readCompose(file).catch((err: unknown) => {
    add('(file)', null, `cannot be read or parsed, so it cannot be checked: ${(err as Error).message.split('\n')[0]}`);
    return null;
  });
  if (doc === null || doc === undefined) return;
  if (!isRecord(doc)) return add('(file)', null, 'does not hold a mapping, so it cannot be checked');
  const dir = path.dirname(file);
  const inside = (field: string, value: unknown): Promise<boolean> => checkPath(walk, dir, field, value, add);

  for (const [i, inc] of list(doc.include).entries()) {
    const paths = isRecord(inc) ? list(inc.path) : [inc];
    for (const p of paths) if (await inside(`include[${i}]`, p)) await checkFile(walk, path.resolve(dir, p as string));
    if (isRecord(inc)) for (const e of list(inc.env_file)) await inside(`include[${i}].env_file`, e);
  }
  for (const [kind, entries] of [
    ['secrets', doc.secrets],
    ['configs', doc.configs],
  ] as const) {
    if (!isRecord(entries)) continue;
    for (const [name, s] of Object.entries(entries)) if (isRecord(s) && s.file !== undefined) await inside(`${kind}.${name}.file`, s.file);
  }
  if (isRecord(doc.volumes)) {
    for (const [name, v] of Object.entries(doc.volumes)) {
      if (!isRecord(v)) continue;
      if (v.external) add(`volumes.${name}.external`, v.external, "an existing volume of the node (another workspace's or the node's data)");
      if (v.driver_opts !== undefined)
        add(`volumes.${name}.driver_opts`, v.driver_opts, 'driver options can turn a volume into a bind of a node path');
      if (v.driver !== undefined && v.driver !== 'local') add(`volumes.${name}.driver`, v.driver, 'only the local volume driver is allowed');
      if (typeof v.name === 'string' && volumeNameProblem(v.name)) add(`volumes.${name}.name`, v.name, volumeNameProblem(v.name)!);
    }
  }
  if (isRecord(doc.networks)) {
    for (const [name, n] of Object.entries(doc.networks)) {
      if (!isRecord(n)) continue;
      if (n.external) add(`networks.${name}.external`, n.external, "an existing network of the node (the node's own with name: host)");
      if (n.driver !== undefined && n.driver !== 'bridge')
        add(`networks.${name}.driver`, n.driver, "only bridge networks are allowed (host, macvlan and ipvlan reach the node's network)");
    }
  }
  if (isRecord(doc.services)) {
    for (const [name, s] of Object.entries(doc.services)) if (isRecord(s)) await checkService(walk, dir, `services.${name}`, s, add, inside);
  }
}

type Add = (field: string, value: unknown, reason: string) => void;

async function checkService(
  walk: Walk,
  dir: string,
  at: string,
  s: Record<string, unknown>,
  add: Add,
  inside: (field: string, value: unknown) => Promise<boolean>,
): Promise<void> {
  if (s.privileged !== undefined && s.privileged !== false)
    add(`${at}.privileged`, null, 'a privileged container holds every device and capability of the node');
  list(s.cap_add).forEach((c, i) => {
    const why = capabilityProblem(c);
    if (why) add(`${at}.cap_add[${i}]`, c, why);
  });
  list(s.security_opt).forEach((o, i) => {
    const why = securityOptProblem(o);
    if (why) add(`${at}.security_opt[${i}]`, o, why);
  });
  for (const key of [
    'devices',
    'device_cgroup_rules',
    'gpus',
    'sysctls',
    'runtime',
    'isolation',
    'cgroup_parent',
    'storage_opt',
    'userns_mode',
    'uts',
  ]) {
    if (s[key] !== undefined) add(`${at}.${key}`, s[key], REFUSED_SERVICE_KEYS[key] ?? 'not allowed');
  }
  if (isRecord(s.deploy) && JSON.stringify(s.deploy).includes('"devices"')) add(`${at}.deploy`, null, "device reservations reach the node's devices");
  const ns: Array<[string, string[]]> = [
    ['network_mode', ['bridge', 'none', 'default']],
    ['pid', []],
    ['ipc', ['private', 'shareable', 'none']],
    ['cgroup', ['private']],
  ];
  for (const [key, allowed] of ns) {
    const v = s[key];
    if (v === undefined) continue;
    // `service:<name>` shares with a service of the same project, which this check covers too.
    const ok = typeof v === 'string' && (allowed.includes(v.toLowerCase()) || /^service:[A-Za-z0-9_.-]+$/.test(v));
    if (!ok) add(`${at}.${key}`, v, 'shares a namespace of the node or of a container outside the project');
  }
  list(s.volumes_from).forEach((v, i) => {
    if (typeof v !== 'string' || v.startsWith('container:') || v.includes('$')) add(`${at}.volumes_from[${i}]`, v, "another container's volumes");
  });
  for (const [i, e] of list(s.env_file).entries()) await inside(`${at}.env_file${idx(s.env_file, i)}`, isRecord(e) ? e.path : e);
  for (const [i, e] of list(s.label_file).entries()) await inside(`${at}.label_file${idx(s.label_file, i)}`, e);
  for (const [i, v] of list(s.volumes).entries()) await checkVolume(`${at}.volumes[${i}]`, v, add, inside);
  if (s.build !== undefined) await checkBuild(`${at}.build`, s.build, add, inside, dir);
  if (isRecord(s.extends) && s.extends.file !== undefined && (await inside(`${at}.extends.file`, s.extends.file))) {
    await checkFile(walk, path.resolve(dir, s.extends.file as string));
  }
}

const REFUSED_SERVICE_KEYS: Record<string, string> = {
  devices: "one of the node's devices",
  device_cgroup_rules: "access to the node's devices",
  gpus: "the node's GPUs",
  sysctls: 'kernel settings',
  runtime: 'another container runtime',
  isolation: 'another isolation technology',
  cgroup_parent: "a cgroup of the node's choosing",
  storage_opt: 'storage driver options',
  userns_mode: "the node's user namespace",
  uts: "the node's hostname namespace",
};

/** Short syntax `source:target[:mode]` (a source starting with `.`, `/` or `~` is a bind) or the long mapping. */
async function checkVolume(field: string, v: unknown, add: Add, inside: (f: string, v: unknown) => Promise<boolean>): Promise<void> {
  if (typeof v === 'string') {
    const parts = v.split(':');
    if (parts.length === 1) return; // an anonymous volume
    const source = parts[0]!;
    if (/^[/.~]/.test(source) || source.includes('$')) {
      await inside(field, source);
      return;
    }
    const why = volumeNameProblem(source);
    if (why) add(field, v, why);
    return;
  }
  if (!isRecord(v)) return add(field, v, 'not a volume');
  const type = typeof v.type === 'string' ? v.type : 'volume';
  if (type === 'bind') await inside(`${field}.source`, v.source);
  else if (type === 'volume') {
    const why = typeof v.source === 'string' && v.source !== '' ? volumeNameProblem(v.source) : null;
    if (why) add(`${field}.source`, v.source, why);
  } else if (type !== 'tmpfs') add(`${field}.type`, type, 'only bind (inside the repository), volume and tmpfs are allowed');
}

async function checkBuild(field: string, b: unknown, add: Add, inside: (f: string, v: unknown) => Promise<boolean>, dir: string): Promise<void> {
  if (typeof b === 'string') {
    if (!isRemote(b)) await inside(field, b);
    return;
  }
  if (!isRecord(b)) return;
  const context = typeof b.context === 'string' ? b.context : '.';
  if (!isRemote(context) && (await inside(`${field}.context`, context)) && typeof b.dockerfile === 'string') {
    await inside(`${field}.dockerfile`, path.resolve(dir, context, b.dockerfile));
  }
  if (isRecord(b.additional_contexts)) {
    for (const [name, c] of Object.entries(b.additional_contexts)) {
      if (typeof c === 'string' && (isRemote(c) || /^(docker-image|service|target):/.test(c))) continue;
      await inside(`${field}.additional_contexts.${name}`, c);
    }
  }
  if (b.secrets !== undefined) add(`${field}.secrets`, b.secrets, 'a file or variable of the node handed to the build');
  if (b.ssh !== undefined) add(`${field}.ssh`, b.ssh, "the node's SSH agent or keys handed to the build");
  if (b.privileged !== undefined && b.privileged !== false) add(`${field}.privileged`, null, 'a privileged build');
  if (b.entitlements !== undefined) add(`${field}.entitlements`, b.entitlements, 'build entitlements (network.host, security.insecure)');
  if (b.network !== undefined && !(typeof b.network === 'string' && ['default', 'none', 'bridge'].includes(b.network))) {
    add(`${field}.network`, b.network, "the node's network or another container's");
  }
}

/** A git or http(s) context is fetched by the builder; nothing of the node is read. */
function isRemote(v: string): boolean {
  return /^(https?|git):\/\//.test(v) || v.startsWith('git@');
}

/**
 * A path compose resolves on the node must stay in the clone, as written and
 * after symlinks, resolved both against its own file's directory and the
 * project directory (compose versions differ). Returns whether it is inside;
 * adds the finding when not.
 */
async function checkPath(walk: Walk, dir: string, field: string, value: unknown, add: Add): Promise<boolean> {
  if (typeof value !== 'string' || value === '') {
    add(field, value ?? null, 'not a path');
    return false;
  }
  if (value.includes('$')) {
    add(field, value, "uses a variable: where it points is the node's to say");
    return false;
  }
  if (value.startsWith('~')) {
    add(field, value, "a path in the node's home directory");
    return false;
  }
  for (const base of new Set([dir, walk.projectDir])) {
    const abs = path.resolve(base, value);
    if (!within(walk.root, abs)) {
      add(field, value, 'a path on the node outside the repository');
      return false;
    }
    if (!within(walk.realRoot, await realNearest(abs, walk.root))) {
      add(field, value, 'leads outside the repository through a symlink');
      return false;
    }
  }
  return true;
}

/** The real path of the nearest part of `p` that exists (docker creates the rest under it). */
async function realNearest(p: string, root: string): Promise<string> {
  let probe = p;
  for (;;) {
    try {
      return path.join(await realpath(probe), path.relative(probe, p));
    } catch {
      // A symlink that leads nowhere: docker would create its target, wherever that is.
      if (
        await lstat(probe).then(
          () => true,
          () => false,
        )
      )
        return '/';
      if (probe === root || probe === path.dirname(probe)) return p;
      probe = path.dirname(probe);
    }
  }
}

async function readCompose(file: string): Promise<unknown> {
  const handle = await open(file, 'r');
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > MAX_COMPOSE_BYTES) throw new Error(`larger than ${MAX_COMPOSE_BYTES} bytes`);
    // yaml loads only for compose configs (~25 ms a start would otherwise pay).
    const { parseAllDocuments } = await import('yaml');
    const docs = parseAllDocuments(await handle.readFile({ encoding: 'utf8' }), { merge: true });
    if (!Array.isArray(docs)) throw new Error('not YAML');
    if (docs.length > 1) throw new Error('more than one YAML document');
    const doc = docs[0];
    if (!doc) return null;
    if (doc.errors.length > 0) throw new Error(doc.errors[0]!.message);
    return doc.toJS({ maxAliasCount: 1000 });
  } finally {
    await handle.close();
  }
}

function idx(v: unknown, i: number): string {
  return Array.isArray(v) ? `[${i}]` : '';
}
