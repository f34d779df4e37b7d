/**
 * Secret settings come three ways, so an operator can keep them out of the
 * environment file: the variable itself (`WARMSTART_GIT_TOKEN=...`), a file
 * it names (`WARMSTART_GIT_TOKEN_FILE=/etc/warmstart/git-token`), or a
 * systemd credential of the variable's name (`LoadCredential=WARMSTART_GIT_TOKEN:/etc/warmstart/git-token`,
 * read from `$CREDENTIALS_DIRECTORY`). The value and `_FILE` together are a
 * configuration error; a file's last newline is dropped. Errors name the
 * setting and the path, never the content.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WarmstartError } from '../errors.js';

export function secretSetting(env: NodeJS.ProcessEnv, name: string, read: (p: string) => string = (p) => readFileSync(p, 'utf8')): string | null {
  const value = env[name] === undefined || env[name] === '' ? null : env[name]!;
  const file = env[`${name}_FILE`] === undefined || env[`${name}_FILE`] === '' ? null : env[`${name}_FILE`]!;
  if (value !== null && file !== null) {
    throw new WarmstartError('INVALID_ARGUMENT', `${name} and ${name}_FILE are both set: give one`);
  }
  if (value !== null) return value;
  const fromFile = (path: string, what: string, missingIsNone: boolean): string | null => {
    let text: string;
    try {
      text = read(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (missingIsNone && code === 'ENOENT') return null;
      throw new WarmstartError('INVALID_ARGUMENT', `cannot read ${what} ${path}`, { detail: code ?? 'error' });
    }
    const secret = text.replace(/\r?\n$/, '');
    if (secret === '') throw new WarmstartError('INVALID_ARGUMENT', `${what} ${path} is empty`);
    return secret;
  };
  if (file !== null) return fromFile(file, `${name}_FILE`, false);
  const credentials = env.CREDENTIALS_DIRECTORY;
  if (credentials) return fromFile(join(credentials, name), `the systemd credential ${name}`, true);
  return null;
}
