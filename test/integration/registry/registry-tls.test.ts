/**
 * The agent's own registry calls see what dockerd sees
 * (agent/src/registry/registry-transports.ts): real registries
 * (tls-registries.ts) behind TLS with a test CA that no system store holds,
 * one that requires client certificates, one speaking plain http; the
 * engine's settings from the real engine (`GET /info`). A registry on a
 * non-loopback address is one the engine verifies; loopback is insecure by
 * the engine's default 127.0.0.0/8.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent, type Agent } from '../../../agent/src/agent.js';
import { configFromEnv } from '../../../agent/src/config/agent-config.js';
import { DockerodeEngine } from '../../../agent/src/docker/dockerode-engine.js';
import DockerClient from '../../../agent/src/docker/dockerode-module.js';
import type { WorkspaceEvent } from '../../../agent/src/events/events.js';
import { PhaseRecorder } from '../../../agent/src/events/phase-recorder.js';
import { registryConfigFromInfo, type EngineRegistryConfig } from '../../../agent/src/registry/insecure-registries.js';
import { createOciApi } from '../../../agent/src/registry/oci-api.js';
import { createRegistryClient } from '../../../agent/src/registry/registry-client.js';
import { RegistryTransports } from '../../../agent/src/registry/registry-transports.js';
import { CacheSession } from '../../../agent/src/workspace/cache-phase.js';
import { planJob } from '../../../agent/src/workspace/plan.js';
import { expectedCacheRef } from '../../support/cache-ref.js';
import { parseResult, runCli, testEnv } from '../../support/cli.js';
import { cleanUp } from '../../support/docker.js';
import { putTinyManifest } from '../../support/registry-images.js';
import { rejection } from '../../support/rejection.js';
import { makeRepo, runId } from '../../support/repos.js';
import { loadTestbed } from '../../support/testbed.js';
import { makePki, nonLoopbackAddress, startRegistry, type Pki, type TestRegistry } from './tls-registries.js';

const tb = loadTestbed();
const engine = new DockerodeEngine();
const address = nonLoopbackAddress();
const NS = 'warmstart-test-tls';
let work: string;
let pki: Pki;
/** TLS with the test CA */
let verified: TestRegistry;
/** TLS with the test CA, client certificates of the client CA required */
let mutual: TestRegistry;
/** plain http */
let plain: TestRegistry;
/** the engine's own settings, and its raw `GET /info` (to add what `--insecure-registry` would) */
let engineInfo: Record<string, unknown>;

/** A certs.d tree holding `files` (destination name → source path) for `host`. */
async function certsDir(name: string, host?: string, files: Record<string, string> = {}): Promise<string> {
  const dir = join(work, 'certs.d', name);
  await mkdir(dir, { recursive: true });
  if (host) {
    await mkdir(join(dir, host), { recursive: true });
    for (const [to, from] of Object.entries(files)) await copyFile(from, join(dir, host, to));
  }
  return dir;
}

/** The engine's /info as dockerd reports it when started with `--insecure-registry <entry>` (see the recorded payload in test/unit/registry/insecure-registries.test.ts). */
function withInsecure(entry: { host?: string; cidr?: string }): EngineRegistryConfig {
  const rc = engineInfo.RegistryConfig as { IndexConfigs: Record<string, unknown>; InsecureRegistryCIDRs: string[] };
  return registryConfigFromInfo({
    RegistryConfig: {
      ...rc,
      IndexConfigs: entry.host
        ? { ...rc.IndexConfigs, [entry.host]: { Name: entry.host, Mirrors: [], Secure: false, Official: false } }
        : rc.IndexConfigs,
      InsecureRegistryCIDRs: entry.cidr ? [entry.cidr, ...rc.InsecureRegistryCIDRs] : rc.InsecureRegistryCIDRs,
    },
  });
}

/** The agent as `warmstart up` wires it (agent.ts), its certs.d at `dir`, the real engine's settings. */
async function agentWith(dir: string, registry: string): Promise<Agent> {
  const config = configFromEnv({
    WARMSTART_STATE_DIR: join(work, 'state'),
    WARMSTART_RUNTIME_DIR: join(work, 'run'),
    WARMSTART_CACHE_REGISTRY: `${registry}/${NS}`,
    WARMSTART_DOCKER_CERTS_DIR: dir,
  });
  return createAgent({ config, engine, credentialSources: [] });
}

