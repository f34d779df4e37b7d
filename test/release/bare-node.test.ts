/**
 * The newcomer's path: the release `npm run release` makes, installed with
 * `install.sh --from` on a bare Debian 12 node that has no Node.js at all.
 *
 * The node is a root filesystem debootstrapped from Debian's packages
 * (test/release/rootfs.sh, made once and kept in the testbed dir) run as a
 * container of the testbed's engine. It uses that engine through its socket
 * and the testbed's registries through the host's network; the state and
 * runtime dirs are mounted at the same paths inside and out, so the bind
 * mounts the agent hands the engine resolve on the host. Then the same node,
 * booted with systemd as PID 1: the unit installed and started by install.sh,
 * `active` only once the API answers, and the agent's errors ranked as errors
 * in the journal.
 */
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { cleanUp, containersWithLabel } from '../support/docker.js';
import { FIXTURES, runId } from '../support/repos.js';
import { loadTestbed } from '../support/testbed.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string; config: { releaseNode: string } };
const tb = loadTestbed();
const run = runId('bare');
const workspaceId = `${run}-example`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}
async function host(cmd: string, args: string[], input?: string): Promise<Run> {
  const r = await execa(cmd, args, { reject: false, cwd: ROOT, ...(input === undefined ? { stdin: 'ignore' as const } : { input }) });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}
const show = (r: Run): string => `exit ${r.code}\n--- stdout:\n${r.stdout}\n--- stderr:\n${r.stderr}`;
async function must(cmd: string, args: string[], input?: string): Promise<string> {
  const r = await host(cmd, args, input);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed\n${show(r)}`);
  return r.stdout;
}
/** A bash script inside a container, as root. */
const inside = (container: string, script: string, input?: string): Promise<Run> =>
  host('docker', ['exec', ...(input === undefined ? [] : ['-i']), container, 'bash', '-c', script], input);

/** `doctor`'s text output as check name → status. */
function doctorLines(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.trim().split('\n')) {
    const m = /^(ok|fail|skip)\s+([^:]+):/.exec(line);
    if (m) out[m[2]!] = m[1]!;
  }
  return out;
}

let outDir: string; // the release
let shared: string; // state and runtime dirs, the same path inside and out
let tarball: string;
let name: string; // warmstart-<version>-linux-<arch>
let image: string; // the bare node's image
let node: string; // the bare node (no systemd)
const containers: string[] = [];
const images: string[] = [];
const password = tb.registryPassword;

beforeAll(async () => {
  image = (await must('bash', ['test/release/rootfs.sh'])).trim().split('\n').pop()!;
  outDir = await mkdtemp(join(tmpdir(), 'warmstart-release-'));
  const t0 = performance.now();
  const made = await host('bash', ['deploy/release.sh', '--out', outDir]);
  if (made.code !== 0) throw new Error(`deploy/release.sh failed\n${show(made)}`);
  // Its last line: "<path> <bytes> bytes (<MB> MB)".
  const m = /^(\S+\.tar\.gz) (\d+) bytes \(([\d.]+) MB\)$/m.exec(made.stdout);
  if (!m) throw new Error(`deploy/release.sh printed no tarball line\n${show(made)}`);
  tarball = m[1]!;
  name = tarball.slice(tarball.lastIndexOf('/') + 1, -'.tar.gz'.length);
  console.log(`release tarball: ${tarball}: ${m[2]} bytes (${m[3]} MB), made in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  shared = await mkdtemp(join(tmpdir(), 'warmstart-bare-'));
  await must('mkdir', ['-p', join(shared, 'state'), join(shared, 'run')]);
  node = `warmstart-bare-${run}`;
  containers.push(node);
  await must('docker', [
    'run',
    '-d',
    '--name',
    node,
    '--label',
    `warmstart.test-run=${run}`,
    '--network',
    'host', // the testbed's registries listen on the host's loopback
    '-v',
    '/var/run/docker.sock:/var/run/docker.sock',
    '-v',
    `${shared}:${shared}`,
    '-v',
    `${outDir}:/release:ro`,
    image,
    'sleep',
    'infinity',
  ]);
});

