/**
 * ResourceJobs (the jobs of POST /v1/machines and POST /v1/images) over a
 * real directory: a job is on disk before submit resolves, its events are
 * numbered from 1 and followed live, a failure keeps its stable code, a
 * job running when the agent stopped is `failed` AGENT_RESTARTED at the
 * next load, a refused first write leaves nothing, old jobs are forgotten.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JobEventSchema, JobView, type JobEvent, type MachineUpResult } from '../../../shared/src/api.js';
import { WarmstartError } from '../../../agent/src/errors.js';
import { ResourceJobStore } from '../../../agent/src/jobs/resource-job-store.js';
import { jobVisible, ResourceJobs, type JobSpec } from '../../../agent/src/jobs/resource-jobs.js';

const logger = pino({ enabled: false });
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ws-resource-jobs-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const RESULT: MachineUpResult = { instance: 'dev-1', cache: 'miss', key: 'k'.repeat(64), ms: 5 };

/** A gate a job waits on until the test opens it. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

function machineJob(run: JobSpec<'machine'>['run'], name = 'dev-1'): JobSpec<'machine'> {
  return {
    kind: 'machine',
    target: `machine ${name} on incus`,
    request: { backend: 'incus', name, base: 'base', snapshot: null, files: 1, provision: true },
    run,
  };
}

async function all(jobs: ResourceJobs, id: string, after = 0): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  for await (const e of jobs.events(id, after, new AbortController().signal)) out.push(JobEventSchema.parse(e));
  return out;
}

async function onDisk(id: string): Promise<{ view: JobView; events: JobEvent[] }> {
  return JSON.parse(await readFile(join(dir, `${id}.json`), 'utf8')) as { view: JobView; events: JobEvent[] };
}

describe('ResourceJobs', () => {
  it('records the job before submit resolves, runs it, follows its events live and ends done with the result', async () => {
    const jobs = new ResourceJobs({ store: new ResourceJobStore(dir), logger });
    const held = gate();
    const view = await jobs.submit(
      machineJob(async (p) => {
        await p.phase('launch', async () => undefined);
        p.note('cache miss');
        await held.wait;
        return RESULT;
      }),
    );
    expect(JobView.parse(view)).toMatchObject({ kind: 'machine', status: 'running', result: null, error: null, finishedAt: null });
    expect((await onDisk(view.id)).view.status).toBe('running');

    const followed = all(jobs, view.id); // follows until the end
    await new Promise((r) => setTimeout(r, 20));
    expect(jobs.get(view.id)?.status).toBe('running');
    held.open();
    const events = await followed;
    expect(events.map((e) => `${e.seq} ${e.type}${'phase' in e && e.phase ? ` ${e.phase}` : ''}${'status' in e ? ` ${e.status}` : ''}`)).toEqual([
      '1 status running',
      '2 phase-start launch',
      '3 phase-end launch ok',
      '4 note',
      '5 status done',
    ]);
    expect(events.every((e) => e.jobId === view.id)).toBe(true);
    const done = jobs.get(view.id)!;
    expect(done).toMatchObject({ status: 'done', result: RESULT, error: null });
    expect(done.finishedAt).not.toBeNull();
    expect(await jobs.drain(1_000)).toBe(true); // the last record write has settled
    expect(await onDisk(view.id)).toEqual({ version: 1, view: done, events });
    // resuming after seq 3 gives only what came after it
    expect((await all(jobs, view.id, 3)).map((e) => e.seq)).toEqual([4, 5]);
  });

  it('a failure is `failed` with the error in the API shape, the phase that threw marked failed; an unknown error says nothing more than INTERNAL', async () => {
    const jobs = new ResourceJobs({ store: new ResourceJobStore(dir), logger, scrub: (t) => t.replaceAll('s3cret-token', '***') });
    const a = await jobs.submit(
      machineJob(async (p) =>
        p.phase('provision', async () => {
          throw new WarmstartError('BACKEND_ERROR', 'provision script exited with 1', { detail: 'curl: token s3cret-token refused' });
        }),
      ),
    );
    const events = await all(jobs, a.id);
    expect(events.at(-2)).toMatchObject({ type: 'phase-end', phase: 'provision', status: 'failed' });
    expect(events.at(-1)).toMatchObject({ type: 'status', status: 'failed', code: 'BACKEND_ERROR', text: 'provision script exited with 1' });
    expect(jobs.get(a.id)).toMatchObject({
      status: 'failed',
      result: null,
      error: { code: 'BACKEND_ERROR', message: 'provision script exited with 1', detail: 'curl: token *** refused' },
    });
    await jobs.drain(1_000);
    expect(await readFile(join(dir, `${a.id}.json`), 'utf8')).not.toContain('s3cret-token');

    const b = await jobs.submit(
      machineJob(async () => {
        throw new TypeError('undefined is not a function at /srv/agent/x.js:1');
      }, 'dev-2'),
    );
    await all(jobs, b.id);
    expect(jobs.get(b.id)?.error).toEqual({ code: 'INTERNAL', message: 'the job failed unexpectedly' });
  });

  it('readers see an event, and the view, only once the record holding it is written: a seq a follower saw names the same event after a restart', async () => {
    const disk = gate();
    let writes = 0;
    class SlowDisk extends ResourceJobStore {
      override async write(job: Parameters<ResourceJobStore['write']>[0]): Promise<void> {
        if (++writes > 1) await disk.wait; // the record of the 202 goes out; every later write waits
        return super.write(job);
      }
    }
    const jobs = new ResourceJobs({ store: new SlowDisk(dir), logger });
    const work = gate();
    const view = await jobs.submit(machineJob(async (p) => p.phase('launch', async () => (await work.wait, RESULT))));
    const seen: string[] = [];
    const controller = new AbortController();
    const following = (async () => {
      for await (const e of jobs.events(view.id, 0, controller.signal)) seen.push(`${e.seq} ${e.type}`);
    })();
    await new Promise((r) => setTimeout(r, 30));
    expect(seen).toEqual(['1 status']); // phase-start is stamped, but not yet on disk
    expect((await onDisk(view.id)).events.map((e) => e.seq)).toEqual([1]);
    disk.open();
    for (let i = 0; i < 200 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(seen).toEqual(['1 status', '2 phase-start']);
    expect((await onDisk(view.id)).events.map((e) => e.seq)).toEqual([1, 2]);
    work.open();
    await following;
    expect(seen.at(-1)).toBe('4 status');
    expect(jobs.get(view.id)?.status).toBe('done');
  });

  it('one job per target at a time: a second is refused with BACKEND_PRECONDITION until the first ends', async () => {
    const jobs = new ResourceJobs({ store: null, logger });
    const held = gate();
    const first = await jobs.submit(machineJob(async () => (await held.wait, RESULT)));
    await expect(jobs.submit(machineJob(async () => RESULT))).rejects.toMatchObject({ code: 'BACKEND_PRECONDITION' });
    expect((await jobs.submit(machineJob(async () => RESULT, 'dev-2'))).status).toBe('running');
    held.open();
    await all(jobs, first.id);
    expect((await jobs.submit(machineJob(async () => RESULT))).status).toBe('running');
  });

  it('a job running when the agent stopped is failed AGENT_RESTARTED at the next load, with a last event; finished ones stay as they were', async () => {
    const before = new ResourceJobs({ store: new ResourceJobStore(dir), logger });
    const finished = await before.submit(machineJob(async () => RESULT, 'dev-0'));
    await all(before, finished.id);
    const running = await before.submit(machineJob(() => new Promise<MachineUpResult>(() => undefined))); // never ends: the agent "dies"
    await new Promise((r) => setTimeout(r, 20));
    expect((await onDisk(running.id)).view.status).toBe('running');

    const after = new ResourceJobs({ store: new ResourceJobStore(dir), logger });
    expect(await after.load()).toEqual([running.id]);
    const view = after.get(running.id)!;
    expect(view).toMatchObject({ status: 'failed', error: { code: 'AGENT_RESTARTED' } });
    expect(view.error?.message).toContain('machine dev-1 on incus');
    const events = await all(after, running.id);
    expect(events.at(-1)).toMatchObject({ type: 'status', status: 'failed', code: 'AGENT_RESTARTED' });
    expect((await onDisk(running.id)).view.status).toBe('failed');
    expect(after.get(finished.id)).toEqual(before.get(finished.id));
    // the interrupted target is free again
    expect((await after.submit(machineJob(async () => RESULT))).status).toBe('running');
  });

  it('a record the disk refuses: STATE_WRITE_FAILED, nothing kept or started, the target free; an unreadable file is left out', async () => {
    const blocked = join(dir, 'not-a-dir');
    await writeFile(blocked, 'a file where the directory should be');
    const jobs = new ResourceJobs({ store: new ResourceJobStore(blocked), logger });
    let ran = false;
    await expect(
      jobs.submit(
        machineJob(async () => {
          ran = true;
          return RESULT;
        }),
      ),
    ).rejects.toMatchObject({ code: 'STATE_WRITE_FAILED' });
    expect(ran).toBe(false);
    expect(jobs.running()).toBe(0);

    const store = new ResourceJobStore(join(dir, 'jobs'));
    const ok = new ResourceJobs({ store, logger });
    const kept = await ok.submit(machineJob(async () => RESULT));
    await all(ok, kept.id);
    await writeFile(join(dir, 'jobs', '00000000-0000-4000-8000-000000000000.json'), '{"version":1,"view":');
    const unreadable: string[] = [];
    const loaded = await store.loadAll((file) => unreadable.push(file));
    expect(loaded.map((j) => j.view.id)).toEqual([kept.id]);
    expect(unreadable).toEqual(['00000000-0000-4000-8000-000000000000.json']);
  });

  it('keeps the newest `keep` finished jobs, in memory and on disk', async () => {
    const jobs = new ResourceJobs({ store: new ResourceJobStore(dir), logger, keep: 2 });
    const ids: string[] = [];
    for (const name of ['a', 'b', 'c']) {
      const v = await jobs.submit(machineJob(async () => RESULT, name));
      await all(jobs, v.id);
      ids.push(v.id);
      await new Promise((r) => setTimeout(r, 5)); // distinct finish times
    }
    expect(await jobs.drain(1_000)).toBe(true); // each run has trimmed after its end
    expect(jobs.get(ids[0]!)).toBeNull();
    expect(jobs.get(ids[2]!)?.status).toBe('done');
    expect((await readdir(dir)).sort()).toEqual([`${ids[1]}.json`, `${ids[2]}.json`].sort());
  });

  it('refuses new jobs once shutting down; drain waits for the running ones', async () => {
    const jobs = new ResourceJobs({ store: null, logger });
    const held = gate();
    await jobs.submit(machineJob(async () => (await held.wait, RESULT)));
    jobs.stopAccepting();
    await expect(jobs.submit(machineJob(async () => RESULT, 'dev-2'))).rejects.toMatchObject({ code: 'SHUTTING_DOWN' });
    expect(await jobs.drain(30)).toBe(false);
    held.open();
    expect(await jobs.drain(1_000)).toBe(true);
  });
});

describe('jobVisible', () => {
  const image = JobView.parse({
    id: '11111111-1111-4111-8111-111111111111',
    kind: 'image',
    status: 'running',
    request: { workspaceId: 'ws-a', name: 'ws-a-base', tag: 'latest', push: true, withWorkspace: false },
    result: null,
    error: null,
    createdAt: 'x',
    updatedAt: 'x',
    finishedAt: null,
  });
  const machine = JobView.parse({
    ...image,
    kind: 'machine',
    request: { backend: 'incus', name: 'm', base: 'b', snapshot: null, files: 0, provision: false },
  });

  it('node-wide callers see every job; a workspace-scoped one only the image jobs of its workspace', () => {
    expect(jobVisible(image, undefined)).toBe(true);
    expect(jobVisible(machine, undefined)).toBe(true);
    expect(jobVisible(image, 'ws-a')).toBe(true);
    expect(jobVisible(image, 'ws-b')).toBe(false);
    expect(jobVisible(machine, 'ws-a')).toBe(false);
  });
});
