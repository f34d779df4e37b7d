/**
 * `warmstart completion bash|zsh|fish`: a completion script for the shell,
 * generated from the usage text (commands.ts), so it offers exactly the
 * commands, subcommands and flags the usage lists. Install, for example:
 * `warmstart completion bash > /etc/bash_completion.d/warmstart`.
 */

/** Commands, their subcommands and flags, read from the usage entries. */
export interface CompletionTable {
  commands: string[];
  /** command → subcommands (empty when it has none) */
  subcommands: Record<string, string[]>;
  /** `command` or `command subcommand` → its flags */
  flags: Record<string, string[]>;
}

/** `entries`: the usage entries without their `warmstart ` prefix (commands.ts usageEntries). */
export function completionTable(entries: readonly string[]): CompletionTable {
  const table: CompletionTable = { commands: [], subcommands: {}, flags: {} };
  for (const entry of entries) {
    const words = entry.split(/\s+/);
    const command = words[0]!;
    if (command.startsWith('-')) continue; // `--version`: a flag of its own
    if (!table.commands.includes(command)) table.commands.push(command);
    table.subcommands[command] ??= [];
    const second = words[1] ?? '';
    // `create|restore|list|delete`, `up`, `ref`: plain words (not <args>, not [options]) name subcommands
    const subs = /^[a-z][a-z|-]*$/.test(second) ? second.split('|') : [];
    for (const s of subs) if (!table.subcommands[command]!.includes(s)) table.subcommands[command]!.push(s);
    const flags = [...new Set(entry.match(/--[a-z][a-z-]*/g) ?? [])];
    for (const key of subs.length ? subs.map((s) => `${command} ${s}`) : [command]) {
      table.flags[key] = [...new Set([...(table.flags[key] ?? []), ...flags, '--help'])];
    }
  }
  return table;
}

const q = (words: string[]): string => words.join(' ');

export function completionScript(shell: string, table: CompletionTable): string | null {
  if (shell === 'bash') {
    const arm = (key: string, words: string[]): string => `      ${key.includes(' ') ? `"${key}"` : key}) opts="${q(words)}" ;;`;
    const withSubs = Object.entries(table.subcommands).filter(([, s]) => s.length > 0);
    const pairs = Object.entries(table.flags).filter(([k]) => k.includes(' '));
    const singles = Object.entries(table.flags).filter(([k]) => !k.includes(' '));
    return [
      '# bash completion for warmstart (warmstart completion bash)',
      '_warmstart() {',
      '  local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]} sub=${COMP_WORDS[2]} opts=""',
      '  if [ "$COMP_CWORD" -eq 1 ]; then',
      `    opts="${q(table.commands)} --version --help --env-file"`,
      '  elif [ "$COMP_CWORD" -eq 2 ] && [[ "$cur" != -* ]]; then',
      '    case "$cmd" in',
      ...withSubs.map(([c, subs]) => arm(c, subs)),
      '    esac',
      '  fi',
      '  if [ -z "$opts" ]; then',
      '    case "$cmd $sub" in',
      ...pairs.map(([k, f]) => arm(k, f)),
      '    esac',
      '  fi',
      '  if [ -z "$opts" ]; then',
      '    case "$cmd" in',
      ...singles.map(([k, f]) => arm(k, f)),
      '    esac',
      '  fi',
      '  [[ "$cur" == -* && $COMP_CWORD -gt 1 ]] && opts="$opts --env-file"',
      '  mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")',
      '}',
      'complete -F _warmstart warmstart',
      '',
    ].join('\n');
  }
  if (shell === 'zsh') {
    return `#compdef warmstart
# zsh completion for warmstart (warmstart completion zsh): the bash one, through bashcompinit
autoload -Uz bashcompinit && bashcompinit
${completionScript('bash', table)}`;
  }
  if (shell === 'fish') {
    const lines = [`# fish completion for warmstart (warmstart completion fish)`, `complete -c warmstart -f`];
    lines.push(`complete -c warmstart -n "__fish_use_subcommand" -a "${q(table.commands)}"`);
    for (const [c, subs] of Object.entries(table.subcommands)) {
      if (subs.length) lines.push(`complete -c warmstart -n "__fish_seen_subcommand_from ${c}" -a "${q(subs)}"`);
    }
    for (const [key, flags] of Object.entries(table.flags)) {
      const command = key.split(' ')[0]!;
      for (const f of flags) lines.push(`complete -c warmstart -n "__fish_seen_subcommand_from ${command}" -l ${f.slice(2)}`);
    }
    return `${[...new Set(lines)].join('\n')}\n`;
  }
  return null;
}
