/**
 * Running a command in an Incus/LXD instance without a websocket: the exec
 * API with `record-output` writes stdout and stderr to log files on the host
 * that we read (and delete) once the command has finished. Stdin on that
 * path is /dev/null, so input is pushed as a file first and redirected in by
 * a small `sh` wrapper (a websocket client would be the other way, and more
 * code than this).
 */
import { randomBytes } from 'node:crypto';
import { isWarmstartError, WarmstartError } from '../errors.js';
import type { ExecResult } from './backend.js';
import type { IncusClient } from './incus-client.js';

/**
 * Opens the pushed file as stdin, removes it (so it never outlives the
 * command, even one that is killed), then becomes the command: its exit code
 * is the command's, 127 when it is not found.
 */
const STDIN_WRAPPER = 'f=$1; shift; exec <"$f" || exit 126; rm -f "$f"; exec "$@"';

export async function incusExec(client: IncusClient, machine: string, argv: string[], input: string | undefined): Promise<ExecResult> {
  if (argv.length === 0) throw new WarmstartError('INVALID_ARGUMENT', 'exec needs a command');
  const base = `/1.0/instances/${encodeURIComponent(machine)}`;
  let command = argv;
  let stdinFile: string | null = null;
  if (input !== undefined) {
    stdinFile = `/tmp/.warmstart-stdin-${randomBytes(8).toString('hex')}`;
    await client.raw('POST', `${base}/files?path=${encodeURIComponent(stdinFile)}`, Buffer.from(input, 'utf8'), fileHeaders, {
      notFound: 'MACHINE_NOT_FOUND',
    });
    command = ['/bin/sh', '-c', STDIN_WRAPPER, 'sh', stdinFile, ...argv];
  }
  const body = { command, 'record-output': true, 'wait-for-websocket': false, interactive: false };
  const op = await client.start('POST', `${base}/exec`, body, { notFound: 'MACHINE_NOT_FOUND' }).catch(async (err: unknown) => {
    // the wrapper never ran, so it did not remove the stdin file
    if (stdinFile) await client.raw('DELETE', `${base}/files?path=${encodeURIComponent(stdinFile)}`).catch(() => undefined);
    throw await notRunning(client, base, machine, err);
  });
  const meta = op.metadata ?? {};
  const exitCode = typeof meta.return === 'number' ? meta.return : null;
  // A command that cannot be started is a failed operation that still
  // carries an exit code (127 for "Command not found"): a result, not an error.
  if (exitCode === null) {
    throw new WarmstartError('BACKEND_ERROR', `incus: exec in ${machine} failed: ${op.err || op.status}`, {
      detail: `operation ${op.id} ${op.status}: ${op.err}`,
    });
  }
  const output = (meta.output ?? {}) as Record<string, string>;
  const [stdout, stderr] = await Promise.all([readLog(client, output['1']), readLog(client, output['2'])]);
  return { exitCode, stdout, stderr: stderr === '' && op.status !== 'Success' ? op.err : stderr };
}

/**
 * The daemon refuses exec in a stopped machine with a plain 400 ("Instance
 * is not running"); rather than read its message, ask for the state.
 */
async function notRunning(client: IncusClient, base: string, machine: string, err: unknown): Promise<unknown> {
  if (!isWarmstartError(err, 'BACKEND_ERROR')) return err;
  const inst = await client.get<{ status: string }>(base).catch(() => null); // cannot read its state: the original error stands
  if (!inst || inst.status === 'Running') return err;
  return new WarmstartError('BACKEND_PRECONDITION', `machine ${machine} is not running (${inst.status})`, { cause: err });
}

/** Both daemons' header names: LXD reads X-LXD-*, Incus X-Incus-*. */
const fileHeaders: Record<string, string> = {
  'content-type': 'application/octet-stream',
  'x-lxd-type': 'file',
  'x-lxd-mode': '0600',
  'x-lxd-uid': '0',
  'x-lxd-gid': '0',
  'x-incus-type': 'file',
  'x-incus-mode': '0600',
  'x-incus-uid': '0',
  'x-incus-gid': '0',
};

/** Reads a recorded output log, then deletes it: the daemon keeps them until the instance goes. */
async function readLog(client: IncusClient, path: string | undefined): Promise<string> {
  if (!path) return '';
  const text = (await client.raw('GET', path)).toString('utf8');
  await client.raw('DELETE', path).catch(() => undefined); // best effort: a leftover log is harmless
  return text;
}

/**
 * Writes a file through the instance's file API (no exec): the parent
 * directories first, each created only where it is missing (a directory
 * push over an existing one is refused), then the file, replacing one there.
 */
export async function incusWriteFile(client: IncusClient, machine: string, path: string, content: Buffer, mode: number): Promise<void> {
  if (!path.startsWith('/') || path.split('/').includes('..')) throw new WarmstartError('INVALID_ARGUMENT', `not an absolute path: ${path}`);
  const base = `/1.0/instances/${encodeURIComponent(machine)}/files?path=`;
  const kind = (type: 'file' | 'directory', m: number): Record<string, string> => ({
    ...fileHeaders,
    'x-lxd-type': type,
    'x-incus-type': type,
    'x-lxd-mode': m.toString(8).padStart(4, '0'),
    'x-incus-mode': m.toString(8).padStart(4, '0'),
    'x-lxd-write': 'overwrite',
    'x-incus-write': 'overwrite',
  });
  const parents = path
    .split('/')
    .slice(1, -1)
    .map((_, i, parts) => `/${parts.slice(0, i + 1).join('/')}`);
  for (const dir of parents) {
    const there = await client.raw('GET', `${base}${encodeURIComponent(dir)}`, undefined, undefined, { notFound: 'NOT_FOUND' }).then(
      () => true,
      (err: unknown) => {
        if (isWarmstartError(err, 'NOT_FOUND')) return false;
        throw err;
      },
    );
    if (!there)
      await client.raw('POST', `${base}${encodeURIComponent(dir)}`, Buffer.alloc(0), kind('directory', 0o755), { notFound: 'MACHINE_NOT_FOUND' });
  }
  await client.raw('POST', `${base}${encodeURIComponent(path)}`, content, kind('file', mode), { notFound: 'MACHINE_NOT_FOUND' });
}
