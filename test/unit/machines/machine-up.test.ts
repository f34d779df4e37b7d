import { describe, expect, it } from 'vitest';
import type { LaunchFile } from '../../../agent/src/backends/backend.js';
import { isWarmstartError, WarmstartError } from '../../../agent/src/errors.js';
import { CACHE_PROPERTIES, cacheImageName, cacheList, cachePrune } from '../../../agent/src/machines/cache.js';
import { machineUp, type PostLaunchContext } from '../../../agent/src/machines/machine-up.js';
import { hostSpecificsHook, MACHINE_STATE_FILE } from '../../../agent/src/machines/post-launch.js';
import { hostGitIdentity } from '../../../agent/src/machines/host-git-identity.js';
import { FakeBackend } from './fake-backend.js';

const script = { path: 'provision.sh', content: Buffer.from('echo hi > /provisioned\n') };
const files = [{ path: '/etc/app.conf', content: Buffer.from([1, 2, 3]) }];

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => null,
    (e: unknown) => e,
  );
}

describe('machineUp control flow (fake backend)', () => {
  it('miss: launches the base, copies files, runs the script, captures, then runs the hook; hit: launches the cache image only', async () => {
    const b = new FakeBackend(['base']);
    const seen: PostLaunchContext[] = [];
    const postLaunch = async (ctx: PostLaunchContext): Promise<void> => {
      seen.push(ctx);
      // the hook runs after the capture: its per-machine writes never reach the cache image
      if (ctx.cache === 'miss') expect(b.calls.at(-1)?.op).toBe('capture');
    };
    const first = await machineUp(b, { name: 'm1', base: 'base', provision: script, files, postLaunch });
    expect(first).toMatchObject({ instance: 'm1', cache: 'miss' });
    expect(Object.keys(first).sort()).toEqual(['cache', 'instance', 'key', 'ms']);
    const image = cacheImageName(first.key);
    expect(image).toBe(`warmstart-cache-${first.key.slice(0, 16)}`);
    expect(b.calls.map((c) => c.op)).toEqual(['launch', 'exec', 'exec', 'exec', 'capture']);
    expect(b.calls[0]).toMatchObject({ image: 'base', machine: 'm1' });
    const [copy, run, probe] = [b.calls[1], b.calls[2], b.calls[3]];
    // whether git is there, asked once on a miss for the cache image's properties
    expect(probe?.op === 'exec' && probe.argv.join(' ')).toContain('command -v git');
    expect(copy?.op === 'exec' && copy.argv.at(-1)).toBe('/etc/app.conf');
    expect(copy?.op === 'exec' && Buffer.from(copy.input ?? '', 'base64')).toEqual(Buffer.from([1, 2, 3]));
    expect(run?.op === 'exec' && Buffer.from(run.input ?? '', 'base64').toString()).toBe('echo hi > /provisioned\n');
    expect(b.calls[4]).toMatchObject({
      image,
      properties: { [CACHE_PROPERTIES.key]: first.key, [CACHE_PROPERTIES.base]: 'base', [CACHE_PROPERTIES.backend]: 'incus' },
    });
    expect(b.machines.get('m1')?.state).toBe('running'); // the miss keeps its machine

    b.calls.length = 0;
    const second = await machineUp(b, { name: 'm2', base: 'base', provision: script, files, postLaunch });
    expect(second).toMatchObject({ instance: 'm2', cache: 'hit', key: first.key });
    expect(b.calls).toEqual([{ op: 'launch', image, machine: 'm2' }]);
    expect(seen.map((s) => [s.instance, s.cache, s.key])).toEqual([
      ['m1', 'miss', first.key],
      ['m2', 'hit', first.key],
    ]);
  });

  it('a failing provision script is a typed error, removes the machine and caches nothing', async () => {
    const b = new FakeBackend(['base']);
    b.onExec = (_m, argv) =>
      argv.join(' ').includes('mktemp') ? { exitCode: 3, stdout: '', stderr: 'E: no such package\n' } : { exitCode: 0, stdout: '', stderr: '' };
    const err = await failure(machineUp(b, { name: 'm1', base: 'base', provision: script }));
    expect(isWarmstartError(err, 'BACKEND_ERROR')).toBe(true);
    expect((err as Error).message).toContain('exited with 3');
    expect(isWarmstartError(err) && err.detail).toContain('no such package');
    expect(b.machines.has('m1')).toBe(false);
    expect(await cacheList(b)).toEqual([]);
  });

  it('a failing post-launch hook removes the machine but keeps a sound cache image', async () => {
    const b = new FakeBackend(['base']);
    const err = await failure(machineUp(b, { name: 'm1', base: 'base', provision: script, postLaunch: () => Promise.reject(new Error('hook')) }));
    expect((err as Error).message).toBe('hook');
    expect(b.machines.has('m1')).toBe(false);
    expect((await cacheList(b)).length).toBe(1);
  });

  it('never removes a machine it did not create (name taken, base missing)', async () => {
    const b = new FakeBackend(['base']);
    await b.launch('base', 'taken');
    expect(isWarmstartError(await failure(machineUp(b, { name: 'taken', base: 'base' })), 'BACKEND_PRECONDITION')).toBe(true);
    expect(b.machines.has('taken')).toBe(true);
    expect(isWarmstartError(await failure(machineUp(b, { name: 'x', base: 'nope' })), 'IMAGE_NOT_FOUND')).toBe(true);
    expect(b.calls.filter((c) => c.op === 'remove')).toEqual([]);
  });

  it('a concurrent miss that captured the same key first is as good as our own capture', async () => {
    const b = new FakeBackend(['base']);
    const key = (await machineUp(b, { name: 'm1', base: 'base', provision: script })).key;
    // simulate the race: the image appears between our cache check and our capture
    const image = cacheImageName(key);
    b.images.delete(image);
    b.onExec = (_m, argv) => {
      if (argv.join(' ').includes('mktemp')) b.images.set(image, { name: image, properties: {}, createdAt: null });
      return { exitCode: 0, stdout: '', stderr: '' };
    };
    expect(await machineUp(b, { name: 'm2', base: 'base', provision: script })).toMatchObject({ cache: 'miss', key });
    expect(b.machines.get('m2')?.state).toBe('running');
  });

  it('reports ms from the injected clock', async () => {
    const b = new FakeBackend(['base']);
    let t = 1000;
    const now = (): number => (t += 21.4);
    expect((await machineUp(b, { name: 'm1', base: 'base', now })).ms).toBe(21);
  });
});

