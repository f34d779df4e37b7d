import { cp, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyEdits, modify } from 'jsonc-parser';
import { sh } from './proc.js';

/** The bench's workspace fixture (a Dockerfile with ~30 s of build steps, a >100 MB layer, a local feature). */
export const BENCH_FIXTURE = fileURLToPath(new URL('../../../test/fixtures/repos/bench/', import.meta.url));

export interface Testbed {
  registry: string;
  registryUser: string;
  registryPassword: string;
  baseImage: string;
  /** LXD's socket and base alias, when the testbed could start LXD */
  lxd: { socket: string; image: string } | null;
  /** node 2 (test/testbed/node2.sh): engine 26 whose buildx plugin a job reaches through its plugin dir */
  node2: { dockerHost: string; pluginDirs: string };
}

/** Reads the facts test/testbed/up.sh wrote (the same file test/support/testbed.ts reads). */
export async function loadTestbed(): Promise<Testbed> {
  const dir = process.env.WARMSTART_TESTBED_DIR ?? '/var/lib/warmstart-testbed';
  let text: string;
  try {
    text = await readFile(join(dir, 'env'), 'utf8');
  } catch {
    throw new Error(`no testbed at ${dir}: run 'bash test/testbed/up.sh' first (npm run bench does)`);
  }
  const env = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) env.set(line.slice(0, i), line.slice(i + 1));
  }
  const get = (k: string): string => {
    const v = env.get(k);
    if (!v) throw new Error(`testbed env lacks ${k}`);
    return v;
  };
  return {
    registry: get('WARMSTART_TESTBED_REGISTRY'),
    registryUser: get('WARMSTART_TESTBED_REGISTRY_USER'),
    registryPassword: (await readFile(get('WARMSTART_TESTBED_REGISTRY_PASSWORD_FILE'), 'utf8')).trim(),
    baseImage: get('WARMSTART_TESTBED_BASE_IMAGE'),
    node2: { dockerHost: get('WARMSTART_TESTBED_NODE2_DOCKER_HOST'), pluginDirs: get('WARMSTART_TESTBED_NODE2_PLUGIN_DIRS') },
    lxd:
      env.get('WARMSTART_TESTBED_LXD_SOCKET') && env.get('WARMSTART_TESTBED_LXD_IMAGE')
        ? { socket: env.get('WARMSTART_TESTBED_LXD_SOCKET')!, image: env.get('WARMSTART_TESTBED_LXD_IMAGE')! }
        : null,
  };
}

/**
 * Quick mode (smoke tests of the harness only): the sleeps shrink to 1 s and
 * the big layer to 5 MB. Its numbers say nothing about warmstart.
 */
function quicken(text: string): string {
  return text.replace(/\bsleep \d+/g, 'sleep 1').replace(/head -c \d+/g, 'head -c 5000000');
}

async function substitute(dir: string, vars: Record<string, string>, quick: boolean): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await substitute(path, vars, quick);
    else if (entry.isFile()) {
      const text = await readFile(path, 'utf8');
      let out = Object.entries(vars).reduce((t, [k, v]) => t.split(`@@${k}@@`).join(v), text);
      if (quick) out = quicken(out);
      if (out !== text) await writeFile(path, out, { mode: (await stat(path)).mode });
    }
  }
}

async function gitCommit(dir: string): Promise<void> {
  const git = async (args: string[]): Promise<void> => {
    const r = await sh('git', ['-c', 'user.email=bench@warmstart.invalid', '-c', 'user.name=warmstart bench', ...args], { cwd: dir });
    if (r.code !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  };
  await git(['init', '-q', '-b', 'main']);
  await git(['add', '-A']);
  await git(['commit', '-q', '-m', 'bench fixture']);
}

/** Copies the fixture to `dest`, substitutes `@@RUN_ID@@` and `@@BASE_IMAGE@@`, and commits it as a git repository. */
export async function makeBenchRepo(dest: string, o: { runId: string; baseImage: string; quick: boolean }): Promise<string> {
  await mkdir(dirname(dest), { recursive: true });
  await cp(BENCH_FIXTURE, dest, { recursive: true });
  await substitute(dest, { RUN_ID: o.runId, BASE_IMAGE: o.baseImage }, o.quick);
  await gitCommit(dest);
  return dest;
}

/**
 * Gives the bench repository another content key while leaving every build
 * step as it is: the config's `name` (which no step reads) is changed and
 * committed. The layer cases need it: the moving tag says which key it was
 * made for, so with the old key a start would be an exact hit through it.
 */
export async function newExactKey(repo: string, label: string): Promise<void> {
  const file = join(repo, '.devcontainer', 'devcontainer.json');
  const text = await readFile(file, 'utf8');
  const edits = modify(text, ['name'], `warmstart bench (${label})`, { formattingOptions: { insertSpaces: true, tabSize: 2 } });
  await writeFile(file, applyEdits(text, edits));
  const r = await sh(
    'git',
    ['-c', 'user.email=bench@warmstart.invalid', '-c', 'user.name=warmstart bench', 'commit', '-qam', `another key: ${label}`],
    { cwd: repo },
  );
  if (r.code !== 0) throw new Error(`git commit: ${r.stderr}`);
}

/** A repository from a file map (the serve phase's small workspaces), committed. */
export async function makeRepoFromFiles(dest: string, files: Record<string, string>): Promise<string> {
  for (const [path, content] of Object.entries(files)) {
    const full = join(dest, path);
    await mkdir(dirname(full), { recursive: true });
    await writeFile(full, content, { mode: path.endsWith('.sh') ? 0o755 : 0o644 });
  }
  await gitCommit(dest);
  return dest;
}
