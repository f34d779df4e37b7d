import { chmod, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { JobEventSchema, JobView, type JobEvent } from '../../../shared/src/api.js';
import { writeFileAtomic } from '../state/atomic-file.js';

/** One machine or image job as kept on disk: its view and every event it had. */
export interface StoredJob {
  version: 1;
  view: JobView;
  events: JobEvent[];
}

const StoredJobSchema = z.object({ version: z.literal(1), view: JobView, events: z.array(JobEventSchema) });

const NAME = /^[0-9a-f-]{36}\.json$/;

/**
 * The records of machine and image jobs: one JSON file per job,
 * `<dir>/<job id>.json` (the state dir's `jobs/`), mode 0600 in a 0700
 * directory, each write crash-safe (state/atomic-file.ts). They hold no
 * provision script, file content or credential: only what the job view shows.
 */
export class ResourceJobStore {
  constructor(readonly dir: string) {}

  /**
   * Every readable record, after making the directory and removing the
   * temporaries of writes a crash cut off. A file that does not parse is
   * named to `onUnreadable` and left where it is for an operator.
   */
  async loadAll(onUnreadable: (file: string, err: unknown) => void): Promise<StoredJob[]> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    const out: StoredJob[] = [];
    for (const name of await readdir(this.dir)) {
      if (name.endsWith('.tmp')) {
        await rm(join(this.dir, name), { force: true });
        continue;
      }
      if (!NAME.test(name)) continue;
      try {
        out.push(StoredJobSchema.parse(JSON.parse(await readFile(join(this.dir, name), 'utf8'))) as StoredJob);
      } catch (err) {
        onUnreadable(name, err);
      }
    }
    return out;
  }

  /** Throws STATE_WRITE_FAILED when the disk refuses (the old content, if any, stays). */
  async write(job: StoredJob): Promise<void> {
    await writeFileAtomic(join(this.dir, `${job.view.id}.json`), `${JSON.stringify(job)}\n`, 0o600);
  }

  async remove(id: string): Promise<void> {
    await rm(join(this.dir, `${id}.json`), { force: true });
  }
}
