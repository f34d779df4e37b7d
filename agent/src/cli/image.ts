import { createAgent } from '../agent.js';
import { configFromEnv } from '../config/agent-config.js';
import { WarmstartError } from '../errors.js';
import { createGoldenImage, listGoldenImages, removeGoldenImage, type GoldenImage } from '../images/golden.js';
import { parseImageArg } from '../images/rules.js';
import { parseCommandArgs, readPassword, REGISTRY_FLAGS } from './args.js';
import { EXIT, reportError, type CommandResult, type Io } from './output.js';

const CREATE_FLAGS = {
  ...REGISTRY_FLAGS,
  workspace: { type: 'string' },
  name: { type: 'string' },
  tag: { type: 'string' },
  capability: { type: 'string', multiple: true },
  owner: { type: 'string' },
  push: { type: 'boolean' },
  'with-workspace': { type: 'boolean' },
} as const;

/** `warmstart image create|list|rm`: golden images from workspaces. */
export async function imageCommand(argv: string[], io: Io): Promise<CommandResult> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'create':
      return createCommand(rest, io);
    case 'list':
    case 'ls':
      return listCommand(rest, io);
    case 'rm':
    case 'remove':
      return removeCommand(rest, io);
  }
  return reportError(
    io,
    new WarmstartError('INVALID_ARGUMENT', `unknown image command${sub ? ` '${sub}'` : ''}: use create, list or rm`),
    argv.includes('--json'),
  );
}

async function createCommand(argv: string[], io: Io): Promise<CommandResult> {
  let json = argv.includes('--json');
  try {
    const { values } = parseCommandArgs(argv, CREATE_FLAGS, 0);
    json = values.json === true;
    if (!values.workspace) throw new WarmstartError('INVALID_ARGUMENT', 'image create needs --workspace ID');
    if (values.name === undefined) throw new WarmstartError('INVALID_ARGUMENT', 'image create needs --name NAME');
    const username = values['registry-username'] ?? null;
    if (values['registry-password-stdin'] && !username) {
      throw new WarmstartError('INVALID_ARGUMENT', '--registry-password-stdin needs --registry-username');
    }
    if (username && !values['registry-password-stdin']) {
      throw new WarmstartError('INVALID_ARGUMENT', '--registry-username needs --registry-password-stdin');
    }
    if (!values.push && (username || values['cache-registry'])) {
      throw new WarmstartError('INVALID_ARGUMENT', '--cache-registry and registry credentials are for --push');
    }
    const password = values['registry-password-stdin'] ? await readPassword(io.readStdin) : null;
    const agent = await createAgent({ config: configFromEnv(io.env) });
    const result = await createGoldenImage(agent, {
      workspaceId: values.workspace,
      name: values.name,
      tag: values.tag ?? null,
      capabilities: values.capability ?? [],
      owner: values.owner ?? null,
      push: values.push === true,
      withWorkspace: values['with-workspace'] === true,
      registry: values['cache-registry'] ?? null,
      username,
      password,
    });
    const failed = result.push.status === 'failed' || result.push.status === 'timeout';
    if (json) io.stdout(`${JSON.stringify(result)}\n`);
    else {
      const lines = [`created ${result.image.ref} (${result.image.id.slice(7, 19)}) from workspace ${result.workspaceId}`, ...describe(result.image)];
      if (result.push.status !== 'skipped') {
        lines.push(`  push ${result.push.status} ${result.push.ref ?? ''}${result.push.reason ? ` (${result.push.reason})` : ''}`);
      }
      io.stdout(`${lines.join('\n')}\n`);
    }
    if (failed) io.stderr(`warmstart: push of ${result.push.ref} ${result.push.status}: ${result.push.reason ?? ''} (the local image was kept)\n`);
    return failed ? EXIT.failed : EXIT.ready;
  } catch (err) {
    return reportError(io, err, json);
  }
}

async function listCommand(argv: string[], io: Io): Promise<CommandResult> {
  const json = argv.includes('--json');
  try {
    parseCommandArgs(argv, { json: { type: 'boolean' } }, 0);
    const agent = await createAgent({ config: configFromEnv(io.env) });
    const images = await listGoldenImages(agent);
    if (json) io.stdout(`${JSON.stringify({ images })}\n`);
    else if (images.length === 0) io.stdout('no golden images on this node\n');
    else for (const i of images) io.stdout(`${[`${i.name}:${i.tag}`, ...describe(i)].join('\n')}\n`);
    return EXIT.ready;
  } catch (err) {
    return reportError(io, err, json);
  }
}

async function removeCommand(argv: string[], io: Io): Promise<CommandResult> {
  const json = argv.includes('--json');
  try {
    const { positionals } = parseCommandArgs(argv, { json: { type: 'boolean' } }, 1);
    const { name, tag } = parseImageArg(positionals[0]!);
    const agent = await createAgent({ config: configFromEnv(io.env) });
    const removed = await removeGoldenImage(agent, name, tag);
    const out = {
      removed: { name: removed.name, tag: removed.tag, ref: removed.ref, id: removed.id, untagged: [removed.ref, ...removed.pushedRefs] },
    };
    io.stdout(json ? `${JSON.stringify(out)}\n` : `removed ${removed.name}:${removed.tag}\n`);
    return EXIT.ready;
  } catch (err) {
    return reportError(io, err, json);
  }
}

function describe(i: GoldenImage): string[] {
  return [
    `  image ${i.ref}  os ${i.os}  owner ${i.owner ?? '-'}`,
    `  capabilities ${i.capabilities.length ? i.capabilities.join(',') : '-'}`,
    ...i.pushedRefs.map((r) => `  pushed ${r}`),
  ];
}
