import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

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
