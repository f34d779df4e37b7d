import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ChSshGuest,
  chSshFromEnv,
  parseAddress,
  parseInject,
  parseWipePaths,
  shellQuote,
  sshArgv,
} from '../../../agent/src/backends/cloud-hypervisor-ssh.js';
import { chBackendOptions } from '../../../agent/src/backends/factory.js';
import { isWarmstartError } from '../../../agent/src/errors.js';

let dir: string;
let env: Record<string, string>;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ws-chsshcfg-'));
  await writeFile(join(dir, 'key'), 'PRIVATE-KEY-BYTES-never-shown');
  await chmod(join(dir, 'key'), 0o600);
  await writeFile(join(dir, 'known_hosts'), '[10.0.0.5]:22 ssh-ed25519 AAAA\n');
  await writeFile(join(dir, 'token'), 'TOKEN-BYTES');
  env = {
    WARMSTART_CH_SSH_KEY: join(dir, 'key'),
    WARMSTART_CH_SSH_KNOWN_HOSTS: join(dir, 'known_hosts'),
    WARMSTART_CH_SSH_ADDRESS: '{machine}.vm.internal',
  };
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function code(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  if (!isWarmstartError(err)) throw new Error(`expected a WarmstartError, got ${String(err)}`);
  expect(`${err.message} ${err.detail ?? ''}`).not.toContain('PRIVATE-KEY-BYTES');
  return err.code;
}

describe('cloud-hypervisor SSH settings from the environment', () => {
  it('no WARMSTART_CH_SSH_* at all: no channel, and the wipe stays unconfigured (fail closed)', async () => {
    expect(await chSshFromEnv({})).toEqual({ ssh: null, wipePaths: null, inject: [] });
    expect((await chSshFromEnv({ WARMSTART_CH_WIPE_PATHS: 'none' })).wipePaths).toEqual([]);
    const options = await chBackendOptions({}, dir);
    expect(options.guest).toBeUndefined();
    expect(options.hooks).toEqual({});
  });

  it('a full configuration: defaults, port, user, timeout; wipe and inject become hooks', async () => {
    const s = await chSshFromEnv({
      ...env,
      WARMSTART_CH_SSH_USER: 'dev',
      WARMSTART_CH_SSH_PORT: '2222',
      WARMSTART_CH_SSH_CONNECT_TIMEOUT: '3',
      WARMSTART_CH_WIPE_PATHS: '/home/dev/.ssh,/run/secrets:/root/.git-credentials',
      WARMSTART_CH_INJECT: `${join(dir, 'token')}:/run/secrets/token`,
    });
    expect(s.ssh).toMatchObject({ user: 'dev', defaultPort: 2222, connectTimeoutSec: 3, sshBinary: 'ssh' });
    expect(s.wipePaths).toEqual(['/home/dev/.ssh', '/run/secrets', '/root/.git-credentials']);
    expect(s.inject).toEqual([{ hostPath: join(dir, 'token'), guestPath: '/run/secrets/token' }]);
    const options = await chBackendOptions(
      { ...env, WARMSTART_CH_WIPE_PATHS: '/run/secrets', WARMSTART_CH_INJECT: `${join(dir, 'token')}:/run/secrets/token` },
      dir,
    );
    expect(options.guest).toBeInstanceOf(ChSshGuest);
    expect(Object.keys(options.hooks ?? {}).sort()).toEqual(['injectCredentials', 'wipeCredentials']);
    expect(await new ChSshGuest(s.ssh!).address('m-1')).toEqual({ host: 'm-1.vm.internal', port: 2222 });
  });

  it('WARMSTART_CH_SSH_HOSTS_FILE wins over the template; unknown machines fall back to it', async () => {
    await writeFile(join(dir, 'hosts'), '# machine address\nm1 10.77.0.10\nm2 [fd00::2]:2200\n');
    const s = await chSshFromEnv({ ...env, WARMSTART_CH_SSH_HOSTS_FILE: join(dir, 'hosts') });
    const guest = new ChSshGuest(s.ssh!);
    expect(await guest.address('m1')).toEqual({ host: '10.77.0.10', port: 22 });
    expect(await guest.address('m2')).toEqual({ host: 'fd00::2', port: 2200 });
    expect(await guest.address('m3')).toEqual({ host: 'm3.vm.internal', port: 22 });
    expect(await code(guest.address('../etc'))).toBe('INVALID_ARGUMENT');
  });

  it('malformed values are INVALID_ARGUMENT', async () => {
    for (const bad of [
      { WARMSTART_CH_SSH_KEY: '' },
      { WARMSTART_CH_SSH_KNOWN_HOSTS: '' },
      { WARMSTART_CH_SSH_KEY: 'relative/key' },
      { WARMSTART_CH_SSH_ADDRESS: '' },
      { WARMSTART_CH_SSH_ADDRESS: '-oProxyCommand=sh' },
      { WARMSTART_CH_SSH_ADDRESS: 'host:99999' },
      { WARMSTART_CH_SSH_ADDRESS: 'a b' },
      { WARMSTART_CH_SSH_USER: 'root;id' },
      { WARMSTART_CH_SSH_PORT: '0' },
      { WARMSTART_CH_SSH_CONNECT_TIMEOUT: 'soon' },
      { WARMSTART_CH_WIPE_PATHS: 'relative/path' },
      { WARMSTART_CH_WIPE_PATHS: '/home/../etc' },
      { WARMSTART_CH_WIPE_PATHS: '/' },
      { WARMSTART_CH_INJECT: '/host/only' },
      { WARMSTART_CH_INJECT: `${join(dir, 'token')}:relative` },
      { WARMSTART_CH_INJECT: `relative:/guest` },
    ]) {
      expect(await code(chSshFromEnv({ ...env, ...bad })), JSON.stringify(bad)).toBe('INVALID_ARGUMENT');
    }
    // wipe or inject without a channel to do it with
    expect(await code(chSshFromEnv({ WARMSTART_CH_WIPE_PATHS: '/run/secrets' }))).toBe('INVALID_ARGUMENT');
    expect(await code(chBackendOptions({ WARMSTART_CH_HOOK: 'relative-hook' }, dir))).toBe('INVALID_ARGUMENT');
  });

  it('missing or unusable files are BACKEND_PRECONDITION, without the key bytes', async () => {
    expect(await code(chSshFromEnv({ ...env, WARMSTART_CH_SSH_KEY: join(dir, 'nope') }))).toBe('BACKEND_PRECONDITION');
    expect(await code(chSshFromEnv({ ...env, WARMSTART_CH_SSH_KNOWN_HOSTS: join(dir, 'nope') }))).toBe('BACKEND_PRECONDITION');
    expect(await code(chSshFromEnv({ ...env, WARMSTART_CH_INJECT: `${join(dir, 'nope')}:/run/x` }))).toBe('BACKEND_PRECONDITION');
    await chmod(join(dir, 'key'), 0o644);
    expect(await code(chSshFromEnv(env))).toBe('BACKEND_PRECONDITION');
  });
});

