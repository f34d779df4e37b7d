/** One thing that happened to a workspace: a phase began or ended, a log line, the outcome. */
export interface WorkspaceEvent {
  ts: string;
  workspaceId: string;
  type: 'phase-start' | 'phase-end' | 'log' | 'outcome' | 'push' | 'note';
  phase?: string;
  ms?: number;
  text?: string;
  status?: string;
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
 * Replaces every known secret's bytes in event text before it reaches any
 * sink; the last line of defence, not the first (secrets are kept out of
 * logs by construction).
 */
export function redactingSink(inner: EventSink, secrets: readonly (string | undefined)[]): EventSink {
  const known = secrets.filter((s): s is string => typeof s === 'string' && s.length >= 4);
  if (known.length === 0) return inner;
  const scrub = (t: string): string => known.reduce((acc, s) => acc.split(s).join('***'), t);
  return {
    emit: (e) => inner.emit(e.text === undefined ? e : { ...e, text: scrub(e.text) }),
  };
}
