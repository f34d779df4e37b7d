import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudHypervisorApi } from '../../../agent/src/backends/cloud-hypervisor-api.js';
import { ChSshGuest, chSshFromEnv, sshCredentialHooks, type ChSshConfig } from '../../../agent/src/backends/cloud-hypervisor-ssh.js';
import { isWarmstartError } from '../../../agent/src/errors.js';
import { runCli } from '../../support/cli.js';

// The SSH guest channel against a real sshd on loopback (the host stands in
// for the guest: "guest paths" are this test's temp paths), and `machine up
// --snapshot` through the built CLI with a fake VMM process
// (test/fakes/cloud-hypervisor/fake-ch-process.ts) and that same sshd as the guest.

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const SSHD = '/usr/sbin/sshd';
const SECRET = 'ws-secret-7f3c9e1d-do-not-print';

let dir: string;
let port: number;
let sshd: ChildProcess | null = null;
let sshdLog = '';
let config: ChSshConfig;
const vmmSockets: string[] = [];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const p = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return p;
}

async function keygen(path: string): Promise<string> {
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'warmstart-test', '-f', path]);
  return (await readFile(`${path}.pub`, 'utf8')).trim();
}

async function startSshd(): Promise<void> {
  // run as root, sshd wants its privilege separation dir (the package makes it only when the service starts)
  if (process.getuid?.() === 0) await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const child = spawn(SSHD, ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (c: Buffer) => (sshdLog += c.toString('utf8')));
  sshd = child;
  for (let i = 0; i < 100; i++) {
    if (sshdLog.includes('Server listening')) return;
    if (child.exitCode !== null) throw new Error(`sshd exited: ${sshdLog}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`sshd did not start: ${sshdLog}`);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ws-chssh-'));
  port = await freePort();
  const hostPub = await keygen(join(dir, 'host_key'));
  const clientPub = await keygen(join(dir, 'client_key'));
  await keygen(join(dir, 'other_host_key'));
  await writeFile(join(dir, 'authorized_keys'), `${clientPub}\n`);
  await writeFile(join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${hostPub.split(' ').slice(0, 2).join(' ')}\n`);
  const otherPub = (await readFile(join(dir, 'other_host_key.pub'), 'utf8')).trim();
  await writeFile(join(dir, 'wrong_known_hosts'), `[127.0.0.1]:${port} ${otherPub.split(' ').slice(0, 2).join(' ')}\n`);
  await writeFile(
    join(dir, 'sshd_config'),
    [
      'ListenAddress 127.0.0.1',
      `Port ${port}`,
      `HostKey ${join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'UsePAM no',
      'StrictModes no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'AllowAgentForwarding no',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );
  await writeFile(join(dir, 'secret'), `${SECRET}\n\u0000binary\u00ff`);
  const user = (await execa('id', ['-un'])).stdout.trim();
  const env = {
    WARMSTART_CH_SSH_KEY: join(dir, 'client_key'),
    WARMSTART_CH_SSH_KNOWN_HOSTS: join(dir, 'known_hosts'),
    WARMSTART_CH_SSH_USER: user,
    WARMSTART_CH_SSH_ADDRESS: `127.0.0.1:${port}`,
    WARMSTART_CH_SSH_CONNECT_TIMEOUT: '2',
  };
  config = (await chSshFromEnv(env)).ssh!;
});

afterAll(async () => {
  for (const socket of vmmSockets) await new CloudHypervisorApi(socket, { timeoutMs: 2000 }).shutdownVmm().catch(() => undefined);
  sshd?.kill('SIGTERM');
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('cloud-hypervisor SSH guest channel (real sshd on loopback)', () => {
  it('ready is false while nothing listens, then true once sshd is up', async () => {
    const guest = new ChSshGuest(config);
    expect(await guest.ready('m1')).toBe(false);
    await startSshd();
    expect(await guest.ready('m1')).toBe(true);
  });

  it('exec passes stdin, keeps arguments intact and returns exit codes, stdout and stderr', async () => {
    const guest = new ChSshGuest(config);
    const r = await guest.exec('m1', ['sh', '-c', 'cat; printf "%s|" "$1" "$2"; echo oops >&2; exit 3', 'sh', "a b'c", '$HOME;`x`'], 'from stdin\n');
    expect(r).toEqual({ exitCode: 3, stdout: "from stdin\na b'c|$HOME;`x`|", stderr: 'oops\n' });
    expect((await guest.exec('m1', ['true'])).exitCode).toBe(0);
  });

  it('refuses a host whose key is not in the pinned known-hosts file: ready throws, nothing runs', async () => {
    const guest = new ChSshGuest({ ...config, knownHostsFile: join(dir, 'wrong_known_hosts') });
    const marker = join(dir, 'must-not-exist');
    const err = await guest.ready('m1').catch((e: unknown) => e);
    expect(isWarmstartError(err, 'BACKEND_PRECONDITION')).toBe(true);
    expect((err as Error).message).toContain('host key is not in the pinned known-hosts file');
    const execErr = await guest.exec('m1', ['touch', marker]).catch((e: unknown) => e);
    expect(isWarmstartError(execErr, 'BACKEND_PRECONDITION')).toBe(true);
    expect(await stat(marker).catch(() => null)).toBeNull();
  });

  it('wipe removes exactly the listed paths', async () => {
    const g = join(dir, 'wipe');
    await mkdir(join(g, 'creds', 'deep'), { recursive: true });
    await writeFile(join(g, 'creds', 'deep', 'token'), 't');
    await writeFile(join(g, 'single'), 's');
    await writeFile(join(g, 'keep'), 'k');
    await writeFile(join(g, 'single-not-listed'), 'n');
    const hooks = sshCredentialHooks(new ChSshGuest(config), { wipePaths: [join(g, 'creds'), join(g, 'single'), join(g, 'absent')], inject: [] });
    await hooks.wipeCredentials!('m1');
    expect((await readdir(g)).sort()).toEqual(['keep', 'single-not-listed']);
  });

  it('inject writes the host files with mode 0600, byte for byte; their bytes appear in no output or error', async () => {
    const g = join(dir, 'inject');
    const target = join(g, 'sub', 'token');
    const guest = new ChSshGuest(config);
    const hooks = sshCredentialHooks(guest, { wipePaths: null, inject: [{ hostPath: join(dir, 'secret'), guestPath: target }] });
    await hooks.injectCredentials!('m1');
    expect(await readFile(target)).toEqual(await readFile(join(dir, 'secret')));
    expect((await stat(target)).mode & 0o777).toBe(0o600);
    // an existing, more open file is replaced by a 0600 one
    await chmod(target, 0o644);
    await hooks.injectCredentials!('m1');
    expect((await stat(target)).mode & 0o777).toBe(0o600);
    // a failure names the path, never the content
    await writeFile(join(g, 'blocker'), 'x');
    const failing = sshCredentialHooks(guest, {
      wipePaths: null,
      inject: [{ hostPath: join(dir, 'secret'), guestPath: join(g, 'blocker', 'token') }],
    });
    const err = (await failing.injectCredentials!('m1').catch((e: unknown) => e)) as { code: string; message: string; detail?: string };
    expect(err.code).toBe('BACKEND_ERROR');
    expect(err.message).toContain(join(g, 'blocker', 'token'));
    expect(JSON.stringify({ m: err.message, d: err.detail })).not.toContain(SECRET);
    expect(sshdLog).not.toContain(SECRET);
  });
});

describe('machine up --backend cloud-hypervisor --snapshot (built CLI, fake VMM process, sshd guest)', () => {
  let env: Record<string, string>;
  let guestDir: string;

  beforeAll(async () => {
    // the stand-in VMM binary: fake-ch-process.ts compiled on its own
    const out = join(dir, 'fake-build');
    await execa(
      'npx',
      [
        'tsc',
        '--outDir',
        out,
        '--rootDir',
        '.',
        '--module',
        'nodenext',
        '--moduleResolution',
        'nodenext',
        '--target',
        'es2022',
        '--skipLibCheck',
        '--types',
        'node',
        '--strict',
        'test/fakes/cloud-hypervisor/fake-ch-process.ts',
      ],
      { cwd: repo },
    );
    await writeFile(join(out, 'package.json'), '{"type":"module"}\n');
    const binary = join(out, 'test/fakes/cloud-hypervisor/fake-ch-process.js');
    await chmod(binary, 0o755);
    await execa('npm', ['run', 'build'], { cwd: repo });

    const state = join(dir, 'state');
    const base = join(state, 'cloud-hypervisor', 'images', 'base');
    await mkdir(base, { recursive: true });
    await writeFile(join(base, 'rootfs.raw'), '{}');
    await writeFile(
      join(base, 'vm.json'),
      JSON.stringify({
        payload: { kernel: '/opt/fake/vmlinux', cmdline: 'console=hvc0' },
        memory: { size: 536870912 },
        disks: [{ path: 'rootfs.raw' }],
        net: [{ tap: 'wsbase0', mac: '52:54:00:00:00:01' }],
      }),
    );
    // the operator's hook: here it only records the TAP where the fake VMM looks for it
    const taps = join(dir, 'taps');
    await mkdir(taps);
    await writeFile(join(dir, 'hook.sh'), `#!/bin/sh\nset -e\n[ "$1" = ensure-tap ]\necho "$@" >> ${join(dir, 'hook.log')}\ntouch ${taps}/"$2"\n`);
    await chmod(join(dir, 'hook.sh'), 0o755);
    guestDir = join(dir, 'guest');
    await mkdir(join(guestDir, 'creds'), { recursive: true });
    await writeFile(join(guestDir, 'creds', 'stale'), 'left from before');
    await writeFile(join(dir, 'provision.sh'), `#!/bin/sh\nset -e\necho provisioned > ${join(guestDir, 'provisioned')}\n`);
    env = {
      WARMSTART_STATE_DIR: state,
      WARMSTART_CLOUD_HYPERVISOR: binary,
      FAKE_CH_TAP_DIR: taps,
      WARMSTART_CH_HOOK: join(dir, 'hook.sh'),
      WARMSTART_CH_SSH_KEY: config.keyFile,
      WARMSTART_CH_SSH_KNOWN_HOSTS: config.knownHostsFile,
      WARMSTART_CH_SSH_USER: config.user,
      WARMSTART_CH_SSH_ADDRESS: `127.0.0.1:${port}`,
      WARMSTART_CH_WIPE_PATHS: join(guestDir, 'creds'),
      WARMSTART_CH_INJECT: `${join(dir, 'secret')}:${join(guestDir, 'creds', 'token')}`,
    };
  });

  const up = (extra: Record<string, string> = {}, name = 'vm1') =>
    runCli(
      [
        'machine',
        'up',
        '--backend',
        'cloud-hypervisor',
        '--name',
        name,
        '--base',
        'base',
        '--snapshot',
        'warm',
        '--provision',
        join(dir, 'provision.sh'),
        '--json',
      ],
      {
        env: { ...env, ...extra },
      },
    );

  it('boots, provisions and snapshots the first time; restores the second time; reports path and times', async () => {
    const first = await up();
    expect(first.code, first.stderr + first.stdout).toBe(0);
    vmmSockets.push(join(env.WARMSTART_STATE_DIR!, 'cloud-hypervisor', 'machines', 'vm1', 'api.sock'));
    const r1 = JSON.parse(first.stdout) as Record<string, unknown>;
    expect(r1).toMatchObject({ instance: 'vm1', snapshot: 'warm', path: 'boot', from: 'cold-boot', timing: { operation: 'boot' } });
    expect(r1.bootToReadyMs).toEqual(expect.any(Number));
    expect(r1.snapshotMs).toEqual(expect.any(Number));
    expect(await readFile(join(guestDir, 'provisioned'), 'utf8')).toBe('provisioned\n');
    // wiped before the capture (the stale file is gone), injected again after it, 0600
    expect(await readdir(join(guestDir, 'creds'))).toEqual(['token']);
    expect((await stat(join(guestDir, 'creds', 'token'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, 'hook.log'), 'utf8')).toMatch(/^ensure-tap wst[0-9a-f]{8}0 vm1 0\n$/);
    const vmmLog = await readFile(join(env.WARMSTART_STATE_DIR!, 'cloud-hypervisor', 'machines', 'vm1', 'vmm.log'), 'utf8');
    expect(vmmLog).toMatch(/PUT vm.create 204[\s\S]*PUT vm.boot 204[\s\S]*PUT vm.pause 204[\s\S]*PUT vm.snapshot 204[\s\S]*PUT vm.resume 204/);

    await rm(join(guestDir, 'creds', 'token'));
    const second = await up();
    expect(second.code, second.stderr + second.stdout).toBe(0);
    const r2 = JSON.parse(second.stdout) as Record<string, unknown>;
    expect(r2).toMatchObject({ instance: 'vm1', snapshot: 'warm', path: 'restore', timing: { operation: 'restore' } });
    expect(r2.restoreToReadyMs).toEqual(expect.any(Number));
    expect(r2.bootToReadyMs).toBeUndefined();
    // re-injected after the restore
    expect((await stat(join(guestDir, 'creds', 'token'))).mode & 0o777).toBe(0o600);
    const restoredLog = await readFile(join(env.WARMSTART_STATE_DIR!, 'cloud-hypervisor', 'machines', 'vm1', 'vmm.log'), 'utf8');
    expect(restoredLog).toMatch(/PUT vm.restore 204[\s\S]*PUT vm.resume 204/);

    for (const run of [first, second]) expect(run.stdout + run.stderr).not.toContain(SECRET);
    expect(sshdLog).not.toContain(SECRET);
  });

  it('bad configuration: a stable error code and a non-zero exit, nothing started', async () => {
    const missingKey = await up({ WARMSTART_CH_SSH_KEY: join(dir, 'no-such-key') }, 'vm2');
    expect(missingKey.code).toBe(1);
    expect(JSON.parse(missingKey.stdout)).toMatchObject({
      error: { code: 'BACKEND_PRECONDITION', message: expect.stringContaining('WARMSTART_CH_SSH_KEY') },
    });
    const badAddress = await up({ WARMSTART_CH_SSH_ADDRESS: '-oProxyCommand=x' }, 'vm2');
    expect(badAddress.code).toBe(2);
    expect(JSON.parse(badAddress.stdout)).toMatchObject({ error: { code: 'INVALID_ARGUMENT' } });
    const relativeWipe = await up({ WARMSTART_CH_WIPE_PATHS: 'etc/creds' }, 'vm2');
    expect(relativeWipe.code).toBe(2);
    expect(JSON.parse(relativeWipe.stdout)).toMatchObject({ error: { code: 'INVALID_ARGUMENT' } });
    // no wipe list: the snapshot is refused (fail closed) and the half-made machine removed
    const noWipe = await up({ WARMSTART_CH_WIPE_PATHS: '' }, 'vm3');
    vmmSockets.push(join(env.WARMSTART_STATE_DIR!, 'cloud-hypervisor', 'machines', 'vm3', 'api.sock'));
    expect(noWipe.code).toBe(1);
    expect(JSON.parse(noWipe.stdout)).toMatchObject({
      error: { code: 'BACKEND_PRECONDITION', message: expect.stringContaining('no credential wipe hook') },
    });
    expect(await readdir(join(env.WARMSTART_STATE_DIR!, 'cloud-hypervisor', 'machines'))).toEqual(['vm1']);
    for (const run of [missingKey, badAddress, relativeWipe, noWipe]) expect(run.stdout + run.stderr).not.toContain(SECRET);
  });

  it('the example host hook (deploy/cloud-hypervisor/warmstart-ch-hook) plans the TAP, address and DHCP entry (dry run)', async () => {
    const state = join(dir, 'hook-state');
    const hook = join(repo, 'deploy/cloud-hypervisor/warmstart-ch-hook');
    const r = await execa(hook, ['ensure-tap', 'wst0123abcd0', 'vm1', '0'], {
      env: { WSCH_DRY_RUN: '1', WSCH_STATE: state, WSCH_VMM_USER: 'chuser' },
    });
    expect(r.stdout.split('\n')).toEqual([
      '+ ip tuntap add dev wst0123abcd0 mode tap user chuser',
      '+ ip link set dev wst0123abcd0 master wsch0',
      '+ ip link set dev wst0123abcd0 up',
    ]);
    await execa(hook, ['ensure-tap', 'wst0123abcd0', 'vm1', '0'], { env: { WSCH_DRY_RUN: '1', WSCH_STATE: state } });
    expect(await readFile(join(state, 'hosts'), 'utf8')).toBe('vm1 10.77.0.10\n');
    const { machineMac } = await import('../../../agent/src/backends/cloud-hypervisor.js');
    expect(await readFile(join(state, 'dhcp-hosts'), 'utf8')).toBe(`${machineMac('vm1', 0)},10.77.0.10,vm1\n`);
    const bad = await execa(hook, ['ensure-tap', 'x;rm', 'vm1', '0'], { reject: false, env: { WSCH_DRY_RUN: '1', WSCH_STATE: state } });
    expect(bad.exitCode).not.toBe(0);
  });
});