afterAll(async () => {
  if (node) await inside(node, `warmstart down ${workspaceId} --purge >/dev/null 2>&1 || true`);
  await cleanUp({ runId: run, workspaceIds: [workspaceId] });
  for (const c of containers) await host('docker', ['rm', '-f', '-v', c]);
  for (const i of images) await host('docker', ['rmi', '-f', i]);
  for (const d of [outDir, shared]) if (d) await rm(d, { recursive: true, force: true });
});

describe('the release tarball', () => {
  it('holds the agent, its production dependencies and the pinned Node runtime; no tests, no dev dependencies', async () => {
    expect(name).toMatch(new RegExp(`^warmstart-${pkg.version.replaceAll('.', '\\.')}-linux-(x64|arm64)$`));
    const entries = (await must('tar', ['-tzf', tarball])).split('\n').filter(Boolean);
    expect(entries[0]).toBe(`${name}/`);
    expect(entries.every((e) => e.startsWith(`${name}/`))).toBe(true);
    const has = (p: string): boolean => entries.includes(`${name}/${p}`);
    for (const p of [
      'bin/warmstart',
      'runtime/bin/node',
      'dist/agent/src/cli/main.js',
      'dist/shared/src/api.js',
      'node_modules/@devcontainers/cli/package.json',
      'package.json',
      'package-lock.json',
      'deploy/install.sh',
      'deploy/warmstart.service',
      'deploy/warmstart.env.example',
      'release.json',
    ]) {
      expect(has(p), p).toBe(true);
    }
    expect(entries.filter((e) => e.startsWith(`${name}/dist/test/`))).toEqual([]);
    for (const dev of ['typescript', 'vitest', 'eslint', 'prettier']) expect(has(`node_modules/${dev}/package.json`), dev).toBe(false);

    const release = JSON.parse(await must('tar', ['-xzOf', tarball, `${name}/release.json`])) as Record<string, unknown>;
    expect(release).toMatchObject({ name, version: pkg.version, platform: 'linux', nodeVersion: pkg.config.releaseNode });
    expect(release.nodePackage).toBe(`node-linux-${String(release.arch)}@${pkg.config.releaseNode}`);
    expect(release.nodeIntegrity).toMatch(/^sha512-[A-Za-z0-9+/]+=*$/);
    // The .sha256 beside it is what cloud-init.yaml checks the download against.
    const sum = await host('sh', ['-c', `cd '${outDir}' && sha256sum -c '${name}.tar.gz.sha256'`]);
    expect(sum.code, show(sum)).toBe(0);
  });
});

