// A fake `limactl` for the Lima backend's tests. State lives under $LIMA_HOME
// (default ~/.lima), as with the real tool; LIMA_FAKE_VERSION picks the
// modelled release (default 2.3.0): `clone` exists from 2.0.0 (lima-vm/lima
// PR #3673, in the v2 module), the "image"/"disk" layout from 2.1.0 (PR #4587).
// Messages and exit codes follow cmd/limactl and pkg/instance of lima-vm/lima
// (see each command); errors end as `level=fatal msg=…` with exit status 1.
// LIMA_FAKE_RECORD names a file that gets each call's argv as a JSON line.
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { BackingFileError, guestFiles, writeGuestFiles } from './disk.mjs';
import { runGuest } from './guest-sh.mjs';
import { die, Fatal, log } from './log.mjs';
import { snapshotCommand } from './snapshot.mjs';
import {
  createInstance,
  DEFAULT_TEMPLATE,
  inspect,
  instanceDir,
  limaHome,
  listNames,
  migrateLayout,
  validateName,
  version,
  writableDisk,
} from './store.mjs';

const GLOBAL_BOOL = ['tty', 'yes', 'y', 'debug'];
const GLOBAL_STRING = ['log-level', 'log-format'];
const SPECS = {
  list: { bool: ['json', 'quiet', 'q', 'all-fields'], string: ['format', 'f'] },
  create: { bool: ['foreground'], string: ['name', 'timeout'] },
  start: { bool: ['foreground', 'progress'], string: ['name', 'timeout'] },
  stop: { bool: ['force', 'f'], string: [] },
  delete: { bool: ['force', 'f'], string: [] },
  shell: { bool: ['reconnect', 'preserve-env'], string: ['workdir', 'shell'], interspersed: false },
  clone: { bool: [], string: [] },
  protect: { bool: [], string: [] },
  unprotect: { bool: [], string: [] },
  snapshot: { bool: ['quiet', 'q'], string: ['tag'] },
};
const SHORT = { q: 'quiet', f: 'force', y: 'yes' };

/** pflag-style parsing: --a=b, --a b, -f, --bool=false; unknown flags are refused like cobra. */
function parseFlags(args, spec) {
  const bools = [...GLOBAL_BOOL, ...spec.bool, 'help', 'h'];
  const strings = [...GLOBAL_STRING, ...spec.string];
  const flags = {};
  const positional = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      positional.push(a);
      if (spec.interspersed === false) {
        positional.push(...args.slice(i + 1));
        break;
      }
      continue;
    }
    const long = a.startsWith('--');
    const [rawName, inline] = a.replace(/^--?/, '').split(/=(.*)/s, 2);
    if (!long && rawName.length !== 1) throw new Fatal(`unknown shorthand flag: '${rawName[0]}' in ${a}`);
    const name = SHORT[rawName] ?? (rawName === 'h' ? 'help' : rawName);
    if (bools.includes(rawName) || bools.includes(name)) flags[name] = inline === undefined ? true : inline !== 'false';
    else if (strings.includes(rawName) || strings.includes(name)) {
      if (inline !== undefined) flags[name] = inline;
      else if (i + 1 < args.length) flags[name] = args[++i];
      else throw new Fatal(`flag needs an argument: ${a}`);
    } else throw new Fatal(long ? `unknown flag: --${rawName}` : `unknown shorthand flag: '${rawName}' in ${a}`);
  }
  return { flags, positional };
}

function listAction({ flags, positional }) {
  const names = listNames();
  if (positional.length === 0 && names.length === 0) {
    log('warning', 'No instance found. Run `limactl create` to create an instance.');
    return;
  }
  let unmatched = false;
  const selected =
    positional.length === 0
      ? names
      : positional.filter((n) => names.includes(n) || ((unmatched = true), log('warning', `No instance matching ${n} found.`), false));
  for (const name of selected) {
    const i = inspect(name);
    if (flags.quiet) process.stdout.write(`${name}\n`);
    else if (flags.json || flags.format === 'json') {
      const o = {
        name,
        hostname: `lima-${name}`,
        status: i.status,
        dir: i.dir,
        vmType: i.vmType,
        arch: i.arch,
        cpus: 4,
        memory: 4294967296,
        disk: 107374182400,
        sshLocalPort: i.status === 'Running' ? 60022 : 0,
        protected: i.protected,
        limaVersion: i.limaVersion,
      };
      process.stdout.write(`${JSON.stringify(o)}\n`);
    } else process.stdout.write(`${name}\t${i.status}\t${i.vmType}\t${i.arch}\t${i.dir}\n`);
  }
  if (unmatched) throw new Fatal('', 1); // unmatchedInstancesError: exit 1, nothing more printed
}

