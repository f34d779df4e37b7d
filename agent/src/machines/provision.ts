/**
 * Putting files and a provision script into a running machine, through the
 * backend's exec only (so every backend can do it). Contents travel base64
 * encoded on stdin: exec input is text, files may not be.
 */
import type { ExecResult, SnapshotBackend } from '../backends/backend.js';
import { WarmstartError } from '../errors.js';
import type { MachineFile } from './machine-key.js';

/** Writes one file at its absolute path in the machine, making its directory. */
export async function copyFileIn(backend: SnapshotBackend, machine: string, file: MachineFile): Promise<void> {
  const r = await backend.exec(machine, ['sh', '-c', 'mkdir -p "$(dirname "$1")" && base64 -d > "$1"', 'sh', file.path], {
    input: file.content.toString('base64'),
  });
  if (r.exitCode !== 0) throw failed(`copying ${file.path} into ${machine} failed (exit ${r.exitCode})`, r);
}

/**
 * Runs the provision script with `sh` from a temporary file, not with
 * `sh -s` on stdin: under `sh -s` any command in the script that reads stdin
 * (apt-get, a `read`, ssh) would swallow the rest of the script. Its stdin is
 * /dev/null; the file is removed whatever the outcome. A non-zero exit is a
 * BACKEND_ERROR carrying the tail of the script's output.
 */
export async function runProvisionScript(backend: SnapshotBackend, machine: string, script: Buffer, label: string): Promise<ExecResult> {
  const wrapper = 'f=$(mktemp) && base64 -d > "$f" && sh "$f" </dev/null; rc=$?; rm -f "$f"; exit $rc';
  const r = await backend.exec(machine, ['sh', '-c', wrapper], { input: script.toString('base64') });
  if (r.exitCode !== 0) throw failed(`provision script ${label} exited with ${r.exitCode} in ${machine}`, r);
  return r;
}

function failed(message: string, r: ExecResult): WarmstartError {
  return new WarmstartError('BACKEND_ERROR', message, { detail: tail(r.stderr) || tail(r.stdout) || undefined });
}

/** The last lines of an output, enough to see why without flooding a JSON error. */
function tail(text: string, lines = 20): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