/** A cache session of a job for acme/app against `agent`'s registry; its recorded events. */
function session(agent: Agent) {
  const plan = planJob({ workspaceId: 'tls-ws', repository: 'https://github.com/acme/app' }, agent.config);
  const events: WorkspaceEvent[] = [];
  const rec = new PhaseRecorder('tls-ws', { emit: (e) => void events.push(e) });
  const s = CacheSession.open(agent, plan, rec)!;
  const notes = () => events.flatMap((e) => (e.type === 'note' ? [e.text] : []));
  return { s, plan, notes };
}

let movingRef: string;
let exactRef: string;
let exactDigest: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'warmstart-tls-'));
  pki = await makePki(join(work, 'pki'), address);
  verified = await startRegistry(work, address, { cert: pki.serverCert, key: pki.serverKey });
  mutual = await startRegistry(work, address, { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.clientCa });
  plain = await startRegistry(work, address);
  engineInfo = (await new DockerClient().info()) as Record<string, unknown>;
  // An exact image and a moving one in the verified registry, put there through a client that has the CA.
  const agent = await agentWith(await certsDir('setup', verified.host, { 'ca.crt': pki.ca }), verified.host);
  movingRef = session(agent).plan.cacheRef!;
  const repository = movingRef.slice(0, movingRef.lastIndexOf(':'));
  exactRef = `${repository}:exact-tls`;
  await putTinyManifest(agent.oci!, repository, movingRef.slice(movingRef.lastIndexOf(':') + 1), new Date(), null, 'moving');
  exactDigest = await putTinyManifest(agent.oci!, repository, 'exact-tls', new Date(), null, 'exact');
});

afterAll(async () => {
  await Promise.all([verified, mutual, plain].map((r) => r?.stop()));
  await rm(work, { recursive: true, force: true });
});

