import type { z } from 'zod';
import type { PhaseName as PhaseNameSchema, WorkspaceEventSchema } from '../../../shared/src/api.js';

type Served = z.infer<typeof WorkspaceEventSchema>;
type WithOptionalSeq<E> = E extends unknown ? Omit<E, 'seq'> & { seq?: number } : never;

/**
 * One thing that happened to a workspace: a phase began or ended, a log
 * line, a note, the outcome, the push (shared/src/api.ts). Made without a
 * `seq`; the recording sink (events/event-seq.ts) stamps it.
 */
export type WorkspaceEvent = WithOptionalSeq<Served>;
/** An event as recorded and served: with its `seq`. */
export type SequencedEvent = WorkspaceEvent & { seq: number };
/** The names of a job's phases, one list (shared/src/api.ts PhaseName). */
export type PhaseName = z.infer<typeof PhaseNameSchema>;
/** The event types that carry text: what a redaction or a cut applies to. */
export type TextEvent = Extract<WorkspaceEvent, { text?: string }>;

/** The same event with another text (for the kinds that carry one). */
export function withText<E extends WorkspaceEvent>(e: E, text: string): E {
  return { ...e, text };
}

/** Where events go: a file, stderr for people, the daemon's stream. */
export interface EventSink {
  emit(event: WorkspaceEvent): void;
}

/** Fans events out to several sinks. */
export function teeSinks(...sinks: EventSink[]): EventSink {
  return { emit: (e) => sinks.forEach((s) => s.emit(e)) };
}

/**
 * The secrets of one job, as they become known (a GitHub App token only
 * after the credentials phase). Text passed through `scrub` has their bytes
 * replaced: the last line of defence, not the first (secrets are kept out of
 * logs by construction).
 */
export class SecretSet {
  private readonly known = new Set<string>();

  add(...secrets: (string | null | undefined)[]): void {
    for (const s of secrets) if (typeof s === 'string' && s.length >= 4) this.known.add(s);
  }

  scrub(text: string): string {
    let out = text;
    for (const s of this.known) out = out.split(s).join('***');
    return out;
  }
}

/** A sink that scrubs every event's text with the job's secrets first. */
export function redactingSink(inner: EventSink, secrets: SecretSet): EventSink {
  return { emit: (e) => inner.emit('text' in e && e.text !== undefined ? withText(e, secrets.scrub(e.text)) : e) };
}
