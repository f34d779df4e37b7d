import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { createBackend } from '../backends/factory.js';
import { configFromEnv } from '../config/agent-config.js';
import { WarmstartError } from '../errors.js';
import { cacheList, cachePrune } from '../machines/cache.js';
import type { MachineFile } from '../machines/machine-key.js';
import { machineUp } from '../machines/machine-up.js';
import { machineSnapshotUp, type BackendTiming } from '../machines/machine-snapshot.js';
import { hostGitIdentity } from '../machines/host-git-identity.js';
import { hostSpecificsHook } from '../machines/post-launch.js';
import { parseCommandArgs } from './args.js';
import { EXIT, reportError, type CommandResult, type Io } from './output.js';

/** `--file HOST[:MACHINE]`: a host file copied in at MACHINE (default: the same absolute path). */
async function readFileFlag(value: string, cwd: string): Promise<MachineFile> {
  const colon = value.indexOf(':');
  const host = resolve(cwd, colon >= 0 ? value.slice(0, colon) : value);
  const target = colon >= 0 ? value.slice(colon + 1) : host;
  if (!isAbsolute(target)) throw new WarmstartError('INVALID_ARGUMENT', `--file target must be an absolute path in the machine, got '${target}'`);
  try {
    return { path: target, content: await readFile(host) };
  } catch (err) {
    throw new WarmstartError('INVALID_ARGUMENT', `--file ${host} cannot be read`, { detail: (err as Error).message });
  }
}

/**
 * `warmstart machine up|cache list|cache prune`: the provisioned-image cache
 * on a machine backend.
 */
export async function machineCommand(argv: string[], io: Io): Promise<CommandResult> {
  const json = argv.includes('--json');
  try {
    const [sub, ...rest] = argv;
    const config = configFromEnv(io.env);
    if (sub === 'up') {
      const { values } = parseCommandArgs(
        rest,
        {
          backend: { type: 'string' },
          name: { type: 'string' },
          base: { type: 'string' },
          provision: { type: 'string' },
          file: { type: 'string', multiple: true },
          snapshot: { type: 'string' },
          json: { type: 'boolean' },
        },
        0,
      );
      if (!values.backend || !values.name || !values.base) {
        throw new WarmstartError('INVALID_ARGUMENT', 'machine up needs --backend, --name and --base');
      }
      const provision = values.provision
        ? { path: values.provision, content: (await readFileFlag(`${values.provision}:/provision.sh`, io.cwd)).content }
        : undefined;
      const files = await Promise.all((values.file ?? []).map((f) => readFileFlag(f, io.cwd)));
      if (values.snapshot !== undefined) {
        // restore the machine's own snapshot, or boot, provision and take it (machines/machine-snapshot.ts)
        const timings: BackendTiming[] = [];
        const backend = await createBackend(values.backend, io.env, config.stateDir, { onTiming: (t) => timings.push({ ...t }) });
        const result = await machineSnapshotUp(backend, {
          name: values.name,
          base: values.base,
          snapshot: values.snapshot,
          ...(provision ? { provision } : {}),
          files,
          lastTiming: () => timings[timings.length - 1],
        });
        const ready = result.path === 'restore' ? result.restoreToReadyMs : result.bootToReadyMs;
        io.stdout(
          json
            ? `${JSON.stringify(result)}\n`
            : `${result.instance}: ${result.path} (snapshot ${result.snapshot}), ready in ${ready ?? '?'} ms, ${(result.ms / 1000).toFixed(1)}s in all\n`,
        );
        return EXIT.ready;
      }
      const backend = await createBackend(values.backend, io.env, config.stateDir);
      const result = await machineUp(backend, {
        name: values.name,
        base: values.base,
        ...(provision ? { provision } : {}),
        files,
        postLaunch: hostSpecificsHook({ git: (await hostGitIdentity()) ?? undefined }),
      });
      io.stdout(
        json
          ? `${JSON.stringify(result)}\n`
          : `${result.instance}: cache ${result.cache} (${result.key.slice(0, 16)}) in ${(result.ms / 1000).toFixed(1)}s\n`,
      );
      return EXIT.ready;
    }
    if (sub === 'cache' && (rest[0] === 'list' || rest[0] === 'prune')) {
      const { values } = parseCommandArgs(rest.slice(1), { backend: { type: 'string' }, keep: { type: 'string' }, json: { type: 'boolean' } }, 0);
      if (!values.backend) throw new WarmstartError('INVALID_ARGUMENT', `machine cache ${rest[0]} needs --backend`);
      const backend = await createBackend(values.backend, io.env, config.stateDir);
      if (rest[0] === 'list') {
        const images = await cacheList(backend);
        io.stdout(json ? `${JSON.stringify({ images })}\n` : images.map((i) => `${i.name}\t${i.createdAt ?? ''}\n`).join(''));
      } else {
        const keep = values.keep === undefined ? undefined : Number(values.keep);
        if (keep !== undefined && (!Number.isInteger(keep) || keep < 0)) throw new WarmstartError('INVALID_ARGUMENT', '--keep takes a whole number');
        const pruned = await cachePrune(backend, keep === undefined ? {} : { keep });
        io.stdout(json ? `${JSON.stringify(pruned)}\n` : `removed ${pruned.removed.length} cache image(s), kept ${pruned.kept.length}\n`);
      }
      return EXIT.ready;
    }
    throw new WarmstartError('INVALID_ARGUMENT', 'usage: warmstart machine up|cache list|cache prune --backend B ...');
  } catch (err) {
    return reportError(io, err, json);
  }
}
