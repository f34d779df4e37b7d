import { createBackend } from '../backends/factory.js';
import { configFromEnv } from '../config/agent-config.js';
import { WarmstartError } from '../errors.js';
import { parseCommandArgs } from './args.js';
import { EXIT, reportError, type CommandResult, type Io } from './output.js';

/**
 * `warmstart snapshot create|restore|list|delete --backend B --machine M
 * [--name S]`: VM/instance state snapshots where the backend has them
 * (BACKEND_UNSUPPORTED otherwise, exit 1).
 */
export async function snapshotCommand(argv: string[], io: Io): Promise<CommandResult> {
  const json = argv.includes('--json');
  try {
    const [sub, ...rest] = argv;
    const { values } = parseCommandArgs(
      rest,
      { backend: { type: 'string' }, machine: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' } },
      0,
    );
    if (!values.backend || !values.machine) throw new WarmstartError('INVALID_ARGUMENT', `snapshot ${sub ?? ''} needs --backend and --machine`);
    const needsName = sub === 'create' || sub === 'restore' || sub === 'delete';
    if (needsName && !values.name) throw new WarmstartError('INVALID_ARGUMENT', `snapshot ${sub} needs --name`);
    if (!needsName && sub !== 'list')
      throw new WarmstartError('INVALID_ARGUMENT', 'usage: warmstart snapshot create|restore|list|delete --backend B --machine M [--name S]');
    const backend = await createBackend(values.backend, io.env, configFromEnv(io.env).stateDir);
    const machine = values.machine;
    const name = values.name ?? '';
    let out: unknown;
    if (sub === 'create') out = await backend.snapshot(machine, name);
    else if (sub === 'restore') out = (await backend.restore(machine, name), { machine, name, restored: true });
    else if (sub === 'delete') out = (await backend.deleteSnapshot(machine, name), { machine, name, deleted: true });
    else out = { snapshots: await backend.listSnapshots(machine) };
    io.stdout(`${JSON.stringify(out)}\n`);
    return EXIT.ready;
  } catch (err) {
    return reportError(io, err, json);
  }
}
