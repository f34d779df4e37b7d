/**
 * deploy/: the installer run for real into a temporary prefix (this machine
 * has Node 20 and Docker but no systemd as PID 1), its dry run, the unit as
 * installed checked by `systemd-analyze verify`, and the cloud-init example.
 * Needs root (the installer refuses real runs otherwise); does not need the
 * testbed.
 */
import { existsSync } from 'node:fs';
import { appendFile, chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const INSTALL = join(ROOT, 'deploy/install.sh');
const TEMPLATE_UNIT = join(ROOT, 'deploy/warmstart.service');
const TEMPLATE_ENV = join(ROOT, 'deploy/warmstart.env.example');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

async function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const t0 = performance.now();
  const r = await execa(cmd, args, { reject: false, env, extendEnv: true, stdin: 'ignore', cwd: ROOT });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), ms: Math.round(performance.now() - t0) };
}
const show = (r: Run): string => `exit ${r.code}\n--- stdout:\n${r.stdout}\n--- stderr:\n${r.stderr}`;

/** The numbered steps the installer printed ("N. text"), in order. */
function steps(stdout: string): { n: number; text: string }[] {
  return stdout
    .split('\n')
    .map((l) => /^(\d+)\. (.+)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ n: Number(m[1]), text: m[2]! }));
}

