import { execa } from 'execa';
import { WarmstartError } from '../errors.js';

/** One instance as `limactl list --json` prints it (one JSON object per line). */
export interface LimaInstance {
  name: string;
  /** Running, Stopped, Broken, ... */
  status: string;
  /** $LIMA_HOME/<name>, symlinks resolved */
  dir: string;
  /** qemu, vz, wsl2, krunkit; absent from very old Lima */
  vmType?: string;
}

/** What one limactl run said; `exitCode` is -1 when it was killed (timeout, signal). */
export interface LimactlResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface LimactlOptions {
  /** the limactl binary; `limactl` on PATH by default */
  limactl?: string;
  /** $LIMA_HOME for limactl; the agent's own environment decides when unset (Lima's default is ~/.lima) */
  limaHome?: string;
  /** more environment for limactl (PATH to qemu, ...); the agent's environment is inherited */
  env?: Record<string, string>;
}

/** Parses `limactl list --json`; blank lines (no instances) give []. */
export function parseList(stdout: string): LimaInstance[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .map((l) => JSON.parse(l) as LimaInstance);
}

/**
 * limactl logs with logrus's text format on a non-terminal stderr
 * (`time="…" level=fatal msg="…"`, msg quoted Go-style when it has spaces).
 * Returns the messages of the given level, unquoted.
 */
export function logMessages(stderr: string, level: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`level=${level} msg=("(?:[^"\\\\]|\\\\.)*"|\\S+)`, 'g');
  for (const m of stderr.matchAll(re)) {
    const raw = m[1]!;
    if (!raw.startsWith('"')) out.push(raw);
    else {
      try {
        out.push(JSON.parse(raw) as string);
      } catch {
        out.push(raw.slice(1, -1));
      }
    }
  }
  return out;
}

/** The error limactl ended with (logrus.Fatal), or its stderr's last line. */
export function failureMessage(r: LimactlResult): string {
  if (r.timedOut) return 'timed out';
  const fatal = logMessages(r.stderr, 'fatal').at(-1);
  if (fatal !== undefined) return fatal;
  const last = r.stderr.trim().split('\n').at(-1);
  return last ? last.slice(-2000) : `exit code ${r.exitCode}`;
}

/** `limactl version 2.1.4` -> [2, 1, 4]; null for a dev build it cannot read. */
export function parseVersion(stdout: string): [number, number, number] | null {
  const m = /version v?(\d+)\.(\d+)\.(\d+)/.exec(stdout);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

export interface SnapshotRow {
  tag: string;
  /** the DATE column, local time of the host, as an ISO string */
  createdAt: string | null;
}

/**
 * Parses `limactl snapshot list` (qemu-img's or HMP's table, heading
 * stripped by Lima): a header with TAG as the second column, then one row per
 * snapshot, TAG second, DATE as `YYYY-MM-DD HH:MM:SS`.
 */
export function parseSnapshotTable(stdout: string): SnapshotRow[] {
  const rows: SnapshotRow[] = [];
  for (const line of stdout.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 2 || fields[1] === 'TAG') continue;
    const d = /(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})/.exec(line);
    const createdAt = d ? new Date(+d[1]!, +d[2]! - 1, +d[3]!, +d[4]!, +d[5]!, +d[6]!).toISOString() : null;
    rows.push({ tag: fields[1]!, createdAt });
  }
  return rows;
}

/** Runs limactl with explicit argv (never a shell string) and hands back what it said. */
export class Limactl {
  private readonly bin: string;
  private readonly env: Record<string, string>;

  constructor(options: LimactlOptions = {}) {
    this.bin = options.limactl ?? 'limactl';
    this.env = { ...(options.env ?? {}), ...(options.limaHome ? { LIMA_HOME: options.limaHome } : {}) };
  }

  async run(args: string[], o: { input?: string; timeoutMs?: number } = {}): Promise<LimactlResult> {
    const r = await execa(this.bin, args, {
      env: this.env,
      extendEnv: true,
      reject: false,
      stripFinalNewline: false,
      timeout: o.timeoutMs ?? 10 * 60_000,
      ...(o.input === undefined ? { stdin: 'ignore' as const } : { input: o.input }),
    });
    if (r.exitCode === undefined && !r.timedOut && r.signal === undefined) {
      throw new WarmstartError('BACKEND_UNAVAILABLE', `cannot run ${this.bin}`, { detail: r.code ?? r.shortMessage, cause: r.cause });
    }
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), timedOut: r.timedOut };
  }

  /** Runs and throws BACKEND_ERROR (or `code`) unless limactl exits 0. */
  async ok(args: string[], what: string, o: { timeoutMs?: number; code?: 'BACKEND_ERROR' | 'BACKEND_PRECONDITION' } = {}): Promise<LimactlResult> {
    const r = await this.run(args, o);
    if (r.exitCode !== 0) throw new WarmstartError(o.code ?? 'BACKEND_ERROR', `limactl ${what} failed`, { detail: failureMessage(r) });
    return r;
  }

  async list(): Promise<LimaInstance[]> {
    return parseList((await this.ok(['list', '--json'], 'list', { timeoutMs: 60_000 })).stdout);
  }
}
