/**
 * The scheme decision of the agent's registry calls
 * (agent/src/registry/insecure-registries.ts, registry-transports.ts) from
 * recorded `GET /info` payloads of a real dockerd.
 */
import { describe, expect, it } from 'vitest';
import { decideSecurity, DOCKERD_DEFAULTS, registryConfigFromInfo, type AddressLookup } from '../../../agent/src/registry/insecure-registries.js';
import { RegistryTransports } from '../../../agent/src/registry/registry-transports.js';

// Recorded from dockerd 20.10.24 (Debian 12) started with
//   --insecure-registry registry.corp.example:5000 --insecure-registry 10.20.0.0/16
//   --insecure-registry '[fd00::5]:5000' --registry-mirror https://mirror.example
// (its own socket and data root, stopped again): `GET /info`, the fields read.
const CONFIGURED = {
  ServerVersion: '20.10.24+dfsg1',
  RegistryConfig: {
    AllowNondistributableArtifactsCIDRs: [],
    AllowNondistributableArtifactsHostnames: [],
    InsecureRegistryCIDRs: ['10.20.0.0/16', '127.0.0.0/8'],
    IndexConfigs: {
      '[fd00::5]:5000': { Name: '[fd00::5]:5000', Mirrors: [], Secure: false, Official: false },
      'docker.io': { Name: 'docker.io', Mirrors: ['https://mirror.example/'], Secure: true, Official: true },
      'registry.corp.example:5000': { Name: 'registry.corp.example:5000', Mirrors: [], Secure: false, Official: false },
    },
    Mirrors: ['https://mirror.example/'],
  },
};
// The testbed's engine (test/testbed/up.sh), started without registry options.
const PLAIN = {
  ServerVersion: '20.10.24+dfsg1',
  RegistryConfig: {
    AllowNondistributableArtifactsCIDRs: [],
    AllowNondistributableArtifactsHostnames: [],
    InsecureRegistryCIDRs: ['127.0.0.0/8'],
    IndexConfigs: { 'docker.io': { Name: 'docker.io', Mirrors: [], Secure: true, Official: true } },
    Mirrors: [],
  },
};

/** A resolver that answers from a table and records what it was asked. */
function table(entries: Record<string, string[]>): AddressLookup & { asked: string[] } {
  const asked: string[] = [];
  const lookup = async (name: string): Promise<string[]> => {
    asked.push(name);
    const found = entries[name];
    if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    return found;
  };
  return Object.assign(lookup, { asked });
}

describe('registryConfigFromInfo', () => {
  it('reads IndexConfigs (lowercased names) and the insecure CIDRs', () => {
    expect(registryConfigFromInfo(CONFIGURED)).toEqual({
      secureByHost: { '[fd00::5]:5000': false, 'docker.io': true, 'registry.corp.example:5000': false },
      insecureCidrs: ['10.20.0.0/16', '127.0.0.0/8'],
    });
    expect(registryConfigFromInfo({ RegistryConfig: { IndexConfigs: { 'Reg.Example:5000': { Secure: false } } } }).secureByHost).toEqual({
      'reg.example:5000': false,
    });
  });

  it("an engine that reports no RegistryConfig gets dockerd's defaults; malformed entries count as absent", () => {
    expect(registryConfigFromInfo({ ServerVersion: 'x' })).toBe(DOCKERD_DEFAULTS);
    expect(registryConfigFromInfo(null)).toBe(DOCKERD_DEFAULTS);
    expect(
      registryConfigFromInfo({ RegistryConfig: { IndexConfigs: { a: { Secure: 'no' }, b: null }, InsecureRegistryCIDRs: [7, '10.0.0.0/8'] } }),
    ).toEqual({
      secureByHost: {},
      insecureCidrs: ['10.0.0.0/8'],
    });
  });
});