/** Every path under dir, relative, sorted: the shape of an install. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      out.push(relative(dir, p) + (e.isDirectory() ? '/' : ''));
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out.sort();
}

const mode = async (p: string): Promise<string> => ((await stat(p)).mode & 0o777).toString(8).padStart(4, '0');

const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };

let tmp: string;
let prefix: string;
let etcDir: string;
let systemdDir: string;
let first: Run;
const installArgs = (): string[] => ['--prefix', prefix, '--etc-dir', etcDir, '--systemd-dir', systemdDir, '--no-start'];

beforeAll(async () => {
  if (!existsSync(join(ROOT, 'dist/agent/src/cli/main.js'))) {
    const b = await run('npm', ['run', 'build']);
    if (b.code !== 0) throw new Error(`npm run build failed\n${show(b)}`);
  }
  // systemd-analyze comes with the systemd package; a CI container may lack it.
  if ((await run('sh', ['-c', 'command -v systemd-analyze'])).code !== 0) {
    const env = { DEBIAN_FRONTEND: 'noninteractive' };
    const u = await run('apt-get', ['update', '-qq'], env);
    if (u.code !== 0) throw new Error(`apt-get update failed\n${show(u)}`);
    const i = await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'systemd'], env);
    if (i.code !== 0) throw new Error(`apt-get install systemd failed\n${show(i)}`);
  }
  tmp = await mkdtemp(join(tmpdir(), 'warmstart-deploy-'));
  prefix = join(tmp, 'prefix');
  etcDir = join(tmp, 'etc');
  systemdDir = join(tmp, 'systemd');
  first = await run('bash', [INSTALL, ...installArgs()]);
  console.log(`install.sh into a fresh prefix: ${first.ms} ms`);
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('install.sh --dry-run', () => {
  it('prints the plan as numbered steps and creates nothing', async () => {
    const dry = join(tmp, 'dry');
    const r = await run('bash', [INSTALL, '--dry-run', '--prefix', `${dry}/prefix`, '--etc-dir', `${dry}/etc`, '--systemd-dir', `${dry}/systemd`]);
    expect(r.code, show(r)).toBe(0);
    const s = steps(r.stdout);
    expect(s.map((x) => x.n)).toEqual(s.map((_, i) => i + 1));
    const text = s.map((x) => x.text).join('\n');
    expect(text).toContain(`install the agent into ${dry}/prefix/lib/warmstart`);
    expect(text).toContain(`write ${dry}/prefix/bin/warmstart`);
    expect(text).toContain(`write ${dry}/etc/env`);
    expect(text).toContain(`create ${dry}/etc/api-token with a random API token`);
    expect(text).toContain(`install ${dry}/systemd/warmstart.service (ExecStart=${dry}/prefix/bin/warmstart serve`);
    expect(text).toContain(`check: ${dry}/prefix/bin/warmstart --version prints ${pkg.version}`);
    expect(r.stdout).toContain('Dry run: nothing was changed.');
    expect(existsSync(dry)).toBe(false);
  });

  it('refuses bad options before doing anything', async () => {
    for (const args of [['--node', '/nonexistent/node'], ['--prefix', 'relative/dir'], ['--bogus']]) {
      const r = await run('bash', [INSTALL, '--dry-run', ...args]);
      expect(r.code, show(r)).toBe(1);
      expect(r.stderr).toMatch(/^install\.sh: error: /);
      expect(steps(r.stdout)).toEqual([]);
    }
  });
});

describe('install.sh: which Node.js (fake node and apt-cache first on PATH, dry run)', () => {
  async function fakeBin(nodeVersion: string, aptCandidate: string): Promise<Record<string, string>> {
    const bin = await mkdtemp(join(tmp, 'fakebin-'));
    await writeFile(join(bin, 'node'), `#!/bin/sh\necho ${nodeVersion}\n`);
    await writeFile(join(bin, 'apt-cache'), `#!/bin/sh\nprintf 'nodejs:\\n  Installed: (none)\\n  Candidate: ${aptCandidate}\\n'\n`);
    await chmod(join(bin, 'node'), 0o755);
    await chmod(join(bin, 'apt-cache'), 0o755);
    return { PATH: `${bin}:${process.env.PATH}` };
  }
  const dryArgs = (): string[] => [
    '--dry-run',
    '--prefix',
    join(tmp, 'never'),
    '--etc-dir',
    join(tmp, 'never-etc'),
    '--systemd-dir',
    join(tmp, 'never-sd'),
  ];

  it('node too old and apt offers only 18 (Debian 12): stops, says why, points at --node', async () => {
    const r = await run('bash', [INSTALL, ...dryArgs()], await fakeBin('18.19.0', '18.20.4+dfsg-1~deb12u3'));
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toContain('Node.js >= 20.12 is needed: node on PATH is 18.19.0, and apt offers nodejs 18.20.4');
    expect(r.stderr).toContain('--node');
  });

  it('node too old and apt offers 20: plans apt-get update, then nodejs from apt', async () => {
    const r = await run('bash', [INSTALL, ...dryArgs()], await fakeBin('18.19.0', '1:20.19.2+dfsg-1'));
    expect(r.code, show(r)).toBe(0);
    const s = steps(r.stdout).map((x) => x.text);
    expect(s[0]).toBe('refresh the package lists (apt-get update)');
    expect(s[1]).toMatch(/^install from apt: .*\bnodejs$/);
    expect(s.join('\n')).toContain('(runs /usr/bin/node ');
  });
});

describe('install.sh into a temporary prefix (no systemd as PID 1)', () => {
  it('leaves a working warmstart --version, a 0600 env file and the unit, and starts nothing', async () => {
    expect(first.code, show(first)).toBe(0);
    const bin = join(prefix, 'bin/warmstart');
    // No PATH at all: the wrapper names its node by absolute path, as systemd needs.
    const v = await execa('/usr/bin/env', ['-i', bin, '--version'], { reject: false });
    expect(v.exitCode, String(v.stderr)).toBe(0);
    expect(String(v.stdout).trim()).toBe(pkg.version);

    expect(await mode(join(etcDir, 'env'))).toBe('0600');
    const template = await readFile(TEMPLATE_ENV, 'utf8');
    expect(await readFile(join(etcDir, 'env'), 'utf8')).toBe(template.replaceAll('/etc/warmstart/', `${etcDir}/`));
    expect(await readFile(join(etcDir, 'env'), 'utf8')).toContain(`\nWARMSTART_API_TOKEN_FILE=${etcDir}/api-token\n`);
    // serve refuses to start without API authentication: the env names a token file, and there is one.
    expect(await mode(join(etcDir, 'api-token'))).toBe('0600');
    expect(await readFile(join(etcDir, 'api-token'), 'utf8')).toMatch(/^[0-9a-f]{64}\n$/);
    const lib = join(prefix, 'lib/warmstart');
    for (const p of ['package.json', 'package-lock.json', 'dist/agent/src/cli/main.js', 'node_modules/@devcontainers/cli/package.json']) {
      expect(existsSync(join(lib, p)), p).toBe(true);
    }
    // production dependencies only
    expect(existsSync(join(lib, 'node_modules/typescript'))).toBe(false);
    expect(existsSync(join(lib, 'node_modules/vitest'))).toBe(false);

    expect(first.stdout).toContain(`${systemdDir}/warmstart.service was installed but not enabled or started`);
    expect(
      steps(first.stdout)
        .map((s) => s.text)
        .join('\n'),
    ).not.toMatch(/systemctl/);
  });

  it('is idempotent: a second run gives the same install and keeps an edited env file', async () => {
    const edited = 'WARMSTART_NODE_ID=edited-by-the-operator\n';
    await appendFile(join(etcDir, 'env'), edited);
    const envBefore = await readFile(join(etcDir, 'env'), 'utf8');
    const tokenBefore = await readFile(join(etcDir, 'api-token'), 'utf8');
    const before = { prefix: await tree(prefix), etc: await tree(etcDir), systemd: await tree(systemdDir) };
    const unitBefore = await readFile(join(systemdDir, 'warmstart.service'), 'utf8');
    const wrapperBefore = await readFile(join(prefix, 'bin/warmstart'), 'utf8');

    const second = await run('bash', [INSTALL, ...installArgs()]);
    console.log(`install.sh again over the same prefix: ${second.ms} ms`);
    expect(second.code, show(second)).toBe(0);
    expect(await readFile(join(etcDir, 'env'), 'utf8')).toBe(envBefore);
    expect(await mode(join(etcDir, 'env'))).toBe('0600');
    expect(await readFile(join(etcDir, 'api-token'), 'utf8')).toBe(tokenBefore);
    expect({ prefix: await tree(prefix), etc: await tree(etcDir), systemd: await tree(systemdDir) }).toEqual(before);
    expect(await readFile(join(systemdDir, 'warmstart.service'), 'utf8')).toBe(unitBefore);
    expect(await readFile(join(prefix, 'bin/warmstart'), 'utf8')).toBe(wrapperBefore);
    const v = await run(join(prefix, 'bin/warmstart'), ['--version']);
    expect(v.stdout.trim()).toBe(pkg.version);
    // Same plan, but the env file is kept rather than written and the token is not made again.
    const texts = (r: Run) => steps(r.stdout).map((s) => s.text.replace(/^(write|keep) \S+\/env\b.*$/, 'ENV'));
    expect(texts(second)).toEqual(texts(first).filter((t) => !t.startsWith(`create ${etcDir}/api-token`)));
    expect(second.stdout).toMatch(new RegExp(`^\\d+\\. keep ${etcDir}/env \\(exists; never overwritten\\)`, 'm'));
  });
});

describe('warmstart.service', () => {
  it('as installed, is the template with only ExecStart and EnvironmentFile rewritten', async () => {
    expect(first.code, show(first)).toBe(0);
    const installed = (await readFile(join(systemdDir, 'warmstart.service'), 'utf8')).split('\n');
    const template = (await readFile(TEMPLATE_UNIT, 'utf8')).split('\n');
    expect(installed).toHaveLength(template.length);
    const changed = installed.filter((line, i) => line !== template[i]);
    expect(changed).toEqual([`ExecStart=${prefix}/bin/warmstart serve`, `EnvironmentFile=-${etcDir}/env`]);
  });

  it('passes systemd-analyze verify with no warning about it', async () => {
    expect(first.code, show(first)).toBe(0);
    const unit = join(systemdDir, 'warmstart.service');
    // verify loads Wants= units: without the docker.io package there is no
    // docker.service, so give it a stand-in (the real one wins when present).
    const env: Record<string, string> = {};
    const hasDocker = ['/etc/systemd/system', '/lib/systemd/system', '/usr/lib/systemd/system'].some((d) => existsSync(join(d, 'docker.service')));
    if (!hasDocker) {
      const stub = join(tmp, 'stub-units');
      await mkdir(stub, { recursive: true });
      await writeFile(join(stub, 'docker.service'), '[Unit]\nDescription=stand-in for the test\n[Service]\nExecStart=/bin/true\n');
      env.SYSTEMD_UNIT_PATH = `${stub}:`;
    }
    const r = await run('systemd-analyze', ['verify', unit], env);
    expect(r.code, show(r)).toBe(0);
    // verify exits 0 on unknown keys and unparsable values; it only prints
    // them. Any line about our unit is a failure.
    const about = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.includes(unit) || l.startsWith('warmstart.service'));
    expect(about, show(r)).toEqual([]);
  });
});

describe('cloud-init.yaml', () => {
  it('is #cloud-config, writes the env file 0600 and runs install.sh --from the release it fetches (test/release/bare-node.test.ts runs it)', async () => {
    const text = await readFile(join(ROOT, 'deploy/cloud-init.yaml'), 'utf8');
    expect(text.split('\n')[0]).toBe('#cloud-config');
    expect(text).toMatch(/- path: \/etc\/warmstart\/env\n\s+owner: root:root\n\s+permissions: '0600'/);
    expect(text).toContain('bash "$dir/$name/deploy/install.sh" --from "$tgz"');
  });

  it('writes an apt configuration that apt itself reads: retries, a lock timeout, connection timeouts', async () => {
    const text = await readFile(join(ROOT, 'deploy/cloud-init.yaml'), 'utf8');
    const m = /- path: \/etc\/apt\/apt\.conf\.d\/80warmstart-retries\n(?:\s+\w+: .*\n)*?\s+content: \|\n((?:\s{6}.*\n)+)/.exec(text);
    expect(m, 'the apt.conf.d entry').not.toBeNull();
    const dir = await mkdtemp(join(tmpdir(), 'warmstart-aptconf-'));
    const conf = join(dir, '80warmstart-retries');
    await writeFile(conf, m![1]!.replace(/^ {6}/gm, ''));
    // apt-config parses the file as apt-get would, and refuses a malformed one.
    const r = await run('apt-config', ['-c', conf, 'dump']);
    expect(r.code, show(r)).toBe(0);
    for (const line of ['Acquire::Retries "5";', 'DPkg::Lock::Timeout "300";', 'Acquire::http::Timeout "30";']) expect(r.stdout).toContain(line);
    await writeFile(join(dir, 'bad'), 'Acquire::Retries "5"\n');
    expect((await run('apt-config', ['-c', join(dir, 'bad'), 'dump'])).code).not.toBe(0);
    await rm(dir, { recursive: true, force: true });
  });

  const cloudInit = existsSync('/usr/bin/cloud-init');
  it.skipIf(!cloudInit)('passes cloud-init schema (when cloud-init is installed)', async () => {
    const r = await run('cloud-init', ['schema', '--config-file', join(ROOT, 'deploy/cloud-init.yaml')]);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain('Valid cloud-config');
  });
});
