import { capabilityProblem, mountStringProblem, securityOptProblem, volumeFlagProblem } from './host-access-rules.js';

/** One refused argument: where it is in the list, as written, and why. */
export interface ArgProblem {
  index: number;
  arg: string;
  reason: string;
}

/** How one docker option is read: whether it takes a value, and what value is safe (null: any). */
interface OptionRule {
  value: boolean;
  check?: (value: string) => string | null;
}

const any: OptionRule = { value: true };
const flag: OptionRule = { value: false };

/** `--network`/`--pid`/... values that keep the container in namespaces of its own. */
function namespaceValue(allowed: string[]): OptionRule {
  return {
    value: true,
    check: (v) =>
      allowed.includes(v.trim().toLowerCase()) ? null : `${JSON.stringify(v)} would share a namespace of the node or of another container`,
  };
}

/** Labels in these namespaces are how the agent and the devcontainers CLI find a workspace's containers. */
const labelRule: OptionRule = {
  value: true,
  check: (v) =>
    /^\s*(warmstart|devcontainer)\./i.test(v) ? `label ${JSON.stringify(v)} would pass for one the agent or the devcontainers CLI sets` : null,
};

/**
 * `docker run` options a repository's `runArgs` may use under `deny`. Anything
 * not listed is refused: an option docker adds later is not safe by default.
 * Each is listed for what it does to the container alone:
 */
const RUN_OPTIONS: Record<string, OptionRule> = {
  '--init': flag, // an init process (tini) as PID 1 of the container
  '--interactive': flag, // stdin kept open
  '--tty': flag, // a terminal for PID 1
  '--read-only': flag, // a read-only root filesystem: takes rights away
  '--env': any, // container environment (a `${localEnv:...}` only sees the CLI's allow-listed env, cli-runner.ts)
  '--label': labelRule, // metadata on the container
  '--hostname': any, // the container's own UTS name
  '--domainname': any,
  '--add-host': any, // an /etc/hosts line inside the container
  '--dns': any, // the container's resolv.conf
  '--dns-search': any,
  '--dns-option': any,
  '--shm-size': any, // size of the container's /dev/shm
  '--ulimit': any, // rlimits of the container's processes
  '--cpus': any, // resource limits and weights: they only limit
  '--cpu-shares': any,
  '--cpuset-cpus': any,
  '--memory': any,
  '--memory-swap': any,
  '--memory-reservation': any,
  '--pids-limit': any,
  '--user': any, // a user inside the container
  '--group-add': any, // groups inside the container (a socket or device would be needed to use them, and those are refused)
  '--workdir': any,
  '--entrypoint': any,
  '--expose': any, // metadata only
  '--publish': any, // a node port forwarded into the container: reaches the container, gives it nothing of the node
  '--publish-all': flag,
  '--stop-signal': any,
  '--stop-timeout': any,
  '--tmpfs': any, // memory-backed scratch space inside the container
  '--cap-drop': any, // takes capabilities away
  '--cap-add': { value: true, check: capabilityProblem },
  '--security-opt': { value: true, check: securityOptProblem },
  '--mount': { value: true, check: mountStringProblem },
  '--volume': { value: true, check: volumeFlagProblem },
  '--network': namespaceValue(['bridge', 'default', 'none']),
  '--net': namespaceValue(['bridge', 'default', 'none']),
  '--ipc': namespaceValue(['private', 'shareable', 'none']),
  '--cgroupns': namespaceValue(['private']),
  // Refused, with the reason given back to the repository:
  // --privileged, --device, --gpus, --device-cgroup-rule (the node's devices),
  // --pid/--uts/--userns (only `host` or another container's make sense),
  // --volumes-from (another container's volumes), --env-file/--label-file/
  // --cidfile (read or write a file on the node), --name (a fixed name collides
  // between workspaces), --runtime, --sysctl, --cgroup-parent, --oom-*,
  // --log-driver/--log-opt, --storage-opt, --isolation.
};

const RUN_SHORT: Record<string, string> = {
  '-e': '--env',
  '-l': '--label',
  '-h': '--hostname',
  '-m': '--memory',
  '-u': '--user',
  '-w': '--workdir',
  '-p': '--publish',
  '-v': '--volume',
  '-i': '--interactive',
  '-t': '--tty',
  '-P': '--publish-all',
};

/** Why a few well-known options are refused, so the finding says more than "not on the list". */
const REFUSED_WHY: Record<string, string> = {
  '--privileged': 'every device and capability of the node',
  '--device': "one of the node's devices",
  '--gpus': "the node's GPUs",
  '--device-cgroup-rule': "access to the node's devices",
  '--pid': "the node's (or another container's) processes",
  '--uts': "the node's hostname namespace",
  '--userns': "the node's user namespace",
  '--volumes-from': "another container's volumes",
  '--env-file': 'a file read on the node',
  '--label-file': 'a file read on the node',
  '--cidfile': 'a file written on the node',
  '--name': 'a fixed container name: workspaces on one node would collide',
  '--secret': 'a file or variable of the node handed to the build',
  '--ssh': "the node's SSH agent or keys handed to the build",
  '--build-context': 'a directory of the node added to the build',
  '--file': 'a Dockerfile named outside the config (build.dockerfile is checked, this is not)',
  '--output': 'files written on the node',
  '--cache-to': 'a cache written on the node or pushed with the node credentials',
  '--push': "a push with the node's registry credentials",
  '--tag': "a tag that could replace another image on the node (the default image, another repository's cache)",
  '--allow': 'build entitlements (network.host, security.insecure)',
  '--iidfile': 'a file written on the node',
  '--metadata-file': 'a file written on the node',
};

