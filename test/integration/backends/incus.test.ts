import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IncusBackend } from '../../../agent/src/backends/incus.js';
import { resolveSocket, unixRequest } from '../../../agent/src/backends/incus-http.js';
import { isWarmstartError } from '../../../agent/src/errors.js';
import { snapshotBackendContract } from '../../contract/snapshot-backend.contract.js';
import { loadLxdTestbed, lxdRunPrefix } from '../machines/lxd-testbed.js';

/** Removes only what a run made: every name starts with its prefix. */
async function removeRun(backend: IncusBackend, prefix: string): Promise<void> {
  for (const m of await backend.listMachines()) if (m.name.startsWith(`${prefix}-`)) await backend.removeMachine(m.name);
  for (const i of await backend.listImages(`${prefix}-`)) await backend.removeImage(i.name);
}

async function codeOf(p: Promise<unknown>): Promise<string | null> {
  return p.then(
    () => null,
    (e: unknown) => (isWarmstartError(e) ? e.code : String(e)),
  );
}

snapshotBackendContract('incus on real LXD', async () => {
  const lxd = loadLxdTestbed();
  const backend = new IncusBackend({ socketPath: lxd.socket });
  const prefix = lxdRunPrefix('wsinc');
  return { backend, baseImage: lxd.baseImage, prefix, snapshots: true, cleanup: () => removeRun(backend, prefix) };
});

