import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { pinnedKey, pinTargets, resolvePins, type PinDeps } from '../../../agent/src/cache/pinned-inputs.js';
import type { RegistryCredentials } from '../../../agent/src/registry/credentials.js';
import { createRegistryClient } from '../../../agent/src/registry/registry-client.js';

// A loopback registry (plain http, as the client talks to 127.*) whose tags
// this test moves: repository path -> tag -> digest. `private/` paths want Basic auth.
const tags = new Map<string, Map<string, string>>();
const seen: string[] = [];
let server: Server;
let host: string;
const PASSWORD = 'pin-test-password';
const digest = (c: string): string => `sha256:${c.repeat(64)}`;

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.authorization ? 'auth' : 'anon'}`);
    const m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(req.url ?? '');
    if (m && m[1]!.startsWith('private/')) {
      const want = `Basic ${Buffer.from(`ci:${PASSWORD}`).toString('base64')}`;
      if (req.headers.authorization !== want) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="test"' }).end();
        return;
      }
    }
    const d = m ? tags.get(m[1]!)?.get(m[2]!) : undefined;
    if (req.method !== 'HEAD' || d === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'docker-content-digest': d, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  tags.clear();
  seen.length = 0;
});

function tag(path: string, t: string, d: string): void {
  if (!tags.has(path)) tags.set(path, new Map());
  tags.get(path)!.set(t, d);
}

const asked: string[] = [];
const deps: PinDeps = {
  registry: createRegistryClient({ timeoutMs: 2000 }),
  async credentialsFor(h) {
    asked.push(h);
    return h === host ? ({ registry: h, username: 'ci', password: PASSWORD, source: 'static' } satisfies RegistryCredentials) : null;
  },
};

describe('pinning moving tags into the exact key (real registry client, loopback registry)', () => {
  it('pins each base and OCI feature to its manifest digest; the key moves with a tag and only then', async () => {
    tag('team/base', 'stable', digest('1'));
    tag('tools/build', '2', digest('2'));
    tag('features/node', '1', digest('3'));
    const dockerfile = `ARG REG=${host}\nFROM \${REG}/team/base:stable AS base\nFROM $REG/tools/build:2\nFROM base\n`;
    const features = { [`${host}/features/node:1`]: { version: '20' }, './local': {} };
    const { targets, reason } = pinTargets(dockerfile, {}, features);
    expect(reason).toBeNull();
    expect(targets).toEqual([
      { kind: 'base', ref: `${host}/team/base:stable` },
      { kind: 'base', ref: `${host}/tools/build:2` },
      { kind: 'feature', ref: `${host}/features/node:1` },
    ]);

    const first = await resolvePins(deps, targets);
    expect(first.reason).toBeNull();
    expect(first.pins!.map((p) => p.digest)).toEqual([digest('1'), digest('2'), digest('3')]);
    const key1 = pinnedKey('c'.repeat(64), first.pins!);

    // Asked again, nothing moved: the same key.
    const again = await resolvePins(deps, targets);
    expect(pinnedKey('c'.repeat(64), again.pins!)).toBe(key1);
    // The content key itself still counts.
    expect(pinnedKey('d'.repeat(64), again.pins!)).not.toBe(key1);

    // The base tag moves: another key.
    tag('team/base', 'stable', digest('4'));
    const moved = await resolvePins(deps, targets);
    const key2 = pinnedKey('c'.repeat(64), moved.pins!);
    expect(key2).not.toBe(key1);

    // The feature tag moves: another key again.
    tag('features/node', '1', digest('5'));
    const featureMoved = await resolvePins(deps, targets);
    expect(pinnedKey('c'.repeat(64), featureMoved.pins!)).not.toBe(key2);
  });

  it('asks each registry with the credentials bound to its host', async () => {
    tag('private/base', 'v1', digest('6'));
    asked.length = 0;
    const out = await resolvePins(deps, [{ kind: 'base', ref: `${host}/private/base:v1` }]);
    expect(out.pins?.[0]?.digest).toBe(digest('6'));
    expect(asked).toEqual([host]);
    expect(seen).toContain(`HEAD /v2/private/base/manifests/v1 auth`);
  });

  it('needs no request for a reference pinned by digest', async () => {
    const d = digest('7');
    const out = await resolvePins(deps, [{ kind: 'base', ref: `${host}/team/base:stable@${d}` }]);
    expect(out).toEqual({ pins: [{ kind: 'base', ref: `${host}/team/base:stable@${d}`, digest: d }], reason: null });
    expect(seen).toEqual([]);
  });

  it('gives no pins, with a reason, when any target is missing, refused or unreachable', async () => {
    tag('team/base', 'stable', digest('1'));
    const ok = { kind: 'base' as const, ref: `${host}/team/base:stable` };
    const missing = await resolvePins(deps, [ok, { kind: 'base', ref: `${host}/team/base:gone` }]);
    expect(missing).toEqual({ pins: null, reason: `base ${host}/team/base:gone was not found in its registry` });

    const anonymous: PinDeps = { ...deps, credentialsFor: async () => null };
    const refused = await resolvePins(anonymous, [{ kind: 'base', ref: `${host}/private/base:v1` }]);
    expect(refused.pins).toBeNull();
    expect(refused.reason).toMatch(/^base .* could not be resolved: REGISTRY_AUTH_FAILED/);

    // A port nothing listens on any more.
    const gone = createServer();
    await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve));
    const port = (gone.address() as AddressInfo).port;
    await new Promise<void>((resolve) => gone.close(() => resolve()));
    const unreachable = await resolvePins(deps, [{ kind: 'feature', ref: `127.0.0.1:${port}/features/x:1` }]);
    expect(unreachable.reason).toMatch(new RegExp(`^feature 127\\.0\\.0\\.1:${port}/features/x:1 could not be resolved: REGISTRY_UNREACHABLE`));

    const bad = await resolvePins(deps, [{ kind: 'base', ref: `${host}/Team/Base:1` }]);
    expect(bad.reason).toMatch(/could not be resolved: INVALID_CACHE_REF/);
    for (const r of [missing.reason, refused.reason, unreachable.reason, bad.reason]) expect(r).not.toContain(PASSWORD);
  });

  it('refuses to pin what cannot be known before the build', () => {
    expect(pinTargets('ARG IMG\nFROM $IMG\n', {}, {}).reason).toMatch(/known only at build time/);
    expect(pinTargets('FROM scratch\n', {}, { 'https://example.com/f.tgz': {} }).reason).toMatch(/not an OCI reference/);
    expect(pinTargets('FROM scratch\n', {}, { './x': {} })).toEqual({ targets: [], reason: null });
  });
});
