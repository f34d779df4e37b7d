import { describe, expect, it } from 'vitest';
import { isWarmstartError } from '../../../agent/src/errors.js';
import { machineKey, type MachineKeyInput } from '../../../agent/src/machines/machine-key.js';

const base: MachineKeyInput = {
  backend: 'incus',
  base: 'debian-12',
  provisionScript: Buffer.from('#!/bin/sh\napt-get install -y git\n'),
  files: [
    { path: '/etc/app/a.conf', content: Buffer.from('alpha\n') },
    { path: '/etc/app/b.conf', content: Buffer.from([0, 1, 2, 255]) },
  ],
};

describe('machineKey', () => {
  it('is a sha256 and stable for the same inputs', () => {
    expect(machineKey(base)).toMatch(/^[0-9a-f]{64}$/);
    expect(machineKey({ ...base, files: base.files.map((f) => ({ ...f, content: Buffer.from(f.content) })) })).toBe(machineKey(base));
  });

  it('changes with any one byte of the provision script', () => {
    const script = Buffer.from(base.provisionScript!);
    for (const i of [0, 5, script.length - 1]) {
      const changed = Buffer.from(script);
      changed[i] = changed[i]! ^ 1;
      expect(machineKey({ ...base, provisionScript: changed })).not.toBe(machineKey(base));
    }
  });

  it('changes with any one byte of a listed file, including binary content', () => {
    const changed = Buffer.from([0, 1, 2, 254]);
    expect(machineKey({ ...base, files: [base.files[0]!, { path: '/etc/app/b.conf', content: changed }] })).not.toBe(machineKey(base));
    expect(machineKey({ ...base, files: [{ path: '/etc/app/a.conf', content: Buffer.from('alpha') }, base.files[1]!] })).not.toBe(machineKey(base));
  });

  it('does not depend on the order of the --file flags', () => {
    expect(machineKey({ ...base, files: [...base.files].reverse() })).toBe(machineKey(base));
  });

  it('treats the same destination written two ways as one file', () => {
    const files = [
      { path: '/etc//app/./a.conf', content: Buffer.from('alpha\n') },
      { path: '/etc/app/b.conf/', content: Buffer.from([0, 1, 2, 255]) },
    ];
    expect(machineKey({ ...base, files })).toBe(machineKey(base));
  });

  it('changes with the backend, the base, a file path, adding a file, or dropping the script', () => {
    const keys = [
      machineKey(base),
      machineKey({ ...base, backend: 'docker' }),
      machineKey({ ...base, base: 'debian-13' }),
      machineKey({ ...base, files: [{ ...base.files[0]!, path: '/etc/app/c.conf' }, base.files[1]!] }),
      machineKey({ ...base, files: [...base.files, { path: '/x', content: Buffer.alloc(0) }] }),
      machineKey({ ...base, provisionScript: undefined }),
      machineKey({ ...base, provisionScript: Buffer.alloc(0) }),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('does not let content move between files unnoticed', () => {
    // same bytes overall, split differently: a naive concatenation would collide
    const a = machineKey({
      ...base,
      files: [
        { path: '/a', content: Buffer.from('xy') },
        { path: '/b', content: Buffer.from('z') },
      ],
    });
    const b = machineKey({
      ...base,
      files: [
        { path: '/a', content: Buffer.from('x') },
        { path: '/b', content: Buffer.from('yz') },
      ],
    });
    expect(a).not.toBe(b);
  });

  it('refuses relative and duplicate destinations', () => {
    const bad = (files: MachineKeyInput['files']): unknown => {
      try {
        machineKey({ ...base, files });
        return null;
      } catch (err) {
        return err;
      }
    };
    expect(isWarmstartError(bad([{ path: 'etc/a', content: Buffer.alloc(0) }]), 'INVALID_ARGUMENT')).toBe(true);
    expect(isWarmstartError(bad([{ path: '/', content: Buffer.alloc(0) }]), 'INVALID_ARGUMENT')).toBe(true);
    const dup = [
      { path: '/etc/a', content: Buffer.from('1') },
      { path: '/etc//a', content: Buffer.from('2') },
    ];
    expect(isWarmstartError(bad(dup), 'INVALID_ARGUMENT')).toBe(true);
  });
});
