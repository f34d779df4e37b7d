import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

/**
 * A disk that fills up: while `full` is set, a file opened for writing (or
 * appended to) takes half of what it is given and then fails with ENOSPC, as a
 * write on a full tmpfs does. Everything else is the real file system.
 */
const disk = vi.hoisted(() => ({ full: false, appends: 0 }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const open: typeof real.open = async (...args: Parameters<typeof real.open>) => {
    const fh = await real.open(...args);
    if (!disk.full) return fh;
    return Object.assign(Object.create(fh) as typeof fh, {
      writeFile: async (data: string) => {
        await fh.writeFile(data.slice(0, Math.floor(data.length / 2)));
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
      },
      close: () => fh.close(),
      sync: () => fh.sync(),
    });
  };
  const appendFile: typeof real.appendFile = async (path, data, options) => {
    disk.appends++;
    if (!disk.full) return real.appendFile(path, data, options);
    const bytes = Buffer.from(data as string | Uint8Array);
    await real.appendFile(path, bytes.subarray(0, Math.floor(bytes.length / 2)), options);
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
  };
  return { ...real, open, appendFile, default: { ...real, open, appendFile } };
});

const { writeFileAtomic } = await import('../../../agent/src/state/atomic-file.js');
const { WorkspaceStore } = await import('../../../agent/src/state/workspace-store.js');
type WorkspaceRecord = import('../../../agent/src/state/workspace-store.js').WorkspaceRecord;

let dir: string;
beforeEach(async () => {
  disk.full = false;
  dir = await mkdtemp(join(tmpdir(), 'warmstart-store-'));
});
afterEach(async () => {
  disk.full = false;
  await rm(dir, { recursive: true, force: true });
});

const record = (id: string, status: WorkspaceRecord['status'], extra: Partial<WorkspaceRecord> = {}): WorkspaceRecord => ({
  id,
  repository: 'https://example.test/acme/app.git',
  configName: null,
  lightweight: false,
  status,
  result: null,
  createdAt: '2024-01-01T00:00:00.000Z',
  updatedAt: new Date().toISOString(),
  ...extra,
});

async function temporaries(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true, recursive: true })) if (e.isFile() && e.name.endsWith('.tmp')) out.push(e.name);
  return out;
}

describe('writeFileAtomic on a full disk', () => {
  it('fails with STATE_WRITE_FAILED, leaves the old content whole and no temporary file', async () => {
    const path = join(dir, 'a', 'workspace.json');
    await writeFileAtomic(path, '{"status":"ready"}\n');
    disk.full = true;
    const err = await writeFileAtomic(path, `{"status":"deleting","pad":"${'x'.repeat(1000)}"}\n`).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'STATE_WRITE_FAILED' });
    expect((err as { detail?: string }).detail).toMatch(/ENOSPC/);
    expect(await readFile(path, 'utf8')).toBe('{"status":"ready"}\n');
    expect(await temporaries(dir)).toEqual([]);
    disk.full = false;
    await writeFileAtomic(path, '{"status":"failed"}\n');
    expect(await readFile(path, 'utf8')).toBe('{"status":"failed"}\n');
  });

  it('two writes of one file at once do not share a temporary', async () => {
    const path = join(dir, 'b', 'workspace.json');
    await Promise.all(Array.from({ length: 20 }, (_, i) => writeFileAtomic(path, `{"n":${i}}\n`)));
    expect(JSON.parse(await readFile(path, 'utf8'))).toHaveProperty('n');
    expect(await temporaries(dir)).toEqual([]);
  });
});