describe('install.sh --from on a bare Debian 12 node', () => {
  it('the node has git and the docker CLI, and no Node.js: no node, nodejs or npm anywhere on PATH', async () => {
    const r = await inside(node, 'command -v node nodejs npm; echo "found:$?"; git --version; docker version --format "{{.Server.Version}}"');
    expect(r.stdout).toMatch(/^found:1$/m);
    expect(r.stdout).not.toMatch(/\/(node|nodejs|npm)$/m);
    expect(r.stdout).toMatch(/^git version /m);
    const dpkg = await inside(node, 'dpkg-query -W -f="${Status}" nodejs 2>/dev/null');
    expect(dpkg.stdout).not.toContain('install ok installed');
  });

  it('--help describes --from; --dry-run prints the plan and changes nothing', async () => {
    const help = await host('bash', ['deploy/install.sh', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--from TARBALL/);
    expect(help.stdout).toContain('brings its own Node.js');

    const dry = await inside(
      node,
      `tar -xzf /release/${name}.tar.gz -C /root ${name}/deploy/install.sh && bash /root/${name}/deploy/install.sh --from /release/${name}.tar.gz --dry-run`,
    );
    expect(dry.code, show(dry)).toBe(0);
    expect(dry.stdout).toContain(`install the release into /usr/local/lib/warmstart (unpack ${name}.tar.gz; Node.js ${pkg.config.releaseNode}`);
    expect(dry.stdout).toContain('link /usr/local/bin/warmstart -> /usr/local/lib/warmstart/bin/warmstart');
    expect(dry.stdout).toContain('Dry run: nothing was changed.');
    const after = await inside(node, 'ls -d /usr/local/lib/warmstart /usr/local/bin/warmstart /etc/warmstart 2>&1; true');
    expect(after.stdout).not.toMatch(/^\/(usr|etc)\S*$/m);
  });

  it('a tarball that is not a release, or is for another architecture, is refused before anything is changed', async () => {
    const install = `bash /root/${name}/deploy/install.sh`;
    const foreign = await inside(
      node,
      `cd /root && mkdir -p fake/warmstart-9.9.9-linux-s390x && tar -czf fake.tar.gz -C fake warmstart-9.9.9-linux-s390x && ${install} --from fake.tar.gz`,
    );
    expect(foreign.code, show(foreign)).toBe(1);
    expect(foreign.stderr).toMatch(/^install\.sh: error: --from \/root\/fake\.tar\.gz is not a warmstart release/m);

    // A well-formed release for the other architecture.
    const [arch, other] = name.endsWith('-x64') ? ['x64', 'arm64'] : ['arm64', 'x64'];
    const top = `warmstart-9.9.9-linux-${other}`;
    const releaseJson = JSON.stringify({ name: top, version: '9.9.9', platform: 'linux', arch: other, nodeVersion: '26.0.0' }, null, 2);
    const wrong = await inside(
      node,
      `cd /root && mkdir -p other/${top}/deploy && cat >other/${top}/release.json && cp /root/${name}/deploy/install.sh other/${top}/deploy/ && touch other/${top}/deploy/warmstart.service other/${top}/deploy/warmstart.env.example && tar -czf other.tar.gz -C other ${top} && ${install} --from other.tar.gz`,
      `${releaseJson}\n`,
    );
    expect(wrong.code, show(wrong)).toBe(1);
    expect(wrong.stderr).toContain(`install.sh: error: --from /root/other.tar.gz is for linux-${other}; this node is linux-${arch}`);
    const after = await inside(node, 'ls -d /usr/local/lib/warmstart /usr/local/bin/warmstart /etc/warmstart 2>&1; true');
    expect(after.stdout).not.toMatch(/^\/(usr|etc)\S*$/m);
  });

  it('installs: PREFIX/bin/warmstart links to the release, env file and API token made, unit installed; still no node on PATH', async () => {
    const t0 = performance.now();
    const r = await inside(node, `bash /root/${name}/deploy/install.sh --from /release/${name}.tar.gz`);
    console.log(`install.sh --from on the bare node: ${Math.round(performance.now() - t0)} ms`);
    expect(r.code, show(r)).toBe(0);
    // A minimal Debian lacks the runtime's libatomic.so.1: apt brings it.
    expect(r.stdout).toMatch(/^\d+\. install from apt: .*\blibatomic1\b/m);
    expect(r.stdout).toContain(`Node.js v${pkg.config.releaseNode} runs here`);
    const facts = await inside(
      node,
      'readlink /usr/local/bin/warmstart; stat -c "%a %n" /etc/warmstart/env /etc/warmstart/api-token; grep -c "^ExecStart=/usr/local/bin/warmstart serve$" /etc/systemd/system/warmstart.service; command -v node; echo "node-on-path:$?"',
    );
    expect(facts.stdout.split('\n')).toEqual([
      '/usr/local/lib/warmstart/bin/warmstart',
      '600 /etc/warmstart/env',
      '600 /etc/warmstart/api-token',
      '1',
      'node-on-path:1',
    ]);
  });

  it('warmstart --version, and version --json: the agent runs on the bundled Node', async () => {
    const v = await inside(node, 'warmstart --version');
    expect(v.code, show(v)).toBe(0);
    expect(v.stdout.trim()).toBe(pkg.version);
    const j = await inside(node, 'warmstart version --json');
    expect(j.code, show(j)).toBe(0);
    const info = JSON.parse(j.stdout) as { version: string; node: string; devcontainersCli: string | null; engine: { version: string } | null };
    expect(info.version).toBe(pkg.version);
    expect(info.node).toBe(`v${pkg.config.releaseNode}`);
    // The commit it was made from, from its release.json (no .git on a node).
    const made = JSON.parse((await inside(node, 'cat /usr/local/lib/warmstart/release.json')).stdout) as { commit: string | null };
    expect(made.commit).toMatch(/^[0-9a-f]{40}$/);
    expect((info as { commit?: unknown }).commit).toBe(made.commit);
    // WARMSTART_NODE_OPTIONS (the unit's) reaches the bundled node, and only as node's own options.
    const opts = await inside(node, 'WARMSTART_NODE_OPTIONS="--max-semi-space-size=2 --no-such-node-option" warmstart --version');
    expect(opts.code, show(opts)).not.toBe(0);
    expect(opts.stderr).toContain('--no-such-node-option');
    const semi = await inside(node, 'WARMSTART_NODE_OPTIONS=--max-semi-space-size=2 warmstart --version');
    expect(semi.code, show(semi)).toBe(0);
    // A supported runtime: Node marks its LTS releases with a codename.
    const lts = await inside(node, '/usr/local/lib/warmstart/runtime/bin/node -p "process.release.lts || \'none\'"');
    expect(lts.code, show(lts)).toBe(0);
    expect(lts.stdout.trim()).toMatch(/^[A-Z][a-z]+$/);
    expect(info.devcontainersCli).not.toBeNull();
    expect(info.engine).not.toBeNull();
  });

  it('doctor, configured the way an operator does (/etc/warmstart/env), against the testbed engine and registry: every check ok', async () => {
    const w = await inside(node, 'install -m 0600 /dev/stdin /etc/warmstart/registry-password', `${password}\n`);
    expect(w.code, show(w)).toBe(0);
    const settings = [
      `WARMSTART_STATE_DIR=${shared}/state`,
      `WARMSTART_RUNTIME_DIR=${shared}/run`,
      `WARMSTART_CACHE_REGISTRY=${tb.registry}/${run}`,
      `WARMSTART_REGISTRY_USERNAME=${tb.registryUser}`,
      'WARMSTART_REGISTRY_PASSWORD_FILE=/etc/warmstart/registry-password',
      `WARMSTART_DEFAULT_IMAGE=${tb.baseImage}`,
    ];
    const a = await inside(node, 'cat >>/etc/warmstart/env', `${settings.join('\n')}\n`);
    expect(a.code, show(a)).toBe(0);
    const r = await inside(node, 'warmstart doctor');
    expect(r.code, show(r)).toBe(0);
    const lines = doctorLines(r.stdout);
    expect(lines).toMatchObject({
      'docker engine': 'ok',
      'devcontainer CLI': 'ok',
      git: 'ok',
      credentials: 'ok',
      'cache registry': 'ok',
      'push permission': 'ok',
    });
    expect(Object.entries(lines).filter(([, status]) => status !== 'ok')).toEqual([]);
    expect(`${r.stdout}${r.stderr}`).not.toContain(password);
  });

  it('up of the bundled example: ready, its container running on the engine, the cache pushed', async () => {
    // The example as a newcomer has it (README.md, deploy/demo.sh), with this run's label so its images can be removed.
    const copy = await mkdtemp(join(tmpdir(), 'warmstart-bare-example-'));
    await cp(join(FIXTURES, 'example'), join(copy, 'example'), { recursive: true });
    await must('docker', ['cp', join(copy, 'example'), `${node}:/srv-example`]);
    await rm(copy, { recursive: true, force: true });
    const git = await inside(
      node,
      `mkdir -p /srv/acme && mv /srv-example /srv/acme/example && cd /srv/acme/example && echo "LABEL warmstart.test-run=${run}" >>.devcontainer/Dockerfile && git init -q -b main && git add -A && git -c user.email=t@warmstart.invalid -c user.name=t commit -qm example`,
    );
    expect(git.code, show(git)).toBe(0);
    const t0 = performance.now();
    const r = await inside(node, `warmstart up /srv/acme/example --workspace-id ${workspaceId} --json`);
    console.log(`warmstart up of the example on the bare node: ${Math.round(performance.now() - t0)} ms`);
    expect(r.code, show(r)).toBe(0);
    const res = JSON.parse(r.stdout.trim()) as { outcome: string; containerId: string; push: { status: string }; cache: { ref: string } };
    expect(res.outcome).toBe('ready');
    expect(res.push.status).toBe('pushed');
    expect(res.cache.ref.startsWith(`${tb.registry}/${run}/`)).toBe(true);
    const running = await must('docker', ['inspect', '-f', '{{.State.Running}}', res.containerId]);
    expect(running.trim()).toBe('true');
    expect(await containersWithLabel(`warmstart.workspace=${workspaceId}`)).toEqual([res.containerId.slice(0, 12)]);
    expect(`${r.stdout}${r.stderr}`).not.toContain(password);
  });

  it('installing again (an upgrade) keeps the operator env file and the token; the agent still runs', async () => {
    const before = await inside(node, 'sha256sum /etc/warmstart/env /etc/warmstart/api-token');
    const r = await inside(node, `bash /root/${name}/deploy/install.sh --from /release/${name}.tar.gz`);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/^\d+\. keep \/etc\/warmstart\/env \(exists; never overwritten\)/m);
    expect(r.stdout).not.toMatch(/install from apt/);
    const after = await inside(node, 'sha256sum /etc/warmstart/env /etc/warmstart/api-token');
    expect(after.stdout).toBe(before.stdout);
    expect((await inside(node, 'warmstart --version')).stdout.trim()).toBe(pkg.version);
    // down on the installed agent, as the operator would
    const down = await inside(node, `warmstart down ${workspaceId} --purge --json`);
    expect(down.code, show(down)).toBe(0);
    expect(await containersWithLabel(`warmstart.workspace=${workspaceId}`)).toEqual([]);
  });
});