describe('a registry behind TLS with a private CA (the engine verifies it)', () => {
  it('without its CA in certs.d: the exact lookup and the label read fail, each a recorded cache note saying where the CA goes', async () => {
    const dir = await certsDir('empty');
    const agent = await agentWith(dir, verified.host);
    const { s, notes } = session(agent);
    expect(await s.lookup(exactRef)).toBeNull();
    expect(await s.movingConfig).toBeNull();
    const untrusted = `REGISTRY_UNREACHABLE: registry ${verified.host} presented a TLS certificate this node does not trust: put the CA that signed it in ${dir}/${verified.host}/ as a .crt file (as dockerd reads it)`;
    expect(notes()).toEqual(expect.arrayContaining([`exact lookup failed: ${untrusted}`, `moving image labels not read: ${untrusted}`]));
    // The push probe says the same (no credentials here: the client's own probe).
    const err = await rejection(agent.registry.probePush(`${verified.host}/${NS}/probe`, null));
    expect(err.message).toBe(untrusted.replace('REGISTRY_UNREACHABLE: ', ''));
    expect(err.detail).toMatch(/^POST [\d.]+:\d+: SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
  });

  it('with the CA at certs.d/<host:port>/ca.crt: the lookup finds the exact digest, the labels are read, a push probe is accepted', async () => {
    const agent = await agentWith(await certsDir('ca', verified.host, { 'ca.crt': pki.ca }), verified.host);
    const { s, notes } = session(agent);
    expect(await s.lookup(exactRef)).toBe(exactDigest);
    expect((await s.movingConfig)?.labels).toEqual({ 'warmstart.test': 'moving' });
    await agent.registry.probePush(`${verified.host}/${NS}/probe`, null);
    expect(notes().filter((n) => /failed|not read/.test(n))).toEqual([]);
    expect(agent.registryTransports!.answeredOver(verified.host)).toBe('https');
  });
});

describe('a registry that requires a client certificate (http.tls.clientcas)', () => {
  const repo = () => `${mutual.host}/${NS}/app`;

  it('with only its CA: refused, and the message says where a client pair goes', async () => {
    const dir = await certsDir('mutual-ca-only', mutual.host, { 'ca.crt': pki.ca });
    const err = await rejection((await agentWith(dir, mutual.host)).registry.headManifest(repo(), 'latest', null));
    expect(err.code).toBe('REGISTRY_UNREACHABLE');
    expect(err.message).toBe(
      `registry ${mutual.host} refused the TLS connection without a client certificate it accepts (none in ${dir}/${mutual.host}/; a pair goes there as NAME.cert with NAME.key, as dockerd reads it)`,
    );
  });

  it('with client.cert and client.key beside the CA: lookups and push probes work', async () => {
    const dir = await certsDir('mutual', mutual.host, { 'ca.crt': pki.ca, 'client.cert': pki.clientCert, 'client.key': pki.clientKey });
    const agent = await agentWith(dir, mutual.host);
    await agent.registry.checkAuth(mutual.host, null);
    expect(await agent.registry.headManifest(repo(), 'latest', null)).toBeNull(); // an answer: the tag is not there
    await agent.registry.probePush(repo(), null);
    const api = agent.oci!;
    const digest = await putTinyManifest(api, repo(), 'mtls', new Date(), null);
    expect(await agent.registry.headManifest(repo(), 'mtls', null)).toBe(digest);
  });

  it('with a pair the registry does not accept: refused, naming the pair it tried', async () => {
    const dir = await certsDir('mutual-stranger', mutual.host, { 'ca.crt': pki.ca, 'client.cert': pki.strangerCert, 'client.key': pki.strangerKey });
    const err = await rejection((await agentWith(dir, mutual.host)).registry.checkAuth(mutual.host, null));
    expect(err.message).toBe(
      `registry ${mutual.host} refused the TLS connection without a client certificate it accepts (it did not take client.cert from ${dir}/${mutual.host}; a pair goes there as NAME.cert with NAME.key, as dockerd reads it)`,
    );
  });
});

describe("insecure registries, from the engine's settings", () => {
  const client = (engineConfig: () => Promise<EngineRegistryConfig>, dir = '/nonexistent/certs.d') => {
    const transports = new RegistryTransports({ engineConfig, certsDir: dir });
    return { transports, registry: createRegistryClient({ transports }), oci: createOciApi({ transports }) };
  };

  it('plain http on a non-loopback address: the engine verifies it, so neither does the agent fall back to http', async () => {
    const { registry, transports } = client(() => engine.registryConfig());
    const err = await rejection(registry.checkAuth(plain.host, null));
    expect(err.code).toBe('REGISTRY_UNREACHABLE');
    expect(err.message).toBe(
      `registry ${plain.host} does not answer over TLS, and the engine does not treat it as an insecure registry (dockerd would not use plain http for it either: list it in the engine's insecure-registries)`,
    );
    expect(err.detail).toMatch(/wrong version number/);
    expect(transports.answeredOver(plain.host)).toBeUndefined();
  });

  it('the same registry listed as insecure by name (IndexConfigs) or by range (a CIDR): https fails, then http answers', async () => {
    for (const settings of [withInsecure({ host: plain.host }), withInsecure({ cidr: `${address}/32` })]) {
      const { registry, oci, transports } = client(async () => settings);
      await registry.checkAuth(plain.host, null);
      expect(transports.answeredOver(plain.host)).toBe('http');
      const route = await transports.route(plain.host);
      expect(route).toMatchObject({ secure: false, schemes: ['https', 'http'], basis: "the engine's registry settings" });
      // Later sessions start over http; a write works there too.
      const digest = await putTinyManifest(oci, `${plain.host}/${NS}/app`, 'insecure', new Date(), null);
      expect(await registry.headManifest(`${plain.host}/${NS}/app`, 'insecure', null)).toBe(digest);
    }
  });

  it('a TLS registry listed as insecure: reached over https without verification (no CA anywhere), never over http', async () => {
    const { registry, transports } = client(async () => withInsecure({ host: verified.host }));
    expect(await registry.headManifest(exactRef.slice(0, exactRef.lastIndexOf(':')), 'exact-tls', null)).toBe(exactDigest);
    expect(transports.answeredOver(verified.host)).toBe('https');
  });

  it("the testbed's registry on loopback: insecure by the engine's 127.0.0.0/8; its https refused, it answers over http", async () => {
    const { registry, transports } = client(() => engine.registryConfig());
    await registry.checkAuth(tb.openRegistry, null);
    expect(transports.answeredOver(tb.openRegistry)).toBe('http');
    expect(await transports.route(tb.openRegistry)).toMatchObject({
      secure: false,
      reason: `${tb.openRegistry.split(':')[0]} is in the engine's insecure range 127.0.0.0/8`,
      basis: "the engine's registry settings",
    });
  });

  it("with the engine away: dockerd's defaults, and the loopback registry still answers", async () => {
    const away = new DockerodeEngine(new DockerClient({ socketPath: join(work, 'no-engine.sock') }), { engineWaitMs: 0 });
    const { registry, transports } = client(() => away.registryConfig());
    await registry.checkAuth(tb.openRegistry, null);
    expect((await transports.route(tb.openRegistry)).basis).toMatch(/^dockerd's defaults \(engine settings unavailable: DOCKER_UNAVAILABLE: /);
  });
});

describe('warmstart doctor', () => {
  it('reports the mode it used for the configured registry: verified with the CA from certs.d, or insecure loopback over http', async () => {
    const dir = await certsDir('doctor', verified.host, { 'ca.crt': pki.ca });
    const env = { ...(await testEnv(tb.baseImage)), WARMSTART_DOCKER_CERTS_DIR: dir };
    const tls = await runCli(['doctor', '--cache-registry', `${verified.host}/${NS}`], { env });
    expect(tls.code, tls.stdout).toBe(0);
    expect(tls.stdout).toContain(`ok   cache registry: ${verified.host} answers\n`);
    expect(tls.stdout).toContain(
      `ok   registry mode: ${verified.host}: https, verified against the default CAs and 1 CA file(s) from ${dir}/${verified.host}; decided from the engine's registry settings; answered over https`,
    );
    const loopback = await runCli(['doctor', '--cache-registry', `${tb.openRegistry}/${NS}`], { env });
    expect(loopback.stdout).toContain(
      `ok   registry mode: ${tb.openRegistry}: insecure (127.0.0.1 is in the engine's insecure range 127.0.0.0/8): https without certificate verification, then plain http; decided from the engine's registry settings; answered over http`,
    );
    const none = await runCli(['doctor', '--cache-registry', `${verified.host}/${NS}`], {
      env: { ...env, WARMSTART_DOCKER_CERTS_DIR: await certsDir('doctor-empty') },
    });
    expect(none.code).toBe(1);
    expect(none.stdout).toMatch(
      new RegExp(
        `^fail cache registry: REGISTRY_UNREACHABLE: registry ${verified.host.replace(/\./g, '\\.')} presented a TLS certificate this node does not trust`,
        'm',
      ),
    );
    expect(none.stdout).toContain(`ok   registry mode: ${verified.host}: https, verified against the default CAs (nothing in `);
  });
});

describe('warmstart up', () => {
  it("without the registry's CA: ready from the repository's own config, the exact lookup's TLS failure recorded in its events", async () => {
    const run = runId('tls');
    const id = `${run}-ws`;
    const registry = `${verified.host}/${NS}/${run}`;
    const repo = await makeRepo('small', { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'small' });
    const env: Record<string, string> = { ...(await testEnv(tb.baseImage)), WARMSTART_DOCKER_CERTS_DIR: await certsDir('up-empty') };
    try {
      const cli = await runCli(['up', repo, '--workspace-id', id, '--cache-registry', registry, '--json'], { env });
      const result = parseResult(cli);
      expect(cli.code, cli.stderr).toBe(0);
      expect(result).toMatchObject({ outcome: 'ready', profile: 'devcontainer', error: null });
      expect(result.cache.hit).toBe('miss');
      const events = (await readFile(join(env.WARMSTART_STATE_DIR!, 'workspaces', id, 'events.ndjson'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as WorkspaceEvent);
      const notes = events.flatMap((e) => (e.type === 'note' ? [e.text] : []));
      expect(notes).toContain(
        `exact lookup failed: REGISTRY_UNREACHABLE: registry ${verified.host} presented a TLS certificate this node does not trust: put the CA that signed it in ${env.WARMSTART_DOCKER_CERTS_DIR}/${verified.host}/ as a .crt file (as dockerd reads it)`,
      );
    } finally {
      await cleanUp({ runId: run, workspaceIds: [id], refs: [expectedCacheRef(registry, repo)] });
      await rm(env.WARMSTART_STATE_DIR!, { recursive: true, force: true });
      await rm(env.WARMSTART_RUNTIME_DIR!, { recursive: true, force: true });
      await rm(join(repo, '..', '..'), { recursive: true, force: true });
    }
  });
});
