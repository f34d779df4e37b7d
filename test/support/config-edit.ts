import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { applyEdits, modify } from 'jsonc-parser';

/**
 * Leaves a repository's layers as they are but gives its config another
 * content key, so the next start misses the exact tag and takes the layer
 * path: a `name` (which no build step reads) is set in the config and
 * committed. Deleting the exact tag from the registry would not do: the
 * moving and exact tags point at one manifest, and the registry deletes
 * manifests, not tags.
 */
export async function missExactTag(repo: string, configPath = '.devcontainer/devcontainer.json'): Promise<void> {
  const file = join(repo, configPath);
  const text = await readFile(file, 'utf8');
  const edits = modify(text, ['name'], `layer path ${Date.now()}-${Math.random()}`, { formattingOptions: { insertSpaces: true, tabSize: 2 } });
  await writeFile(file, applyEdits(text, edits));
  await execa('git', ['-c', 'user.email=t@warmstart.invalid', '-c', 'user.name=t', 'commit', '-qam', 'another exact key'], { cwd: repo });
}
