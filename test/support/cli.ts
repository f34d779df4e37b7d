import { appendFile, mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type { WorkspaceResult } from '../../shared/src/workspace-result.js';

/** The built CLI (npm test builds it first). */
export const CLI = fileURLToPath(new URL('../../dist/agent/src/cli/main.js', import.meta.url));

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  wallMs: number;
}

/** Runs `warmstart ...` as a user would: a separate process, real env, optional stdin. */
export async function runCli(args: string[], o: { env?: Record<string, string>; input?: string; cwd?: string } = {}): Promise<CliRun> {
  const t0 = performance.now();
  const r = await execa(process.execPath, ['--', CLI, ...args], {
    env: { ...o.env },
    extendEnv: true,
    reject: false,
    input: o.input ?? '',
    ...(o.cwd ? { cwd: o.cwd } : {}),
  });
  const run = {
    code: r.exitCode ?? -1,
    stdout: String(r.stdout),
    stderr: String(r.stderr),
    wallMs: Math.round(performance.now() - t0),
  };
  await keepOutput(args, run);
  return run;
}

/** In the fault suite, every CLI output is kept for its secret audit. */
async function keepOutput(args: string[], run: CliRun): Promise<void> {
  const dir = process.env.WARMSTART_FAULTS_DIR;
  if (!dir) return;
  await mkdir(join(dir, 'cli-output'), { recursive: true });
  const text = `$ warmstart ${args.join(' ')}\nexit ${run.code}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}\n`;
  await appendFile(join(dir, 'cli-output', `${process.pid}.txt`), text);
}

/** Parses `up --json` output: stdout must hold exactly one JSON object. */
export function parseResult(run: CliRun): WorkspaceResult {
  const lines = run.stdout.trim().split('\n');
  if (lines.length !== 1) throw new Error(`expected one line on stdout, got ${lines.length}:\n${run.stdout}\n--- stderr:\n${run.stderr}`);
  return JSON.parse(lines[0]!) as WorkspaceResult;
}

/** A fresh state dir and the env every test run of the CLI gets. */
export async function testEnv(baseImage: string, extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const stateDir = await mkdtemp(join(tmpdir(), 'warmstart-state-'));
  const runtimeDir = await mkdtemp(join(tmpdir(), 'warmstart-runtime-'));
  return {
    WARMSTART_STATE_DIR: stateDir,
    WARMSTART_RUNTIME_DIR: runtimeDir,
    // A node's /etc/warmstart/env must not configure the tests' commands.
    WARMSTART_ENV_FILE: '',
    WARMSTART_DEFAULT_IMAGE: baseImage,
    WARMSTART_CACHE_REGISTRY: '',
    WARMSTART_REGISTRY_USERNAME: '',
    WARMSTART_REGISTRY_PASSWORD: '',
    WARMSTART_GIT_TOKEN: '',
    WARMSTART_GITHUB_APP_ID: '',
    WARMSTART_GITHUB_APP_PRIVATE_KEY_FILE: '',
    WARMSTART_GITHUB_INSTALLATION_ID: '',
    ...extra,
  };
}