describe('cloud-hypervisor SSH command line', () => {
  it('pins every option and quotes the remote words', async () => {
    const s = (await chSshFromEnv(env)).ssh!;
    const argv = sshArgv(s, { host: '10.0.0.5', port: 2022 }, ['sh', '-c', "echo 'hi'", 'a b']);
    const opts = argv.flatMap((a, i) => (argv[i - 1] === '-o' ? [a] : []));
    expect(opts).toEqual(
      expect.arrayContaining([
        'BatchMode=yes',
        'IdentitiesOnly=yes',
        'StrictHostKeyChecking=yes',
        `UserKnownHostsFile=${join(dir, 'known_hosts')}`,
        'ForwardAgent=no',
        'ConnectTimeout=5',
      ]),
    );
    expect(argv.slice(0, 2)).toEqual(['-F', '/dev/null']);
    expect(argv.slice(-3)).toEqual(['--', '10.0.0.5', `'sh' '-c' 'echo '\\''hi'\\''' 'a b'`]);
    expect(argv).not.toContain('PRIVATE-KEY-BYTES-never-shown');
  });

  it('parses addresses and lists', () => {
    expect(parseAddress('10.0.0.1:2200', 22)).toEqual({ host: '10.0.0.1', port: 2200 });
    expect(parseAddress('[::1]', 2222)).toEqual({ host: '::1', port: 2222 });
    expect(parseWipePaths(undefined)).toBeNull();
    expect(parseWipePaths(' none ')).toEqual([]);
    expect(parseWipePaths('/a/b/, /c')).toEqual(['/a/b', '/c']);
    expect(parseInject('')).toEqual([]);
    expect(() => parseInject('/h/a:/g/x,/h/b:/g/x')).toThrow(/twice/);
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
  });
});
