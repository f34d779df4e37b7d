import { createAgent } from '../agent.js';
import { configFromEnv } from '../config/agent-config.js';
import { WarmstartError } from '../errors.js';
import { WorkspaceLifecycle } from '../workspace/lifecycle.js';
import { removeWorkspace, workspaceVolume } from '../workspace/remove.js';
import { validateWorkspaceId } from '../workspace/validate.js';
import { parseCommandArgs } from './args.js';
import { EXIT, reportError, type CommandResult, type Io } from './output.js';

/** `warmstart down <id> [--purge]`: remove the workspace's containers; with --purge its volume and state too. */
export async function downCommand(argv: string[], io: Io): Promise<CommandResult> {
  const json = argv.includes('--json');
  try {
    const { values, positionals } = parseCommandArgs(argv, { purge: { type: 'boolean' }, json: { type: 'boolean' } }, 1);
    const id = validateWorkspaceId(positionals[0]!);
    const agent = await createAgent({ config: configFromEnv(io.env) });
    const volume = workspaceVolume(id);
    // Its record changes only through the lifecycle (workspace/lifecycle.ts): with --purge, purge; without, it stays as it is.
    const lifecycle = new WorkspaceLifecycle(agent.store);
    const record = await lifecycle.load(id);
    const hadVolume = await agent.engine.volumeExists(volume);
    const removed = await removeWorkspace({ ...agent, lifecycle }, id, values.purge === true);
    if (!record && !hadVolume && removed === 0) {
      throw new WarmstartError('WORKSPACE_NOT_FOUND', `no workspace ${id} on this node`);
    }
    const out = { workspaceId: id, containersRemoved: removed, volumeRemoved: values.purge === true && hadVolume };
    io.stdout(json ? `${JSON.stringify(out)}\n` : `removed ${removed} container(s)${out.volumeRemoved ? ` and volume ${volume}` : ''}\n`);
    return EXIT.ready;
  } catch (err) {
    return reportError(io, err, json);
  }
}
