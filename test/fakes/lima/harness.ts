// Sets up a throwaway $LIMA_HOME for the fake limactl and runs it.
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

export const FAKE_LIMACTL = fileURLToPath(new URL('./limactl', import.meta.url));

export interface FakeRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface FakeLima {
  root: string;
  home: string;
  /** environment for the fake: LIMA_FAKE_VERSION and the argv record */
  env: Record<string, string>;
  run(args: string[], o?: { input?: string; version?: string }): Promise<FakeRun>;
  /** A stopped instance made from a template whose image holds `files`. */
  makeBase(name: string, o?: { vmType?: 'qemu' | 'vz'; files?: Record<string, string> }): Promise<void>;
  /** the argv of every call so far */
  calls(): Promise<string[][]>;
  cleanup(): Promise<void>;
}

export async function fakeLima(o: { version?: string } = {}): Promise<FakeLima> {
  await chmod(FAKE_LIMACTL, 0o755); // the executable bit can be lost in a checkout
  const root = await mkdtemp(join(tmpdir(), 'warmstart-lima-'));
  const home = join(root, 'lima-home');
  const record = join(root, 'calls.jsonl');
  const env = { LIMA_FAKE_VERSION: o.version ?? '2.3.0', LIMA_FAKE_RECORD: record };
  const run: FakeLima['run'] = async (args, ro = {}) => {
    const r = await execa(FAKE_LIMACTL, args, {
      env: { ...env, LIMA_HOME: home, ...(ro.version ? { LIMA_FAKE_VERSION: ro.version } : {}) },
      reject: false,
      stripFinalNewline: false,
      ...(ro.input === undefined ? { stdin: 'ignore' as const } : { input: ro.input }),
    });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  return {
    root,
    home,
    env,
    run,
    async makeBase(name, bo = {}) {
      const image = join(root, `${name}.img`);
      await writeFile(image, JSON.stringify({ fakeLimaDisk: 1, files: bo.files ?? { '/etc/os-release': 'ID=fake\n' }, deleted: [], snapshots: [] }));
      const template = join(root, `${name}.yaml`);
      await writeFile(template, `vmType: ${bo.vmType ?? 'qemu'}\nimages:\n- location: "${image}"\n`);
      const r = await run(['create', '--tty=false', `--name=${name}`, template]);
      if (r.exitCode !== 0) throw new Error(`fake limactl create failed: ${r.stderr}`);
    },
    async calls() {
      const text = await readFile(record, 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as string[]);
    },
    async cleanup() {
      await rm(root, { recursive: true, force: true });
    },
  };
}
