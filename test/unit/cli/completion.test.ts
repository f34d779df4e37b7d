/**
 * `warmstart completion bash|zsh|fish` (cli/completion.ts): generated from the
 * usage text. The bash script is run in a real bash to complete words.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../agent/src/cli/commands.js';

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, {
    stdout: (t) => void (out += t),
    stderr: (t) => void (err += t),
    readStdin: async () => '',
    env: { WARMSTART_ENV_FILE: '' },
    cwd: '/',
  });
  return { code, out, err };
}

/** What bash offers for `words` (the last one is being typed). */
function complete(script: string, words: string[]): string[] {
  const line = `source "$1"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _warmstart; printf '%s\\n' "\${COMPREPLY[@]}"`;
  return execFileSync('bash', ['-c', line, 'bash', script], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
}

describe('completion', () => {
  it("bash: commands, subcommands and each one's flags, as the usage lists them", async () => {
    const r = await run(['completion', 'bash']);
    expect(r.code).toBe(0);
    const dir = await mkdtemp(join(tmpdir(), 'warmstart-completion-'));
    try {
      const file = join(dir, 'warmstart.bash');
      await writeFile(file, r.out);
      expect(complete(file, ['warmstart', 'ima'])).toEqual(['image']);
      expect(complete(file, ['warmstart', 'image', ''])).toEqual(['create', 'list', 'rm']);
      expect(complete(file, ['warmstart', 'image', 'create', '--with'])).toEqual(['--with-workspace']);
      expect(complete(file, ['warmstart', 'up', 'octo/app', '--no-'])).toEqual(['--no-cache', '--no-push']);
      expect(complete(file, ['warmstart', 'machine', 'up', '--sn'])).toEqual(['--snapshot']);
      expect(complete(file, ['warmstart', 'completion', ''])).toEqual(['bash', 'fish', 'zsh']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('zsh and fish scripts; another shell is bad input', async () => {
    expect((await run(['completion', 'zsh'])).out).toMatch(/^#compdef warmstart\n[\s\S]*complete -F _warmstart warmstart/);
    const fish = (await run(['completion', 'fish'])).out;
    expect(fish).toContain('complete -c warmstart -n "__fish_seen_subcommand_from image" -a "create list rm"');
    expect(fish).toContain('complete -c warmstart -n "__fish_seen_subcommand_from image" -l with-workspace');
    const bad = await run(['completion', 'powershell']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('INVALID_ARGUMENT');
  });
});