describe('incus backend on real LXD: what the contract does not cover', () => {
  const prefix = lxdRunPrefix('wsinx');
  const m = (n: string): string => `${prefix}-${n}`;
  let lxd: ReturnType<typeof loadLxdTestbed>;
  let backend: IncusBackend;
  let dir: string;

  beforeAll(async () => {
    lxd = loadLxdTestbed();
    backend = new IncusBackend({ socketPath: lxd.socket });
    dir = await mkdtemp(join(tmpdir(), 'wsinx-'));
    await backend.launch(lxd.baseImage, m('a'));
  });
  afterAll(async () => {
    if (backend) await removeRun(backend, prefix);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('finds the daemon as the incus client does, skipping a socket path that does not answer', async () => {
    const stale = join(dir, 'stale.socket');
    await writeFile(stale, '');
    const found = new IncusBackend({ env: { INCUS_SOCKET: stale } });
    expect((await found.listMachines()).map((x) => x.name)).toContain(m('a'));
    expect(await resolveSocket([join(dir, 'missing.socket'), stale, lxd.socket], 2000)).toBe(lxd.socket);
    const none = await resolveSocket([join(dir, 'missing.socket'), stale], 2000).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isWarmstartError(none, 'BACKEND_UNAVAILABLE')).toBe(true);
    expect(isWarmstartError(none) && none.detail).toContain('missing.socket (missing)');
    expect(await codeOf(new IncusBackend({ socketPath: join(dir, 'missing.socket') }).listMachines())).toBe('BACKEND_UNAVAILABLE');
  });

  it('exec: stdin, exit codes, stderr, a command that does not exist', async () => {
    const r = await backend.exec(m('a'), ['sh', '-c', 'wc -c; cat >&2'], { input: 'héllo\n' });
    expect(r).toEqual({ exitCode: 0, stdout: expect.stringMatching(/^\s*7\s*$/), stderr: '' });
    const echo = await backend.exec(m('a'), ['cat'], { input: 'line1\nline2' });
    expect(echo.stdout).toBe('line1\nline2');
    const err = await backend.exec(m('a'), ['sh', '-c', 'echo oops >&2; exit 3']);
    expect(err).toEqual({ exitCode: 3, stdout: '', stderr: 'oops\n' });
    const missing = await backend.exec(m('a'), ['no-such-command']);
    expect(missing.exitCode).toBe(127);
    expect(missing.stderr).not.toBe('');
    expect((await backend.exec(m('a'), ['ls', '-A', '/tmp'])).stdout).toBe(''); // the stdin files are gone
  });

  it('refuses taken names, bad names and missing things with typed errors', async () => {
    expect(await codeOf(backend.launch(lxd.baseImage, m('a')))).toBe('BACKEND_PRECONDITION');
    expect(await codeOf(backend.launch(lxd.baseImage, 'Bad_Name'))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(backend.launch(lxd.baseImage, '1abc'))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(backend.captureImage(m('nope'), m('img')))).toBe('MACHINE_NOT_FOUND');
    expect(await codeOf(backend.removeMachine(m('nope')))).toBe('MACHINE_NOT_FOUND');
    expect(await codeOf(backend.removeImage(m('nope')))).toBe('IMAGE_NOT_FOUND');
    expect(await codeOf(backend.snapshot(m('nope'), 's'))).toBe('MACHINE_NOT_FOUND');
    expect(await codeOf(backend.listSnapshots(m('nope')))).toBe('MACHINE_NOT_FOUND');
    expect(await codeOf(backend.restore(m('nope'), 's'))).toBe('MACHINE_NOT_FOUND');
    expect(await codeOf(backend.deleteSnapshot(m('a'), 'nope'))).toBe('SNAPSHOT_NOT_FOUND');
    expect(await codeOf(backend.deleteSnapshot(m('nope'), 'nope'))).toBe('MACHINE_NOT_FOUND');
    await backend.captureImage(m('a'), m('taken'));
    expect(await codeOf(backend.captureImage(m('a'), m('taken')))).toBe('BACKEND_PRECONDITION');
  });

  it('captures a running machine without stopping it, leaving no snapshot behind', async () => {
    await backend.exec(m('a'), ['sh', '-c', 'sleep 600 >/dev/null 2>&1 &']);
    const before = (await backend.exec(m('a'), ['pidof', 'sleep'])).stdout.trim();
    const img = await backend.captureImage(m('a'), m('running'), { 'dev.warmstart.test': 'yes' });
    expect(img).toMatchObject({ name: m('running'), properties: { 'dev.warmstart.test': 'yes' } });
    expect((await backend.exec(m('a'), ['pidof', 'sleep'])).stdout.trim()).toBe(before);
    expect(await backend.listSnapshots(m('a'))).toEqual([]);
    expect((await backend.listImages(m('running'))).map((i) => i.properties)).toEqual([{ 'dev.warmstart.test': 'yes' }]);
  });

  it('captures a stopped machine twice under two names; removing one name keeps the other', async () => {
    await backend.launch(lxd.baseImage, m('s'));
    await backend.exec(m('s'), ['sh', '-c', 'echo stopped > /marker']);
    await execa('lxc', ['stop', '--force', m('s')], { stdin: 'ignore' });
    expect((await backend.listMachines()).find((x) => x.name === m('s'))?.state).toBe('stopped');
    expect(await codeOf(backend.exec(m('s'), ['true']))).toBe('BACKEND_PRECONDITION');
    expect(await codeOf(backend.exec(m('s'), ['cat'], { input: 'x' }))).toBe('BACKEND_PRECONDITION');
    await backend.captureImage(m('s'), m('s1'));
    await backend.captureImage(m('s'), m('s2'));
    // The fingerprint is a hash of the image tarball, whose metadata carries
    // the publish time: two publishes in the same second give the same
    // fingerprint ("already exists" in LXD, and the backend aliases the
    // existing image), in different seconds two images. Either way each name
    // resolves, and removing one must not take the other's image.
    const target = async (alias: string): Promise<string> => {
      const res = await unixRequest(lxd.socket, { method: 'GET', path: `/1.0/images/aliases/${alias}`, timeoutMs: 5000 });
      return (JSON.parse(res.body.toString()) as { metadata: { target: string } }).metadata.target;
    };
    expect(await target(m('s1'))).toMatch(/^[0-9a-f]{64}$/);
    expect(await target(m('s2'))).toMatch(/^[0-9a-f]{64}$/);
    await backend.removeImage(m('s1'));
    expect(await backend.imageExists(m('s1'))).toBe(false);
    expect(await backend.imageExists(m('s2'))).toBe(true);
    await backend.launch(m('s2'), m('s-copy'));
    expect((await backend.exec(m('s-copy'), ['cat', '/marker'])).stdout).toBe('stopped\n');
    expect((await backend.exec(m('s-copy'), ['ls', '-A', '/tmp'])).stdout).toBe(''); // the refused exec's stdin file went too
    await backend.removeMachine(m('s')); // a stopped machine is removed without a stop
  });
});
