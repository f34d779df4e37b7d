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
  return { emit: (e) => inner.emit(e.text === undefined ? e : { ...e, text: secrets.scrub(e.text) }) };
}