describe('decideSecurity, as dockerd decides', () => {
  const config = registryConfigFromInfo(CONFIGURED);

  it('a registry IndexConfigs names is what its entry says, without resolving anything', async () => {
    const lookup = table({});
    expect(await decideSecurity('registry.corp.example:5000', config, lookup)).toMatchObject({ secure: false });
    expect(await decideSecurity('REGISTRY.corp.example:5000', config, lookup)).toMatchObject({ secure: false });
    expect(await decideSecurity('[fd00::5]:5000', config, lookup)).toMatchObject({ secure: false });
    expect(lookup.asked).toEqual([]);
  });

  it('the same host on another port is not that entry: its addresses decide', async () => {
    const lookup = table({ 'registry.corp.example': ['192.0.2.10'] });
    expect(await decideSecurity('registry.corp.example:5001', config, lookup)).toEqual({
      secure: true,
      reason: 'not an insecure registry of the engine',
    });
    expect(lookup.asked).toEqual(['registry.corp.example']);
  });

  it('an address in an insecure CIDR is insecure, literal or resolved (any of its addresses)', async () => {
    const lookup = table({ 'build.corp.example': ['192.0.2.7', '10.20.3.4'], localhost: ['::1', '127.0.0.1'] });
    expect(await decideSecurity('10.20.1.1:443', config, lookup)).toEqual({
      secure: false,
      reason: "10.20.1.1 is in the engine's insecure range 10.20.0.0/16",
    });
    expect(await decideSecurity('build.corp.example', config, lookup)).toMatchObject({ secure: false });
    expect(await decideSecurity('127.0.0.2:5000', config, lookup)).toMatchObject({ secure: false });
    expect(await decideSecurity('localhost:5000', config, lookup)).toMatchObject({ secure: false });
    expect(await decideSecurity('10.21.0.1:5000', config, lookup)).toMatchObject({ secure: true });
    expect(await decideSecurity('[fd00::6]:5000', config, lookup)).toMatchObject({ secure: true });
    expect(lookup.asked).toEqual(['build.corp.example', 'localhost']);
  });

  it('a name that does not resolve is secure; Docker Hub always is', async () => {
    expect(await decideSecurity('nowhere.example:5000', config, table({}))).toEqual({
      secure: true,
      reason: 'nowhere.example does not resolve here',
    });
    const lookup = table({ 'docker.io': ['10.20.0.1'] });
    expect(await decideSecurity('docker.io', config, lookup)).toMatchObject({ secure: true });
    expect(lookup.asked).toEqual([]);
  });

  it('on the engine without registry options, only loopback is insecure', async () => {
    const plain = registryConfigFromInfo(PLAIN);
    expect(await decideSecurity('registry.corp.example:5000', plain, table({ 'registry.corp.example': ['10.20.0.9'] }))).toMatchObject({
      secure: true,
    });
    expect(await decideSecurity('127.0.0.1:5000', plain, table({}))).toEqual({
      secure: false,
      reason: "127.0.0.1 is in the engine's insecure range 127.0.0.0/8",
    });
  });
});

describe('RegistryTransports: the route of a session', () => {
  it('https alone for a secure registry; https then http for an insecure one', async () => {
    const t = new RegistryTransports({
      engineConfig: async () => registryConfigFromInfo(CONFIGURED),
      lookup: table({ 'ghcr.io': ['140.82.112.33'] }),
      certsDir: '/nonexistent/certs.d',
    });
    const insecure = await t.route('registry.corp.example:5000');
    expect(insecure).toMatchObject({ secure: false, schemes: ['https', 'http'], basis: "the engine's registry settings", certs: null });
    const secure = await t.route('ghcr.io');
    expect(secure).toMatchObject({ secure: true, schemes: ['https'], certsPath: '/nonexistent/certs.d/ghcr.io' });
  });

  it('asks the engine once per TTL, for every host', async () => {
    let now = 0;
    let asked = 0;
    const t = new RegistryTransports({
      engineConfig: async () => (asked++, registryConfigFromInfo(PLAIN)),
      lookup: table({}),
      now: () => now,
      ttlMs: 1000,
    });
    await Promise.all([t.route('127.0.0.1:5000'), t.route('127.0.0.1:5001'), t.route('10.0.0.1:5000')]);
    await t.route('127.0.0.1:5000');
    expect(asked).toBe(1);
    now = 1500;
    await t.route('127.0.0.1:5000');
    expect(asked).toBe(2);
  });

  it("an engine that fails or does not answer leaves dockerd's defaults (loopback insecure), without failing", async () => {
    const failing = new RegistryTransports({
      engineConfig: () => Promise.reject(new Error('connect ENOENT /var/run/docker.sock')),
      lookup: table({}),
    });
    const r = await failing.route('127.0.0.1:5000');
    expect(r).toMatchObject({ secure: false, schemes: ['https', 'http'] });
    expect(r.basis).toBe("dockerd's defaults (engine settings unavailable: connect ENOENT /var/run/docker.sock)");
    expect(await failing.route('10.20.0.1:5000')).toMatchObject({ secure: true, schemes: ['https'] });

    const hanging = new RegistryTransports({ engineConfig: () => new Promise(() => undefined), engineTimeoutMs: 50, lookup: table({}) });
    const t0 = performance.now();
    expect((await hanging.route('127.0.0.1:5000')).basis).toMatch(
      /^dockerd's defaults \(engine settings unavailable: the engine gave no registry settings within 50 ms\)$/,
    );
    expect(performance.now() - t0).toBeLessThan(1000);

    const silent = new RegistryTransports({ engineConfig: async () => undefined, lookup: table({}) });
    expect((await silent.route('127.0.0.1:5000')).basis).toBe("dockerd's defaults (the engine does not report its registry settings)");
  });

  it('remembers the scheme a registry answered over, for the TTL', async () => {
    let now = 0;
    const t = new RegistryTransports({ now: () => now, ttlMs: 1000, lookup: table({}) });
    expect(t.answeredOver('127.0.0.1:5000')).toBeUndefined();
    t.answered('127.0.0.1:5000', 'http');
    expect(t.answeredOver('127.0.0.1:5000')).toBe('http');
    now = 1001;
    expect(t.answeredOver('127.0.0.1:5000')).toBeUndefined();
  });
});
