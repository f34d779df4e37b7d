import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PhaseName, WorkspaceEvent } from '../../agent/src/events/events.js';

/** An event's text, for the kinds that carry one (log, note, push; shared/src/api.ts WorkspaceEventSchema). */
export const textOf = (e: WorkspaceEvent): string | undefined => ('text' in e ? e.text : undefined);

/** An event's phase, for the kinds that name one. */
export const phaseOf = (e: WorkspaceEvent): PhaseName | undefined => ('phase' in e ? e.phase : undefined);

/** One line of a workspace's event log, as far as tests look at it. */
export interface LoggedEvent {
  ts?: string;
  type: string;
  phase?: string;
  text?: string;
  status?: string;
  ms?: number;
}

/**
 * The events an agent wrote for a workspace under its state dir; none when
 * there is no log yet. A line cut short (a kill, a full disk) is skipped.
 */
export async function eventsOnDisk(stateDir: string, id: string): Promise<LoggedEvent[]> {
  const text = await readFile(join(stateDir, 'workspaces', id, 'events.ndjson'), 'utf8').catch(() => '');
  return text.split('\n').flatMap((l) => {
    try {
      return l ? [JSON.parse(l) as LoggedEvent] : [];
    } catch {
      return [];
    }
  });
}