describe('hostSpecificsHook', () => {
  it('sets the git identity only where git exists and writes the state file', async () => {
    const b = new FakeBackend(['base']);
    const hook = hostSpecificsHook({ git: { name: 'Ada L', email: 'ada@example.org' }, now: () => new Date('2026-01-02T03:04:05Z') });
    const r = await machineUp(b, { name: 'm1', base: 'base', postLaunch: hook });
    const execs = b.calls.filter((c) => c.op === 'exec');
    // The git probe of the miss (for the cache image), then the hook: one round trip for all of it.
    expect(execs.length).toBe(2);
    const e = execs[1]!;
    expect(e.op === 'exec' && e.argv.slice(4)).toEqual([MACHINE_STATE_FILE, 'Ada L', 'ada@example.org']);
    expect(e.op === 'exec' && e.argv[2]).toContain('command -v git >/dev/null 2>&1 || exit 0');
    expect(JSON.parse((e.op === 'exec' && e.input) || '')).toEqual({
      instance: 'm1',
      key: r.key,
      cache: 'miss',
      backend: 'incus',
      base: 'base',
      launchedAt: '2026-01-02T03:04:05.000Z',
    });
  });

  it('on a hit from an image recorded without git, writes the state file through the file API and runs nothing; with git, runs the setup', async () => {
    class FileApiBackend extends FakeBackend {
      props = new Map<string, Record<string, string>>();
      files: { machine: string; path: string; content: string; mode: number }[] = [];
      override async captureImage(machine: string, image: string, properties: Record<string, string> = {}) {
        this.props.set(image, properties);
        return super.captureImage(machine, image, properties);
      }
      async imageInfo(image: string) {
        return (await this.imageExists(image)) ? { name: image, properties: this.props.get(image) ?? {}, createdAt: null } : null;
      }
      async writeFile(machine: string, path: string, content: Buffer, mode: number) {
        this.files.push({ machine, path, content: content.toString('utf8'), mode });
      }
    }
    for (const [answer, wantExecs] of [
      ['absent', 0],
      ['present', 1],
    ] as const) {
      const b = new FileApiBackend(['base']);
      b.onExec = (_m, argv) => ({
        exitCode: 0,
        stdout: argv.join(' ').includes('command -v git') && argv.join(' ').includes('echo present') ? `${answer}\n` : '',
        stderr: '',
      });
      const hook = hostSpecificsHook({ git: { name: 'Ada L', email: 'ada@example.org' } });
      const miss = await machineUp(b, { name: 'm1', base: 'base', postLaunch: hook });
      expect(b.props.get(cacheImageName(miss.key))?.[CACHE_PROPERTIES.git]).toBe(answer);
      b.calls.length = 0;
      b.files.length = 0;
      const hit = await machineUp(b, { name: 'm2', base: 'base', postLaunch: hook });
      expect(hit.cache).toBe('hit');
      expect(b.calls.filter((c) => c.op === 'exec').length, answer).toBe(wantExecs);
      if (answer === 'absent') {
        expect(b.files).toHaveLength(1);
        expect(b.files[0]).toMatchObject({ machine: 'm2', path: MACHINE_STATE_FILE, mode: 0o644 });
        expect(JSON.parse(b.files[0]!.content)).toMatchObject({ instance: 'm2', cache: 'hit', key: miss.key });
      } else {
        expect(b.files).toEqual([]);
      }
    }
  });

  it('with launch templates: the miss adds one per launch file before the capture; a hit hands the content to the launch and writes nothing after it', async () => {
    /** Models Incus/LXD image templates: a template added to a machine travels into images captured from it. */
    class TemplateBackend extends FakeBackend {
      props = new Map<string, Record<string, string>>();
      machineTemplates = new Map<string, string[]>();
      imageTemplates = new Map<string, string[]>();
      rendered = new Map<string, Map<string, string>>();
      files: string[] = [];
      order: string[] = [];
      override async launch(image: string, machine: string, options: { files?: LaunchFile[] } = {}) {
        const m = await super.launch(image, machine);
        const templates = this.imageTemplates.get(image) ?? [];
        // a file whose path has no template in the image is not written: the caller must not count it
        const out = new Map((options.files ?? []).filter((f) => templates.includes(f.path)).map((f) => [f.path, f.content]));
        this.rendered.set(machine, out);
        this.machineTemplates.set(machine, [...templates]);
        return { ...m, filesWritten: [...out.keys()] };
      }
      async addLaunchTemplate(machine: string, path: string) {
        if (!this.machines.has(machine)) throw new WarmstartError('MACHINE_NOT_FOUND', machine);
        this.order.push(`template ${path}`);
        this.machineTemplates.set(machine, [...(this.machineTemplates.get(machine) ?? []), path]);
      }
      override async captureImage(machine: string, image: string, properties: Record<string, string> = {}) {
        this.order.push('capture');
        this.props.set(image, properties);
        this.imageTemplates.set(image, [...(this.machineTemplates.get(machine) ?? [])]);
        return super.captureImage(machine, image, properties);
      }
      async imageInfo(image: string) {
        return (await this.imageExists(image)) ? { name: image, properties: this.props.get(image) ?? {}, createdAt: null } : null;
      }
      async writeFile(machine: string, path: string) {
        this.files.push(`${machine}:${path}`);
      }
    }
    for (const [answer, wantExecs] of [
      ['absent', 0],
      ['present', 1],
    ] as const) {
      const b = new TemplateBackend(['base']);
      b.onExec = (_m, argv) => ({ exitCode: 0, stdout: argv.join(' ').includes('echo present') ? `${answer}\n` : '', stderr: '' });
      const hook = hostSpecificsHook({ git: { name: 'Ada L', email: 'ada@example.org' }, now: () => new Date('2026-01-02T03:04:05Z') });
      const miss = await machineUp(b, { name: 'm1', base: 'base', postLaunch: hook });
      expect(b.order).toEqual([`template ${MACHINE_STATE_FILE}`, 'capture']);
      expect(b.props.get(cacheImageName(miss.key))?.[CACHE_PROPERTIES.launchFiles]).toBe(MACHINE_STATE_FILE);
      // the miss's own launch had no template: its state file went the usual way
      expect(b.rendered.get('m1')?.size).toBe(0);
      b.calls.length = 0;
      b.files.length = 0;
      const hit = await machineUp(b, { name: 'm2', base: 'base', postLaunch: hook });
      expect(hit.cache).toBe('hit');
      expect(JSON.parse(b.rendered.get('m2')?.get(MACHINE_STATE_FILE) ?? '')).toEqual({
        instance: 'm2',
        key: miss.key,
        cache: 'hit',
        backend: 'incus',
        base: 'base',
        launchedAt: '2026-01-02T03:04:05.000Z',
      });
      expect(b.files, answer).toEqual([]);
      const execs = b.calls.filter((c) => c.op === 'exec');
      expect(execs.length, answer).toBe(wantExecs);
      // with git: the identity only; the state file argument is empty and nothing arrives on stdin
      if (wantExecs) expect(execs[0]?.op === 'exec' && [execs[0].argv.slice(4), execs[0].input]).toEqual([['', 'Ada L', 'ada@example.org'], '']);
    }
  });

  it('fails typed when the machine refuses the setup', async () => {
    const b = new FakeBackend(['base']);
    b.onExec = () => ({ exitCode: 1, stdout: '', stderr: 'read-only file system' });
    const err = await failure(machineUp(b, { name: 'm1', base: 'base', postLaunch: hostSpecificsHook() }));
    expect(isWarmstartError(err, 'BACKEND_ERROR')).toBe(true);
    expect(isWarmstartError(err) && err.detail).toBe('read-only file system');
    expect(b.machines.has('m1')).toBe(false);
  });

  it('reads the host identity only when both parts are set', async () => {
    expect(await hostGitIdentity(async (k) => (k === 'user.name' ? 'Ada' : 'ada@x'))).toEqual({ name: 'Ada', email: 'ada@x' });
    expect(await hostGitIdentity(async (k) => (k === 'user.name' ? 'Ada' : null))).toBeNull();
  });
});

describe('cache list and prune', () => {
  it('lists only cache images, newest first, and prunes beyond keep', async () => {
    const b = new FakeBackend(['base']);
    for (const n of ['a', 'b', 'c']) {
      await machineUp(b, { name: `m-${n}`, base: 'base', provision: { path: 's', content: Buffer.from(n) } });
    }
    const listed = await cacheList(b);
    expect(listed.map((i) => i.name).every((n) => n.startsWith('warmstart-cache-'))).toBe(true);
    expect(listed.length).toBe(3);
    const r = await cachePrune(b, { keep: 1 });
    expect(r.kept).toEqual([listed[0]?.name]);
    expect(r.removed).toEqual(listed.slice(1).map((i) => i.name));
    expect(b.images.has('base')).toBe(true);
    expect((await cachePrune(b)).removed).toEqual([listed[0]?.name]);
    expect(isWarmstartError(await failure(cachePrune(b, { keep: -1 })), 'INVALID_ARGUMENT')).toBe(true);
  });
});
