import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * What the fault suite's files share (test/faults/global-setup.ts makes it):
 * the suite dir, its secrets, the fault matrix and the printed report.
 */
export interface SuiteSecrets {
  /** ms since epoch when the suite began (the audit looks at registry pushes since) */
  startedAt: number;
  /** the git token every https clone of the suite uses */
  gitToken: string;
  /**
   * the node-wide git token every suite agent is given (WARMSTART_GIT_TOKEN,
   * for github.com only): no repository of the suite may receive it, and the
   * audit looks for it in every container too
   */
  nodeGitToken: string;
  /** the API token every `warmstart serve` of the suite is given */
  apiToken: string;
  /** a PEM private key handed to agents as their GitHub App key */
  githubAppKeyFile: string;
}

export const MATRIX_FILE = 'matrix.ndjson';
export const REPORT_FILE = 'report.txt';

export function suiteDir(): string {
  const dir = process.env.WARMSTART_FAULTS_DIR;
  if (!dir) throw new Error('WARMSTART_FAULTS_DIR is unset: run the fault suite with `npm run test:faults`');
  return dir;
}

export function suiteSecrets(): SuiteSecrets {
  return JSON.parse(readFileSync(join(suiteDir(), 'secrets', 'secrets.json'), 'utf8')) as SuiteSecrets;
}

/** The env a suite agent gets for its GitHub App (a real key; it only ever serves ghcr.io, so it stays unused here). */
export function githubAppEnv(): Record<string, string> {
  return {
    WARMSTART_GITHUB_APP_ID: '424242',
    WARMSTART_GITHUB_APP_PRIVATE_KEY_FILE: suiteSecrets().githubAppKeyFile,
    WARMSTART_GITHUB_INSTALLATION_ID: '4242',
  };
}

export interface Row {
  fault: string;
  expected: string;
}
interface Recorded extends Row {
  observed: string;
  ok: boolean;
}

/**
 * One row of the fault matrix: runs `check` (which asserts, and returns what it
 * observed), records the row either way, and fails the test when `check` does.
 */
export async function faultRow(row: Row, check: () => Promise<string>): Promise<void> {
  let observed: string;
  try {
    observed = await check();
  } catch (err) {
    const first = String((err as Error)?.message ?? err)
      .split('\n')[0]!
      .slice(0, 160);
    record({ ...row, observed: `FAILED: ${first}`, ok: false });
    throw err;
  }
  record({ ...row, observed, ok: true });
}

function record(r: Recorded): void {
  appendFileSync(join(suiteDir(), MATRIX_FILE), `${JSON.stringify(r)}\n`);
}

/** A titled block of text printed after the matrix (fuzzer counts, load table, audit summary). */
export function report(title: string, body: string): void {
  appendFileSync(join(suiteDir(), REPORT_FILE), `\n## ${title}\n${body.trimEnd()}\n`);
  process.stdout.write(`\n## ${title}\n${body.trimEnd()}\n`);
}

/** A plain-text table, columns padded to their widest cell. */
export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** The fault matrix from the recorded rows. */
export function renderMatrix(ndjson: string): string {
  const rows = ndjson
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Recorded);
  const failed = rows.filter((r) => !r.ok).length;
  return `## Fault matrix (${rows.length} rows, ${failed} failed)\n${table(
    ['fault', 'expected', 'observed'],
    rows.map((r) => [r.fault, r.expected, r.observed]),
  )}`;
}
