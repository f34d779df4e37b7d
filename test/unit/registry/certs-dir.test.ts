/**
 * A registry's certs.d entry (agent/src/registry/certs-dir.ts), read from
 * real directories: `*.crt` are CAs, `*.cert` + `*.key` a client pair, and a
 * half pair is refused as dockerd refuses it.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readHostCertificates } from '../../../agent/src/registry/certs-dir.js';
import { rejection } from '../../support/rejection.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warmstart-certs-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function entry(host: string, files: Record<string, string>): Promise<void> {
  await mkdir(join(dir, host), { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, host, name), text);
}

describe('readHostCertificates', () => {
  it('null without an entry, or with one that holds none of these files', async () => {
    expect(await readHostCertificates(dir, 'absent.example:5000')).toBeNull();
    expect(await readHostCertificates(join(dir, 'no-such-dir'), 'absent.example:5000')).toBeNull();
    await entry('empty.example:5000', { 'README.txt': 'nothing here' });
    expect(await readHostCertificates(dir, 'empty.example:5000')).toBeNull();
  });

  it('every *.crt is a CA, in name order; *.cert with its *.key is a client pair', async () => {
    await entry('reg.example:5000', { 'b.crt': 'CA B', 'a.crt': 'CA A', 'client.cert': 'CERT', 'client.key': 'KEY' });
    expect(await readHostCertificates(dir, 'reg.example:5000')).toEqual({
      dir: join(dir, 'reg.example:5000'),
      ca: ['CA A', 'CA B'],
      clientPairs: [{ name: 'client.cert', cert: 'CERT', key: 'KEY' }],
    });
  });

  it('a client certificate without its key, or a key without its certificate: REGISTRY_ERROR naming the files', async () => {
    await entry('nokey.example', { 'client.cert': 'CERT', 'ca.crt': 'CA' });
    const noKey = await rejection(readHostCertificates(dir, 'nokey.example'));
    expect(noKey.code).toBe('REGISTRY_ERROR');
    expect(noKey.message).toBe(
      `certificates for nokey.example in ${join(dir, 'nokey.example')}: client certificate client.cert has no key client.key (a CA certificate must end in .crt)`,
    );
    await entry('nocert.example', { 'client.key': 'KEY' });
    const noCert = await rejection(readHostCertificates(dir, 'nocert.example'));
    expect(noCert.message).toMatch(/key client\.key has no client certificate client\.cert$/);
    expect(`${noCert.message}${noCert.detail ?? ''}`).not.toContain('KEY');
  });

  it('a host that would leave the directory is not read', async () => {
    await entry('inside', { 'ca.crt': 'CA' });
    expect(await readHostCertificates(join(dir, 'inside', 'x'), '..')).toBeNull();
    expect(await readHostCertificates(dir, '../inside')).toBeNull();
  });
});