describe("deploy/cloud-init.yaml's first boot, on a fresh bare node", () => {
  it('its write_files and runcmd fetch the release, check its sha256 and install it (not started: placeholders left)', async () => {
    const doc = parseYaml(await readFile(join(ROOT, 'deploy/cloud-init.yaml'), 'utf8')) as {
      write_files: { path: string; permissions: string; content: string }[];
      runcmd: string[];
    };
    const fresh = `warmstart-bare-ci-${run}`;
    containers.push(fresh);
    await must('docker', [
      'run',
      '-d',
      '--name',
      fresh,
      '--label',
      `warmstart.test-run=${run}`,
      '--network',
      'host',
      '-v',
      `${outDir}:/release:ro`,
      image,
      'sleep',
      'infinity',
    ]);
    // write_files as cloud-init does it, then runcmd in order, the release URL pointed at the tarball.
    for (const f of doc.write_files) {
      const w = await inside(fresh, `mkdir -p "$(dirname '${f.path}')" && cat >'${f.path}' && chmod ${f.permissions} '${f.path}'`, f.content);
      expect(w.code, show(w)).toBe(0);
    }
    expect(doc.runcmd.at(-1)).toMatch(/^ *base=https:\/\/\S+$/m);
    let output = '';
    for (const cmd of doc.runcmd) {
      const script = cmd.replace(/^ *version=.*$/m, `version=${pkg.version}`).replace(/^ *base=.*$/m, 'base=file:///release');
      const r = await inside(fresh, script);
      output += r.stdout + r.stderr;
      expect(r.code, show(r)).toBe(0);
    }
    expect(output).toContain('still holds @@REPLACE placeholders: installing without starting the agent');
    const v = await inside(
      fresh,
      'warmstart --version; readlink /usr/local/bin/warmstart; grep -c "^WARMSTART_LISTEN=0.0.0.0:7780$" /etc/warmstart/env',
    );
    expect(v.stdout.split('\n')).toEqual([pkg.version, '/usr/local/lib/warmstart/bin/warmstart', '1']);

    // A download that does not match its sha256 is not installed.
    const bad = doc.runcmd
      .at(-1)!
      .replace(/^ *version=.*$/m, `version=${pkg.version}`)
      .replace(/^ *base=.*$/m, 'base=file:///release')
      .replace(/^ *sha256=$/m, `sha256=${'0'.repeat(64)}`);
    const refused = await inside(fresh, `rm -rf /var/cache/warmstart; ${bad}`);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('does not match sha256');
  });
});