/**
 * `docker build` options a repository's `build.options` may use under `deny`:
 */
const BUILD_OPTIONS: Record<string, OptionRule> = {
  '--build-arg': any, // a build argument (its `${localEnv:...}` sees only the CLI's allow-listed env, cli-runner.ts)
  '--target': any, // which stage to build
  '--label': labelRule, // metadata on the image
  '--pull': flag, // pull the base image again
  '--no-cache': flag, // build without the local cache
  '--force-rm': flag, // remove intermediate containers
  '--rm': flag,
  '--quiet': flag,
  '--progress': any, // BuildKit's output format
  '--platform': any, // the image's platform (emulated builds are the engine's business)
  '--add-host': any, // an /etc/hosts line in build steps
  '--shm-size': any, // /dev/shm of build steps
  '--ulimit': any,
  '--cache-from': any, // images to take layers from (pulled, never written)
  '--network': namespaceValue(['bridge', 'default', 'none']),
  // Everything else is refused; REFUSED_WHY says why for --secret, --ssh,
  // --build-context, -f/--file, -o/--output, --cache-to, --push, -t/--tag,
  // --allow, --iidfile, --metadata-file.
};

const BUILD_SHORT: Record<string, string> = { '-q': '--quiet', '-f': '--file', '-o': '--output', '-t': '--tag' };

/** The refused arguments of a `runArgs` list (empty: all are safe). */
export function runArgsProblems(args: unknown[]): ArgProblem[] {
  return optionProblems(args, RUN_OPTIONS, RUN_SHORT);
}

/** The refused arguments of a `build.options` list. */
export function buildOptionsProblems(args: unknown[]): ArgProblem[] {
  return optionProblems(args, BUILD_OPTIONS, BUILD_SHORT);
}

/**
 * Reads a docker argument list the way docker's flag parser does:
 * `--name=value`, `--name value`, `-xvalue`, `-x value`, and bundled single
 * letter flags (`-it`). A bare word is not an option: in `runArgs` it would
 * land before the image name, so it is refused.
 */
function optionProblems(args: unknown[], rules: Record<string, OptionRule>, short: Record<string, string>): ArgProblem[] {
  const problems: ArgProblem[] = [];
  for (let i = 0; i < args.length; i++) {
    const raw = args[i];
    const index = i;
    const refuse = (reason: string, shown = String(raw)): void => void problems.push({ index, arg: shown, reason });
    if (typeof raw !== 'string') {
      refuse('not a string');
      continue;
    }
    const arg = raw.trim();
    let name: string;
    let inline: string | null = null;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq < 0 ? arg : arg.slice(0, eq);
      inline = eq < 0 ? null : arg.slice(eq + 1);
    } else if (/^-[A-Za-z]/.test(arg)) {
      const letters = arg.slice(1);
      // Bundled flags such as -it: every letter must be a known flag without a value.
      const bundled = [...letters].map((c) => short[`-${c}`]);
      if (letters.length > 1 && bundled.every((l) => l !== undefined && rules[l]?.value === false)) continue;
      name = short[arg.slice(0, 2)] ?? arg.slice(0, 2);
      inline = arg.length > 2 ? arg.slice(2).replace(/^=/, '') : null;
    } else {
      refuse('not an option (a bare word, or a variable where an option belongs)');
      continue;
    }
    const rule = rules[name];
    const takesValue = rule?.value ?? (inline === null && typeof args[i + 1] === 'string' && !String(args[i + 1]).startsWith('-'));
    let value = inline;
    let shown = arg;
    if (rule?.value && value === null) {
      const next = args[i + 1];
      value = typeof next === 'string' ? next : '';
      shown = `${arg} ${value}`;
      i++;
    } else if (!rule && takesValue && inline === null) {
      // An unknown option's value is shown with it and not read as an option.
      shown = `${arg} ${String(args[i + 1])}`;
      i++;
    }
    if (!rule) {
      refuse(REFUSED_WHY[name] ? `${name}: ${REFUSED_WHY[name]}` : `${name} is not on the safe list`, shown);
      continue;
    }
    if (!rule.value && inline !== null && !/^(true|false)$/i.test(inline)) {
      refuse(`${name} takes no value`, shown);
      continue;
    }
    const why = rule.check && value !== null ? rule.check(value) : null;
    if (why) refuse(why, shown);
  }
  return problems;
}
