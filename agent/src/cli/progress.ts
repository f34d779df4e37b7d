import type { EventSink } from '../events/events.js';

/** Progress for people on stderr: phases with elapsed time; build lines only when verbose. */
export function progressSink(write: (text: string) => void, verbose: boolean, now: () => number = () => performance.now()): EventSink {
  const t0 = now();
  const stamp = (): string => `[${((now() - t0) / 1000).toFixed(1).padStart(6)}s]`;
  return {
    emit: (e) => {
      switch (e.type) {
        case 'phase-start':
          write(`${stamp()} ${e.phase} ...\n`);
          break;
        case 'phase-end':
          write(`${stamp()} ${e.phase} ${e.status === 'failed' ? 'failed after' : 'done in'} ${((e.ms ?? 0) / 1000).toFixed(1)}s\n`);
          break;
        case 'note':
          write(`${stamp()} ${e.phase ? `${e.phase}: ` : ''}${e.text}\n`);
          break;
        case 'log':
          if (verbose) write(`${stamp()}   | ${e.text}\n`);
          break;
        case 'outcome':
          write(`${stamp()} ${e.status} after ${((e.ms ?? 0) / 1000).toFixed(1)}s\n`);
          break;
        case 'push':
          write(`${stamp()} cache push: ${e.status}${e.text ? ` (${e.text})` : ''}\n`);
          break;
      }
    },
  };
}
