import { isAbsolute } from 'node:path';
import { execa } from 'execa';
import { WarmstartError } from '../errors.js';
import type { HostHooks } from './cloud-hypervisor-host.js';

/**
 * The operator's host hook command (`WARMSTART_CH_HOOK`) as the backend's
 * `ensureTap` / `ensureVirtiofsd` (HostHooks in cloud-hypervisor-host.ts).
 * It is run with an argv, never through a shell:
 *
 *   HOOK ensure-tap TAP MACHINE INDEX
 *   HOOK ensure-virtiofsd SOCKET MACHINE TAG SHARED_DIR   (SHARED_DIR may be empty)
 *
 * Exit 0 means the thing exists now; anything else stops the launch, boot or
 * restore with BACKEND_PRECONDITION and the tail of the hook's stderr. An
 * example lives in deploy/cloud-hypervisor/warmstart-ch-hook.
 */
export function commandHooks(command: string, options: { timeoutMs?: number } = {}): Pick<HostHooks, 'ensureTap' | 'ensureVirtiofsd'> {
  if (!isAbsolute(command)) throw new WarmstartError('INVALID_ARGUMENT', `WARMSTART_CH_HOOK takes an absolute path, got ${JSON.stringify(command)}`);
  const timeout = options.timeoutMs ?? 60_000;
  const run = async (args: string[], what: string): Promise<void> => {
    const r = await execa(command, args, { reject: false, timeout, stdin: 'ignore', stripFinalNewline: true });
    if (r.exitCode === 0) return;
    const why = r.timedOut ? `timed out after ${timeout} ms` : r.exitCode === undefined ? (r.shortMessage ?? 'could not run') : `exit ${r.exitCode}`;
    throw new WarmstartError('BACKEND_PRECONDITION', `host hook ${command} ${args[0]} failed for ${what} (${why})`, {
      detail:
        String(r.stderr ?? '')
          .trim()
          .split('\n')
          .slice(-5)
          .join(' | ')
          .slice(0, 1000) || undefined,
    });
  };
  return {
    ensureTap: (name, ctx) => run(['ensure-tap', name, ctx.machine, String(ctx.index)], `TAP ${name}`),
    ensureVirtiofsd: (socket, sharedDir, ctx) =>
      run(['ensure-virtiofsd', socket, ctx.machine, ctx.tag, sharedDir ?? ''], `virtiofs socket ${socket}`),
  };
}