describe('WorkspaceStore when a record cannot be written', () => {
  it('a plain save throws and changes nothing: the disk and load() keep the old record', async () => {
    const store = new WorkspaceStore(dir);
    await store.save(record('ws', 'ready'));
    disk.full = true;
    await expect(store.save(record('ws', 'deleting'))).rejects.toMatchObject({ code: 'STATE_WRITE_FAILED' });
    expect((await store.load('ws'))?.status).toBe('ready');
    expect(store.unsavedCount()).toBe(0);
  });

  it('keepIfUnwritten: load and list serve the record from memory; flushUnsaved writes it once the disk has room', async () => {
    const store = new WorkspaceStore(dir);
    await store.save(record('ws', 'creating'));
    disk.full = true;
    const failed = record('ws', 'failed', { error: { code: 'STATE_WRITE_FAILED', message: 'disk full' } });
    await expect(store.save(failed, { keepIfUnwritten: true })).rejects.toMatchObject({ code: 'STATE_WRITE_FAILED' });
    await expect(store.save(record('new', 'failed'), { keepIfUnwritten: true })).rejects.toMatchObject({ code: 'STATE_WRITE_FAILED' });
    expect(await store.load('ws')).toEqual(failed);
    expect((await store.list()).map((r) => [r.id, r.status]).sort()).toEqual([
      ['new', 'failed'],
      ['ws', 'failed'],
    ]);
    // The disk still has the last record that could be written, whole.
    expect(JSON.parse(await readFile(join(dir, 'workspaces', 'ws', 'workspace.json'), 'utf8')).status).toBe('creating');
    expect(await store.flushUnsaved()).toBe(2);
    expect(await temporaries(dir)).toEqual([]);

    disk.full = false;
    expect(await store.flushUnsaved()).toBe(0);
    expect(store.unsavedCount()).toBe(0);
    expect(JSON.parse(await readFile(join(dir, 'workspaces', 'ws', 'workspace.json'), 'utf8'))).toEqual(failed);
    expect((await new WorkspaceStore(dir).load('new'))?.status).toBe('failed');
  });

  it('a later successful save wins over the kept record; remove forgets it', async () => {
    const store = new WorkspaceStore(dir);
    disk.full = true;
    await store.save(record('a', 'failed'), { keepIfUnwritten: true }).catch(() => undefined);
    await store.save(record('b', 'failed'), { keepIfUnwritten: true }).catch(() => undefined);
    expect(store.unsavedCount()).toBe(2);
    disk.full = false;
    await store.save(record('a', 'queued'));
    expect(store.unsavedCount()).toBe(1);
    expect((await store.load('a'))?.status).toBe('queued');
    await store.remove('b');
    expect(store.unsavedCount()).toBe(0);
    expect(await store.load('b')).toBeNull();
    expect(await store.flushUnsaved()).toBe(0);
    expect(await readdir(join(dir, 'workspaces'))).toEqual(['a']);
  });

  it('sweepTemporaries removes the temporaries a killed writer left, and nothing else', async () => {
    const store = new WorkspaceStore(dir);
    await store.save(record('ws', 'ready'));
    const wsDir = join(dir, 'workspaces', 'ws');
    await writeFile(join(wsDir, 'workspace.json.123.456.abcd.tmp'), '{"stat');
    await writeFile(join(wsDir, 'events.ndjson'), '{}\n');
    expect(await store.sweepTemporaries()).toBe(1);
    expect((await readdir(wsDir)).sort()).toEqual(['events.ndjson', 'workspace.json']);
    expect(await new WorkspaceStore(join(dir, 'nothing-here')).sweepTemporaries()).toBe(0);
  });

  it('the event log keeps whole lines only: a line the full disk cut short is removed, later ones land', async () => {
    const store = new WorkspaceStore(dir);
    const lost: string[] = [];
    const log = store.eventLog('ws', {
      onLost: (e, err) => lost.push(`${'text' in e ? (e.text ?? '').slice(0, 3) : e.type}: ${(err as NodeJS.ErrnoException).code}`),
    });
    const ev = (text: string) => ({ ts: '2024-01-01T00:00:00.000Z', workspaceId: 'ws', type: 'log' as const, text });
    log.emit(ev('one'));
    await log.flush();
    disk.full = true;
    log.emit(ev(`two ${'x'.repeat(200)}`));
    await log.flush();
    disk.full = false;
    log.emit(ev('three'));
    await log.flush();
    const raw = await readFile(join(dir, 'workspaces', 'ws', 'events.ndjson'), 'utf8');
    expect(
      raw
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { text: string }).text),
    ).toEqual(['one', 'three']);
    expect((await store.readEvents('ws')).map((e) => ('text' in e ? e.text : undefined))).toEqual(['one', 'three']);
    // The lost one was said, once, with why.
    expect(lost).toEqual(['two: ENOSPC']);
    // A second log of the same workspace (the next job) appends after what is there.
    const next = store.eventLog('ws');
    next.emit(ev('four'));
    await next.flush();
    expect((await store.readEvents('ws')).map((e) => ('text' in e ? e.text : undefined))).toEqual(['one', 'three', 'four']);
  });

  it('the event log writes what was emitted together in one append, in order, and before a record saved after it', async () => {
    const store = new WorkspaceStore(dir);
    const log = store.eventLog('ws');
    const ev = (i: number) => ({ ts: '2024-01-01T00:00:00.000Z', workspaceId: 'ws', type: 'log' as const, text: `line ${i}` });
    disk.appends = 0;
    for (let i = 0; i < 500; i++) log.emit(ev(i));
    await store.save(record('ws', 'ready'));
    // one append for the 500 lines, not one each; all there once the record is
    expect(disk.appends).toBe(1);
    const texts = (await store.readEvents('ws')).map((e) => ('text' in e ? e.text : undefined));
    expect(texts).toEqual(Array.from({ length: 500 }, (_, i) => `line ${i}`));
    // emitted while a write is under way: the next append, after it
    log.emit(ev(500));
    await new Promise((resolve) => setImmediate(resolve));
    log.emit(ev(501));
    log.emit(ev(502));
    await log.flush();
    expect(disk.appends).toBeLessThanOrEqual(3);
    expect((await store.readEvents('ws')).slice(-3).map((e) => ('text' in e ? e.text : undefined))).toEqual(['line 500', 'line 501', 'line 502']);
  });

  it('list leaves out a record it cannot read and says which, with why', async () => {
    const store = new WorkspaceStore(dir);
    for (const id of ['good', 'bad']) {
      await store.save({
        id,
        repository: `octo/${id}`,
        configName: null,
        lightweight: false,
        status: 'ready',
        result: null,
        createdAt: 'x',
        updatedAt: 'x',
      });
    }
    await writeFile(join(dir, 'workspaces', 'bad', 'workspace.json'), '{"id": "bad", trunc');
    const unreadable: string[] = [];
    const ids = (await store.list((id, err) => unreadable.push(`${id}: ${(err as Error).name}`))).map((r) => r.id);
    expect(ids).toEqual(['good']);
    expect(unreadable).toEqual(['bad: SyntaxError']);
  });
});
