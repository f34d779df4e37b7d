import { cp, mkdtemp, readdir, readFile, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

export const FIXTURES = fileURLToPath(new URL('../fixtures/repos/', import.meta.url));

/** A unique id for one test run; fixtures put it in a LABEL so every image they build can be found and removed. */
export function runId(prefix = 't'): string {
  return `${prefix}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

async function substitute(dir: string, vars: Record<string, string>): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await substitute(path, vars);
    else if (entry.isFile()) {
      const text = await readFile(path, 'utf8');
      const out = Object.entries(vars).reduce((t, [k, v]) => t.split(`@@${k}@@`).join(v), text);
      if (out !== text) await writeFile(path, out, { mode: (await stat(path)).mode });
    }
  }
}

/**
 * Makes a git repository from a fixture folder (or a file map) in a temp dir:
 * `<tmp>/<owner>/<name>`, so the cache ref's owner/name are predictable.
 * `@@RUN_ID@@` and `@@BASE_IMAGE@@` in the files are replaced.
 */
export async function makeRepo(
  source: string | Record<string, string>,
  o: { runId: string; baseImage: string; owner?: string; name?: string },
): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'warmstart-repo-'));
  const dir = join(root, o.owner ?? 'fixtures', o.name ?? (typeof source === 'string' ? source : 'repo'));
  if (typeof source === 'string') {
    await cp(join(FIXTURES, source), dir, { recursive: true });
  } else {
    for (const [path, content] of Object.entries(source)) {
      const full = join(dir, path);
      await execa('mkdir', ['-p', join(full, '..')]);
      await writeFile(full, content, { mode: path.endsWith('.sh') ? 0o755 : 0o644 });
    }
  }
  await substitute(dir, { RUN_ID: o.runId, BASE_IMAGE: o.baseImage });
  const git = (args: string[]) => execa('git', ['-c', 'user.email=test@warmstart.invalid', '-c', 'user.name=warmstart test', ...args], { cwd: dir });
  await git(['init', '-q', '-b', 'main']);
  await git(['add', '-A']);
  await git(['commit', '-q', '-m', 'fixture']);
  return dir;
}

/** A Dockerfile config with two RUN steps (`/step-one`, `/step-two`), for makeRepo: what the builder tests build on several nodes. */
export function twoStepFiles(readme: string): Record<string, string> {
  return {
    '.devcontainer/devcontainer.json': '{ "build": { "dockerfile": "Dockerfile" } }\n',
    '.devcontainer/Dockerfile': `FROM @@BASE_IMAGE@@
LABEL warmstart.test-run=@@RUN_ID@@
RUN echo one > /step-one
RUN echo two > /step-two && sleep 1
`,
    'README.md': `${readme}\n`,
  };
}