/** loadOrCreateInstance (cmd/limactl/start.go) for an instance name, template:NAME, or a template file. */
function loadOrCreate({ flags, positional }, createOnly) {
  const arg = positional[0] ?? '';
  const name = flags.name ?? '';
  if (name !== '') {
    const e = validateName(name);
    if (e) throw new Fatal(e);
  }
  if (arg === '' || validateName(arg) === null) {
    const instName = arg || name || 'default';
    if (arg && name && name !== arg) throw new Fatal(`instance name \`${arg}\` and CLI flag --name=\`${name}\` cannot be specified together`);
    const inst = inspect(instName);
    if (inst) {
      if (createOnly) throw new Fatal(`instance \`${instName}\` already exists`);
      log('info', `Using the existing instance \`${instName}\``);
      return inst;
    }
    if (arg && arg !== 'default') {
      log('info', `Creating an instance \`${instName}\` from template:default (Not from template:${instName})`);
      log('warning', `This form is deprecated. Use \`limactl create --name=${instName} template:default\` instead`);
    }
    return createInstance(instName, DEFAULT_TEMPLATE, limaHome());
  }
  let yaml;
  let dir = limaHome();
  let instName = name;
  if (/^template:(\/\/)?/.test(arg)) {
    yaml = DEFAULT_TEMPLATE;
    instName ||= arg.replace(/^template:(\/\/)?/, '');
  } else {
    const path = resolve(arg);
    if (!existsSync(path)) throw new Fatal(`open ${path}: no such file or directory`);
    yaml = readFileSync(path, 'utf8');
    dir = dirname(path);
    instName ||= basename(path, extname(path));
  }
  const e = validateName(instName);
  if (e) throw new Fatal(e);
  if (inspect(instName)) throw new Fatal(`instance \`${instName}\` already exists`);
  log('info', 'Terminal is not available, proceeding without opening an editor');
  return createInstance(instName, yaml, dir);
}

function startInstance(inst) {
  if (inst.status === 'Running') {
    log('info', `The instance \`${inst.name}\` is already running. Run \`limactl shell ${inst.name}\` to open the shell.`);
    return;
  }
  migrateLayout(inst.dir);
  try {
    guestFiles(writableDisk(inst.dir));
  } catch (e) {
    if (!(e instanceof BackingFileError)) throw e;
    const qemu = inst.arch === 'aarch64' ? 'qemu-system-aarch64' : 'qemu-system-x86_64';
    log('error', `[hostagent] ${qemu}: -drive file=${writableDisk(inst.dir)},if=virtio,discard=on: ${e.message}`);
    throw new Fatal('exiting, status={Running:false Degraded:false Exiting:true Errors:[] SSHLocalPort:0}');
  }
  writeFileSync(join(inst.dir, 'ha.pid'), `${process.pid}\n`);
  writeFileSync(join(inst.dir, `${inst.vmType}.pid`), `${process.pid}\n`);
  log('info', `READY. Run \`limactl shell ${inst.name}\` to open the shell.`);
}

function stopForcibly(inst) {
  for (const f of readdirSync(inst.dir)) if (/\.(pid|sock|tmp)$/.test(f)) unlinkSync(join(inst.dir, f));
}

/** instance.StopGracefully / StopForcibly. */
function stopAction({ flags, positional }) {
  const name = positional[0] ?? 'default';
  const inst = inspect(name);
  if (!inst) throw new Fatal(`open ${instanceDir(name)}/lima.yaml: no such file or directory`);
  if (flags.force) return stopForcibly(inst);
  if (inst.status !== 'Running') throw new Fatal(`expected status "Running", got "${inst.status}" (maybe use \`limactl stop -f\`?)`);
  log('info', 'Waiting for the host agent and the driver processes to shut down');
  stopForcibly(inst);
  log('info', `The instance ${name} has shut down`);
}

/** cmd/limactl/delete.go + instance.Delete. */
function deleteAction({ flags, positional }) {
  if (positional.length === 0) throw new Fatal('"limactl delete" requires at least 1 arg(s), only received 0');
  for (const name of positional) {
    const inst = inspect(name);
    if (!inst) {
      log('warning', `Ignoring non-existent instance "${name}"`);
      continue;
    }
    if (inst.protected)
      throw new Fatal(`failed to delete instance "${name}": instance is protected to prohibit accidental removal (Hint: use \`limactl unprotect\`)`);
    if (!flags.force && inst.status !== 'Stopped')
      throw new Fatal(`failed to delete instance "${name}": expected status "Stopped", got "${inst.status}"`);
    stopForcibly(inst);
    rmSync(inst.dir, { recursive: true, force: true });
    log('info', `Deleted "${name}" ("${inst.dir}")`);
  }
}

