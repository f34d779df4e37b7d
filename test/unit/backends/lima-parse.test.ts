import { describe, expect, it } from 'vitest';
import { failureMessage, logMessages, parseList, parseSnapshotTable, parseVersion } from '../../../agent/src/backends/lima-cli.js';
import { checkSnapshotResult, checkTag } from '../../../agent/src/backends/lima-snapshots.js';
import { isWarmstartError } from '../../../agent/src/errors.js';

const stderr = [
  'time="2025-07-03T10:00:00Z" level=warning msg="`limactl snapshot` is experimental"',
  'time="2025-07-03T10:00:00Z" level=warning msg="output: Error: Snapshot \'s\' does not exist in one or more devices"',
  'time="2025-07-03T10:00:01Z" level=fatal msg=unimplemented',
  '',
].join('\n');

function codeOf(f: () => void): string | null {
  try {
    f();
    return null;
  } catch (e) {
    return isWarmstartError(e) ? e.code : 'untyped';
  }
}

describe('limactl output', () => {
  it('reads logrus text lines, quoted or not', () => {
    expect(logMessages(stderr, 'fatal')).toEqual(['unimplemented']);
    expect(logMessages(stderr, 'warning')).toEqual([
      '`limactl snapshot` is experimental',
      "output: Error: Snapshot 's' does not exist in one or more devices",
    ]);
    expect(logMessages('level=fatal msg="instance \\"x\\" not found"', 'fatal')).toEqual(['instance "x" not found']);
    expect(failureMessage({ exitCode: 1, stdout: '', stderr: 'ssh: connect refused\n', timedOut: false })).toBe('ssh: connect refused');
  });

  it('reads list --json lines and the version', () => {
    expect(parseList('{"name":"a","status":"Running","dir":"/l/a","vmType":"qemu"}\n{"name":"b","status":"Stopped","dir":"/l/b"}\n')).toEqual([
      { name: 'a', status: 'Running', dir: '/l/a', vmType: 'qemu' },
      { name: 'b', status: 'Stopped', dir: '/l/b' },
    ]);
    expect(parseList('')).toEqual([]);
    expect(parseVersion('limactl version 2.1.4\n')).toEqual([2, 1, 4]);
    expect(parseVersion('limactl version 1.0.0-beta.0\n')).toEqual([1, 0, 0]);
    expect(parseVersion('limactl version HEAD-abcdef\n')).toBeNull();
  });

  it("reads qemu-img's and HMP's snapshot tables", () => {
    const qemuImg = [
      'ID        TAG               VM SIZE                DATE     VM CLOCK     ICOUNT',
      '1         snap1                 0 B 2025-07-03 10:00:00 00:00:00.000          0',
      '2         snap2            1.41 MiB 2025-07-03 11:00:00 00:00:10.123          0',
      '',
    ].join('\n');
    expect(parseSnapshotTable(qemuImg)).toEqual([
      { tag: 'snap1', createdAt: new Date(2025, 6, 3, 10, 0, 0).toISOString() },
      { tag: 'snap2', createdAt: new Date(2025, 6, 3, 11, 0, 0).toISOString() },
    ]);
    expect(parseSnapshotTable('--        s          1.41 MiB 2025-07-03 11:00:00 00:00:10.123\n')).toEqual([
      { tag: 's', createdAt: new Date(2025, 6, 3, 11, 0, 0).toISOString() },
    ]);
    expect(parseSnapshotTable('')).toEqual([]);
  });
});

describe('snapshot results', () => {
  it('maps the driver refusal to BACKEND_UNSUPPORTED and a QEMU refusal Lima exits 0 for to BACKEND_ERROR', () => {
    expect(codeOf(() => checkSnapshotResult({ exitCode: 1, stdout: '', stderr, timedOut: false }, 'snapshot create'))).toBe('BACKEND_UNSUPPORTED');
    expect(
      codeOf(() => checkSnapshotResult({ exitCode: 0, stdout: '', stderr: stderr.split('\n').slice(0, 2).join('\n'), timedOut: false }, 'x')),
    ).toBe('BACKEND_ERROR');
    expect(codeOf(() => checkSnapshotResult({ exitCode: 1, stdout: '', stderr: 'level=fatal msg="exit status 1"', timedOut: false }, 'x'))).toBe(
      'BACKEND_ERROR',
    );
    expect(codeOf(() => checkSnapshotResult({ exitCode: 0, stdout: '', stderr: stderr.split('\n')[0]!, timedOut: false }, 'x'))).toBeNull();
  });

  it('takes names QEMU cannot mistake for an ID or split', () => {
    for (const ok of ['s1', 'before-upgrade', 'a.b_c', '1a']) expect(codeOf(() => checkTag(ok))).toBeNull();
    for (const bad of ['', '1', '42', 'has space', '-x', 'x'.repeat(64)]) expect(codeOf(() => checkTag(bad))).toBe('INVALID_ARGUMENT');
  });
});
