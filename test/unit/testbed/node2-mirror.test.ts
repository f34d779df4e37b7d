// test/testbed/node2.sh fetches the next release's engine from the machine's
// own Debian mirror, whichever way its apt sources are written.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const NODE2 = fileURLToPath(new URL('../../testbed/node2.sh', import.meta.url));
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ws-node2-mirror-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function mirror(files: { sources?: string; list?: string }): Promise<string> {
  const sources = join(dir, `${Math.random().toString(36).slice(2)}.sources`);
  const list = join(dir, `${Math.random().toString(36).slice(2)}.list`);
  if (files.sources !== undefined) await writeFile(sources, files.sources);
  if (files.list !== undefined) await writeFile(list, files.list);
  const r = await execa('bash', [NODE2, 'mirror', sources, list]);
  return String(r.stdout);
}

describe('node2.sh mirror detection', () => {
  it('reads a deb822 debian.sources, skipping the security archive and comments', async () => {
    const sources = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: http://ftp.de.debian.org/debian/ http://other.example/debian
Suites: bookworm bookworm-updates
Components: main
`;
    expect(await mirror({ sources })).toBe('http://ftp.de.debian.org/debian/');
  });

  it('reads a one-line sources.list with options and a cdrom entry', async () => {
    const list = `# deb http://commented.example/debian bookworm main
deb cdrom:[Debian GNU/Linux 12.5.0 _Bookworm_]/ bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://security.debian.org/debian-security bookworm-security main
deb [arch=amd64] https://mirror.example/debian bookworm main contrib
deb-src http://src.example/debian bookworm main
`;
    expect(await mirror({ list })).toBe('https://mirror.example/debian');
  });

  it('prefers debian.sources, and prints nothing when neither names a mirror (deb.debian.org is used)', async () => {
    expect(await mirror({ sources: 'URIs: http://a.example/debian\n', list: 'deb http://b.example/debian bookworm main\n' })).toBe(
      'http://a.example/debian',
    );
    expect(await mirror({ list: 'deb cdrom:[x]/ bookworm main\n' })).toBe('');
    expect(await mirror({})).toBe('');
  });
});