describe('under systemd as PID 1', () => {
  let sd: string;

  beforeAll(async () => {
    // The mounts below suit a cgroup v1 (or hybrid) host, as this machine is:
    // bound into the container, the whole v2 tree would be systemd's to manage.
    const fs = (await must('stat', ['-f', '-c', '%T', '/sys/fs/cgroup'])).trim();
    if (fs !== 'tmpfs') {
      throw new Error(`/sys/fs/cgroup is ${fs}: this test boots systemd in a container on a cgroup v1 or hybrid host only`);
    }
    // The installed node as an image, so systemd boots a node where the
    // release's libraries are in place (this container has no network to
    // reach apt with).
    const installed = `warmstart-testbed/bare-node-installed:${run}`;
    await must('docker', ['commit', node, installed]);
    images.push(installed);
    sd = `warmstart-bare-sd-${run}`;
    containers.push(sd);
    // Not --privileged: this machine's capability bounding set lacks
    // CAP_SYS_RESOURCE, and runc refuses a privileged container then. Every
    // other capability, no seccomp filter, and the cgroup v1 hierarchies
    // writable (systemd makes its own subtree under the container's cgroup).
    // No network but loopback: the API is reached from inside; the engine is
    // the testbed's, through its socket at a path the node's own /run (a tmpfs
    // systemd needs) does not hide. docker.service is masked in the image.
    await must('docker', [
      'run',
      '-d',
      '--name',
      sd,
      '--label',
      `warmstart.test-run=${run}`,
      '--cap-add',
      'ALL',
      '--cap-drop',
      'SYS_RESOURCE',
      '--security-opt',
      'seccomp=unconfined',
      '--security-opt',
      'apparmor=unconfined',
      '--network',
      'none',
      '-e',
      'container=docker',
      '--tmpfs',
      '/run',
      '--tmpfs',
      '/run/lock',
      '--stop-signal',
      'SIGRTMIN+3',
      '-v',
      '/sys/fs/cgroup:/sys/fs/cgroup:rw',
      '-v',
      '/var/run/docker.sock:/host/docker.sock',
      '-v',
      `${outDir}:/release:ro`,
      installed,
      '/sbin/init',
    ]);
    // systemctl answers once PID 1 has its bus up; then --wait waits for the boot to end.
    const booted = await inside(
      sd,
      `for i in $(seq 1 300); do
  s=$(timeout 60 systemctl is-system-running --wait 2>/dev/null || true)
  case $s in running | degraded) break ;; esac
  sleep 0.2
done
echo "$s"; readlink /proc/1/exe`,
    );
    if (!/^(running|degraded)$/m.test(booted.stdout) || !booted.stdout.includes('/lib/systemd/systemd')) {
      throw new Error(`systemd did not boot in the container\n${show(booted)}\n${(await host('docker', ['logs', sd])).stderr}`);
    }
  });

  it('install.sh --from (an upgrade) installs the unit and starts it; docker.service is masked and left alone; the API answers', async () => {
    // The operator's env file: the host's engine, an API token; plus an
    // unreadable workspace record, which the agent logs as an error at start.
    const env = 'WARMSTART_API_TOKEN_FILE=/etc/warmstart/api-token\nDOCKER_HOST=unix:///host/docker.sock\n';
    const w = await inside(
      sd,
      'install -m 0600 /dev/stdin /etc/warmstart/env && mkdir -p /var/lib/warmstart/workspaces/broken && echo "{not json" >/var/lib/warmstart/workspaces/broken/workspace.json',
      env,
    );
    expect(w.code, show(w)).toBe(0);
    const r = await inside(sd, `bash /root/${name}/deploy/install.sh --from /release/${name}.tar.gz`);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain('systemd: running (PID 1)');
    expect(r.stdout).toMatch(/^\d+\. docker\.service is masked: left alone/m);
    expect(r.stdout).toMatch(/^\d+\. systemctl enable --now warmstart\.service$/m);
    expect((await inside(sd, 'cat /etc/warmstart/env')).stdout).toBe(env.trimEnd()); // execa drops the last newline
    const state = await inside(sd, 'systemctl is-enabled warmstart; systemctl is-active warmstart; curl -s http://127.0.0.1:7780/health');
    expect(state.stdout.split('\n').slice(0, 2)).toEqual(['enabled', 'active']);
    expect(JSON.parse(state.stdout.split('\n')[2]!)).toMatchObject({ status: 'ok', version: pkg.version });
    const exe = await inside(sd, 'readlink /proc/$(systemctl show -p MainPID --value warmstart)/exe');
    expect(exe.stdout.trim()).toBe('/usr/local/lib/warmstart/runtime/bin/node');
  });

  it('the unit reaches active only once the API answers', async () => {
    // Samples the unit's state, then the API, every 50 ms from the start on:
    // no sample may find the unit active and the API not answering.
    const r = await inside(
      sd,
      `systemctl stop warmstart
systemctl start --no-block warmstart
end=$((SECONDS + 60))
while [ $SECONDS -lt $end ]; do
  s=$(systemctl show -p ActiveState --value warmstart)
  c=$(curl -s -o /dev/null -m 2 -w '%{http_code}' http://127.0.0.1:7780/health || true)
  echo "$s $c"
  [ "$s" = active ] && [ "$c" = 200 ] && exit 0
  [ "$s" = failed ] && exit 1
  sleep 0.05
done
exit 1`,
    );
    expect(r.code, show(r)).toBe(0);
    const samples = r.stdout
      .trim()
      .split('\n')
      .map((l) => {
        const [state, code] = l.split(' ');
        return { state: state!, code: code! };
      });
    console.log(`unit start sampled ${samples.length} times: ${samples.filter((s) => s.state === 'activating').length} while activating`);
    // The start was watched while it happened, not only after it.
    expect(samples.some((s) => s.state === 'activating')).toBe(true);
    const activeWithoutApi = samples.filter((s) => s.state === 'active' && s.code === '000');
    expect(activeWithoutApi, r.stdout).toEqual([]);
    expect(samples.at(-1)).toEqual({ state: 'active', code: '200' });
    const restarts = await inside(sd, 'systemctl show -p NRestarts --value warmstart');
    expect(restarts.stdout.trim()).toBe('0');
  });

  it('journalctl -u warmstart -p err shows the error the agent logged, and only errors', async () => {
    let errors = '';
    for (let i = 0; i < 50 && !errors.includes('workspace record unreadable'); i++) {
      errors = (await inside(sd, 'journalctl -u warmstart -p err -o cat --no-pager')).stdout;
      if (!errors.includes('workspace record unreadable')) await new Promise((res) => setTimeout(res, 100));
    }
    const lines = errors.split('\n').filter((l) => l.startsWith('{'));
    expect(lines.some((l) => l.includes('"workspaceId":"broken"') && l.includes('workspace record unreadable'))).toBe(true);
    for (const l of lines) expect((JSON.parse(l) as { level: number }).level, l).toBeGreaterThanOrEqual(50);
    // The info lines are in the journal, at their own priority.
    const all = await inside(sd, 'journalctl -u warmstart -o json --no-pager');
    const listening = all.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { MESSAGE?: string; PRIORITY?: string })
      .filter((e) => typeof e.MESSAGE === 'string' && e.MESSAGE.includes('Server listening'));
    expect(listening.length).toBeGreaterThan(0);
    expect(listening.every((e) => e.PRIORITY === '6')).toBe(true);
  });
});