/** cmd/limactl/shell.go: runs the command in the guest, exits with its status (ssh's, through handleExitCoder). */
function shellAction({ flags, positional }) {
  let args = positional;
  if (args.length === 0) throw new Fatal('"limactl shell" requires at least 1 arg(s), only received 0');
  if (args[1] === '--') args = [args[0], ...args.slice(2)];
  const [name, ...argv] = args;
  const inst = inspect(name);
  if (!inst) throw new Fatal(`instance "${name}" does not exist, run \`limactl create ${name}\` to create a new instance`);
  if (inst.status !== 'Running') throw new Fatal(`instance "${name}" is stopped, run \`limactl start ${name}\` to start the instance`);
  const path = writableDisk(inst.dir);
  const files = guestFiles(path);
  if (flags.workdir && flags.workdir !== '/' && !Object.keys(files).some((f) => f.startsWith(`${flags.workdir.replace(/\/$/, '')}/`))) {
    process.stderr.write(`sh: 1: cd: can't cd to ${flags.workdir}\n`);
    throw new Fatal('', 1);
  }
  const r = runGuest(argv, files, readStdin());
  if (r.changed) writeGuestFiles(path, files);
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  throw new Fatal('', r.code);
}

/** instance.CloneOrRename (pkg/instance/clone.go): a stopped source, a new name; copies the dir as is. */
function cloneAction({ positional }) {
  if (positional.length !== 2) throw new Fatal(`"limactl clone" accepts 2 arg(s), received ${positional.length}`);
  const [oldName, newName] = positional;
  const old = inspect(oldName);
  if (!old) throw new Fatal(`instance "${oldName}" not found`);
  if (oldName === newName) throw new Fatal(`new instance name "${newName}" must be different from "${oldName}"`);
  if (old.status === 'Running') throw new Fatal('cannot clone a running instance');
  const e = validateName(newName);
  if (e) throw new Fatal(e);
  const dst = instanceDir(newName);
  if (existsSync(dst)) throw new Fatal(`instance "${newName}" already exists`);
  const walk = (from, to) => {
    mkdirSync(to, { mode: statSync(from).mode & 0o777 });
    for (const f of readdirSync(from)) {
      if (f === 'protected' || /\.(pid|sock|tmp)$/.test(f)) continue; // SkipOnClone, TmpFileSuffixes
      const src = join(from, f);
      if (lstatSync(src).isDirectory()) walk(src, join(to, f));
      else if (f === 'vz-identifier')
        writeFileSync(join(to, f), ''); // NullifyOnClone
      else copyFileSync(src, join(to, f)); // continuity's CopyFile: follows symlinks, copies the bytes
    }
  };
  walk(old.dir, dst);
}

function protectAction({ positional }, on) {
  for (const name of positional) {
    const inst = inspect(name);
    if (!inst) throw new Fatal(`open ${instanceDir(name)}/lima.yaml: no such file or directory`);
    if (on) writeFileSync(join(inst.dir, 'protected'), '', { mode: 0o400 });
    else rmSync(join(inst.dir, 'protected'), { force: true });
  }
}

function readStdin() {
  try {
    return process.stdin.isTTY ? '' : readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

function main(argv) {
  const v = version();
  if (argv[0] === '--version' || argv[0] === '-v') {
    process.stdout.write(`limactl version ${v.text}\n`); // cobra's version template
    return;
  }
  const sub = argv.find((a, i) => !a.startsWith('-') && !['--log-level', '--log-format'].includes(argv[i - 1]));
  if (sub === undefined) throw new Fatal('fake limactl: no command');
  const rest = argv.filter((a, i) => i !== argv.indexOf(sub));
  if (sub === 'clone' && !v.atLeast(2, 0)) throw new Fatal('unknown command "clone" for "limactl"');
  if (sub === 'snapshot') {
    const s = rest.find((a) => !a.startsWith('-'));
    const parsed = parseFlags(
      rest.filter((a, i) => i !== rest.indexOf(s)),
      SPECS.snapshot,
    );
    const canonical = { save: 'create', load: 'apply', del: 'delete', ls: 'list' }[s] ?? s;
    return snapshotCommand(canonical, parsed.positional, parsed.flags);
  }
  const spec = SPECS[sub];
  if (!spec) throw new Fatal(`unknown command "${sub}" for "limactl"`);
  const parsed = parseFlags(rest, spec);
  if (parsed.flags.help) {
    process.stdout.write(`Usage:\n  limactl ${sub} [flags]\n`);
    return;
  }
  switch (sub) {
    case 'list':
      return listAction(parsed);
    case 'create': {
      const inst = loadOrCreate(parsed, true);
      log('info', `Run \`limactl start ${inst.name}\` to start the instance.`);
      return;
    }
    case 'start':
      return startInstance(loadOrCreate(parsed, false));
    case 'stop':
      return stopAction(parsed);
    case 'delete':
      return deleteAction(parsed);
    case 'shell':
      return shellAction(parsed);
    case 'clone':
      return cloneAction(parsed);
    case 'protect':
    case 'unprotect':
      return protectAction(parsed, sub === 'protect');
  }
}

if (process.env.LIMA_FAKE_RECORD) appendFileSync(process.env.LIMA_FAKE_RECORD, `${JSON.stringify(process.argv.slice(2))}\n`);
try {
  main(process.argv.slice(2));
} catch (e) {
  die(e);
}
