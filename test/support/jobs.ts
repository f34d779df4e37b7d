import { JobEventSchema, JobView, type JobEvent } from '../../shared/src/api.js';
import type { Agent } from './serve.js';

/** The events of a machine job that launches, copies files, provisions and captures (shortened: type, then phase and outcome), in order. */
export const PROVISIONED_MACHINE_EVENTS = [
  'status running',
  'phase-start lookup',
  'phase-end lookup ok',
  'note',
  'phase-start launch',
  'phase-end launch ok',
  'phase-start files',
  'phase-end files ok',
  'phase-start provision',
  'phase-end provision ok',
  'phase-start capture',
  'phase-end capture ok',
  'phase-start post-launch',
  'phase-end post-launch ok',
  'status done',
];

/** The 202 of POST /v1/machines or /v1/images: the job, its Location checked. */
export async function acceptedJob(res: Response): Promise<JobView> {
  const text = await res.text();
  if (res.status !== 202) throw new Error(`expected 202, got ${res.status}: ${text}`);
  const view = JobView.parse(JSON.parse(text));
  if (res.headers.get('location') !== `/v1/jobs/${view.id}`) throw new Error(`Location ${res.headers.get('location')} is not the job's`);
  return view;
}

/** Polls GET /v1/jobs/:id until the job is over (done or failed). */
export async function waitForJob(agent: Agent, id: string, timeoutMs = 240_000, auth?: string): Promise<JobView> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const r = await agent.request(`/v1/jobs/${id}`, auth === undefined ? {} : { auth });
    last = await r.text();
    if (r.ok) {
      const view = JobView.parse(JSON.parse(last));
      if (view.status !== 'running') return view;
    }
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error(`job ${id} still running after ${timeoutMs} ms: ${last}`);
}

/**
 * Reads GET /v1/jobs/:id/events to its end (the job's end), as a client
 * would: line by line as they arrive. `onEvent` sees each event when it
 * comes; `until` stops reading (and closes the stream) at the first event
 * it accepts; keepalive lines are counted, not returned.
 */
export async function followJob(
  agent: Agent,
  id: string,
  o: { after?: number; onEvent?: (e: JobEvent) => void; until?: (e: JobEvent) => boolean } = {},
): Promise<{ events: JobEvent[]; keepalives: number }> {
  const r = await agent.request(`/v1/jobs/${id}/events${o.after === undefined ? '' : `?after=${o.after}`}`);
  if (r.status !== 200 || !r.body) throw new Error(`events of ${id}: ${r.status} ${await r.text()}`);
  const events: JobEvent[] = [];
  let keepalives = 0;
  let rest = '';
  const decoder = new TextDecoder();
  for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) {
    rest += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = rest.indexOf('\n')) >= 0) {
      const line = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
      if (line === '') continue;
      const parsed = JSON.parse(line) as { type?: string };
      if (parsed.type === 'keepalive') {
        keepalives += 1;
        continue;
      }
      const e = JobEventSchema.parse(parsed);
      events.push(e);
      o.onEvent?.(e);
      if (o.until?.(e)) return { events, keepalives }; // leaving the loop cancels the body
    }
  }
  return { events, keepalives };
}

/** `phase-start launch`, `status done`, `note`: an event in a few words, for comparing sequences. */
export function shortly(e: JobEvent): string {
  return [e.type, 'phase' in e ? e.phase : undefined, 'status' in e ? e.status : undefined].filter((x) => x !== undefined).join(' ');
}
