/**
 * The CLI runs with the daemon's environment file (cli/env-file.ts): its
 * values under the command's own environment, the default file only when it
 * exists, a named one that cannot be read a configuration error, and a line
 * it cannot read named by number only (it may hold a secret).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../agent/src/cli/commands.js';
import { DEFAULT_ENV_FILE, parseEnvFile, withEnvFile } from '../../../agent/src/cli/env-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warmstart-envfile-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('parseEnvFile', () => {
  it('reads KEY=value lines, comments, blanks and quotes; refuses anything else by line number only', () => {
    const text = [
      '# a comment',
      '; another',
      '',
      'WARMSTART_CACHE_REGISTRY=127.0.0.1:5000/ns',
      'export WARMSTART_NODE_ID = "node 1"',
      "WARMSTART_X='a=b'",
      'EMPTY=',
    ].join('\n');
    expect(parseEnvFile(text, '/etc/warmstart/env')).toEqual({
      WARMSTART_CACHE_REGISTRY: '127.0.0.1:5000/ns',
      WARMSTART_NODE_ID: 'node 1',
      WARMSTART_X: 'a=b',
      EMPTY: '',
    });
    expect(() => parseEnvFile('OK=1\nthis is hunter2 a secret\n', '/e')).toThrow('/e: line 2 is not KEY=value');
    try {
      parseEnvFile('hunter2-secret', '/e');
    } catch (err) {
      expect(String((err as Error).message)).not.toContain('hunter2');
    }
  });
});

describe('withEnvFile', () => {
  it("the file's values are defaults: the command's own environment wins, an empty value included", async () => {
    const file = join(dir, 'env');
    await writeFile(file, 'WARMSTART_CACHE_REGISTRY=from-file:5000\nWARMSTART_NODE_ID=file-node\nWARMSTART_GIT_TOKEN=t0ken-from-file\n');
    const r = withEnvFile(['doctor', '--env-file', file, '--json'], { WARMSTART_NODE_ID: 'shell-node', WARMSTART_GIT_TOKEN: '' });
    expect(r.argv).toEqual(['doctor', '--json']);
    expect(r.env).toMatchObject({ WARMSTART_CACHE_REGISTRY: 'from-file:5000', WARMSTART_NODE_ID: 'shell-node', WARMSTART_GIT_TOKEN: '' });
    expect(withEnvFile([`--env-file=${file}`, 'doctor'], {}).argv).toEqual(['doctor']);
    // after `--` it is an argument
    expect(withEnvFile(['up', '--', '--env-file', file], { WARMSTART_ENV_FILE: '' }).argv).toEqual(['up', '--', '--env-file', file]);
  });

  it('reads the default file only when it is there; says so when it is there but unreadable; none with none or WARMSTART_ENV_FILE=', () => {
    const missing = Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    const denied = Object.assign(new Error('EACCES'), { code: 'EACCES' });
    const reads: string[] = [];
    const reader =
      (err: Error | null, text = '') =>
      (p: string) => {
        reads.push(p);
        if (err) throw err;
        return text;
      };
    expect(withEnvFile(['doctor'], {}, reader(missing))).toMatchObject({ env: {}, note: null });
    expect(withEnvFile(['doctor'], {}, reader(denied)).note).toBe(`${DEFAULT_ENV_FILE} not read (EACCES): running with this environment only`);
    expect(withEnvFile(['doctor'], {}, reader(null, 'A=1')).env).toEqual({ A: '1' });
    expect(reads.every((p) => p === DEFAULT_ENV_FILE)).toBe(true);
    reads.length = 0;
    expect(withEnvFile(['doctor', '--env-file', 'none'], {}, reader(null, 'A=1')).env).toEqual({});
    expect(withEnvFile(['doctor'], { WARMSTART_ENV_FILE: '' }, reader(null, 'A=1')).env).toEqual({ WARMSTART_ENV_FILE: '' });
    expect(reads).toEqual([]);
  });

  it('a named file that cannot be read is a configuration error: exit 2, nothing run', async () => {
    let err = '';
    const code = await main(['doctor', '--env-file', join(dir, 'nope')], {
      stdout: () => undefined,
      stderr: (t) => void (err += t),
      readStdin: async () => '',
      env: {},
      cwd: dir,
    });
    expect(code).toBe(2);
    expect(err).toContain(`INVALID_ARGUMENT: cannot read the environment file ${join(dir, 'nope')}`);
  });
});
