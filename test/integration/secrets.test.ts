/**
 * Acceptance (issue 2): the registry password and the git token never appear
 * in stdout, stderr, state files, the clone's `.git/config`, the container or
 * the pushed image. The clone really needs the token (a git smart-HTTP server
 * over HTTPS with Basic auth), the push really uses the password (the
 * testbed's htpasswd registry), and every place is searched for the secrets'
 * bytes and their base64 forms. The scanner is first shown to find planted
 * needles, so "zero hits" means something.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseResult, runCli, testEnv, type CliRun } from '../support/cli.js';
import { cleanUp, imageExists, readFromVolume, volumeExists, wipeImages } from '../support/docker.js';
import { addBareRepo, GIT_HTTP_USER, startGitHttpsServer, type GitHttpsServer } from '../support/git-https-server.js';
import { makeRepo, runId } from '../support/repos.js';
import { notThisImage } from '../support/registry-images.js';
import { b64, fakeToken, needlesFor, placesFromBlob, placesFromTree, scan, type Needle, type Place } from '../support/secret-scan.js';
import { loadTestbed } from '../support/testbed.js';
import { expectedCacheRef } from '../support/cache-ref.js';

const tb = loadTestbed();
const run = runId('secrets');
const OWNER = 'Acme';

const token = fakeToken();
const wrongToken = fakeToken();

// ------------------------------------------------------------ the environment

const docker = (args: string[], env: Record<string, string> = {}) => execa('docker', args, { reject: false, env });

async function sha256OrNull(path: string): Promise<{ sha: string; mtimeMs: number } | null> {
  try {
    const [bytes, st] = await Promise.all([readFile(path), stat(path)]);
    return { sha: createHash('sha256').update(bytes).digest('hex'), mtimeMs: st.mtimeMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** The parts of `docker inspect` (a container, an image) this file reads. */
interface ContainerInspect {
  Image: string;
  Mounts: { Name?: string; Source: string; Destination: string; RW: boolean }[];
  Config: { Labels: Record<string, string>; Env: string[] | null; Cmd: string[] | null; Entrypoint: string[] | null };
}
interface ImageInspect {
  Config: { Labels: Record<string, string> };
}

const userDockerConfig = join(process.env.HOME ?? homedir(), '.docker', 'config.json');

interface WatchedRun {
  cli: CliRun;
  /** job-* entries (and their children) seen in the runtime dir's jobs/ while the CLI ran */
  seen: string[];
  /** job-* entries left there after it exited */
  left: string[];
  tmp: string;
}

/**
 * Runs the CLI with its own TMPDIR and runtime dir (so nothing another test
 * does can mix in) and watches it: the per-job dir (holding DOCKER_CONFIG)
 * must appear under `<runtime>/jobs` while the CLI runs and be gone when it exits.
 */
async function watchedRun(args: string[], o: { env: Record<string, string>; input?: string }, scratch: string): Promise<WatchedRun> {
  const tmp = await mkdtemp(join(scratch, 'cli-tmp-'));
  const runtime = o.env.WARMSTART_RUNTIME_DIR ?? (await mkdtemp(join(scratch, 'cli-runtime-')));
  const jobs = join(runtime, 'jobs');
  const seen = new Set<string>();
  let stop = false;
  const poll = (async () => {
    while (!stop) {
      for (const e of await readdir(jobs).catch(() => [] as string[])) {
        if (!e.startsWith('job-')) continue;
        seen.add(e);
        for (const c of await readdir(join(jobs, e)).catch(() => [] as string[])) seen.add(`${e}/${c}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  const cli = await runCli(args, {
    env: { ...o.env, TMPDIR: tmp, WARMSTART_RUNTIME_DIR: runtime },
    ...(o.input !== undefined ? { input: o.input } : {}),
  });
  stop = true;
  await poll;
  const left = (await readdir(jobs).catch(() => [] as string[])).filter((e) => e.startsWith('job-'));
  return { cli, seen: [...seen], left, tmp };
}

/** Splits `host:port/path:tag`. */
function splitRef(ref: string): { registry: string; repo: string; tag: string } {
  const slash = ref.indexOf('/');
  const colon = ref.lastIndexOf(':');
  return { registry: ref.slice(0, slash), repo: ref.slice(slash + 1, colon), tag: ref.slice(colon + 1) };
}

const MANIFEST_TYPES = ['application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.oci.image.manifest.v1+json'].join(', ');
const basic = `Basic ${b64(`${tb.registryUser}:${tb.registryPassword}`)}`;

/** The pushed image as the registry stores it: manifest, config blob, every layer blob. */
async function registryPlaces(ref: string, scratch: string): Promise<{ places: Place[]; digest: string; configDigest: string; config: Buffer }> {
  const { registry, repo, tag } = splitRef(ref);
  const base = `http://${registry}/v2/${repo}`;
  const res = await fetch(`${base}/manifests/${tag}`, { headers: { Authorization: basic, Accept: MANIFEST_TYPES } });
  if (!res.ok) throw new Error(`manifest of ${ref}: HTTP ${res.status}`);
  const manifestBytes = Buffer.from(await res.arrayBuffer());
  const manifest = JSON.parse(manifestBytes.toString('utf8')) as { config: { digest: string }; layers: { digest: string }[] };
  const places: Place[] = [{ name: `registry ${ref} manifest`, bytes: manifestBytes }];
  let config = Buffer.alloc(0);
  for (const [kind, digest] of [['config', manifest.config.digest], ...manifest.layers.map((l) => ['layer', l.digest])] as const) {
    const blob = await fetch(`${base}/blobs/${digest}`, { headers: { Authorization: basic } });
    if (!blob.ok) throw new Error(`blob ${digest}: HTTP ${blob.status}`);
    const bytes = Buffer.from(await blob.arrayBuffer());
    expect(`sha256:${createHash('sha256').update(bytes).digest('hex')}`).toBe(digest);
    if (kind === 'config') config = bytes;
    places.push(...(await placesFromBlob(`registry ${kind} ${digest.slice(0, 19)}`, bytes, scratch)));
  }
  return { places, digest: res.headers.get('docker-content-digest') ?? '', configDigest: manifest.config.digest, config };
}

// --------------------------------------------------------------------- tests

describe('secrets never leak (real git over HTTPS, engine, registry, devcontainers CLI)', () => {
  let scratch: string;
  let server: GitHttpsServer;
  let testDockerConfig: string;
  const stateDirs: string[] = [];
  const repoRoots: string[] = [];
  const workspaceIds: string[] = [];
  const refs: string[] = [];
  /** cache refs this test's runs pushed (or may have), deleted from the registry afterwards */
  const pushed: string[] = [];
  let audited = 0;

  const urlOf = (name: string): string => `${server.url}/${OWNER}/${name}.git`;
  const secretNeedles = (): Needle[] => [
    ...needlesFor('git token', token, GIT_HTTP_USER),
    ...needlesFor('wrong git token', wrongToken, GIT_HTTP_USER),
    ...needlesFor('registry password', tb.registryPassword, tb.registryUser),
  ];

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'warmstart-secrets-'));
    const projectRoot = join(scratch, 'git-root');
    for (const [fixture, name] of [
      ['small', 'Secret-Small'],
      [
        {
          // A repo that tries to read the agent's secrets from its environment.
          '.devcontainer/Dockerfile': [
            'FROM @@BASE_IMAGE@@',
            'LABEL warmstart.test-run=@@RUN_ID@@',
            'ARG PROBE=unset',
            'RUN echo "probe:$PROBE" > /probe',
            '',
          ].join('\n'),
          '.devcontainer/devcontainer.json': JSON.stringify({
            build: {
              dockerfile: 'Dockerfile',
              args: { PROBE: '${localEnv:HOME}|${localEnv:WARMSTART_GIT_TOKEN}|${localEnv:WARMSTART_REGISTRY_PASSWORD}' },
            },
            containerEnv: {
              PROBE_HOME: '${localEnv:HOME}',
              PROBE_TOKEN: '${localEnv:WARMSTART_GIT_TOKEN}',
              PROBE_PASSWORD: '${localEnv:WARMSTART_REGISTRY_PASSWORD}',
            },
            remoteUser: 'root',
          }),
        },
        'Secret-Probe',
      ],
    ] as const) {
      const dir = await makeRepo(fixture, { runId: run, baseImage: tb.baseImage, owner: OWNER, name });
      repoRoots.push(join(dir, '..', '..'));
      await addBareRepo(dir, projectRoot, OWNER, name);
    }
    server = await startGitHttpsServer({ projectRoot, token });
    // The test's own docker auth for pulling the pushed image; never ~/.docker.
    testDockerConfig = join(scratch, 'docker-config');
    await mkdir(testDockerConfig, { mode: 0o700 });
    await writeFile(
      join(testDockerConfig, 'config.json'),
      JSON.stringify({ auths: { [tb.registry]: { auth: b64(`${tb.registryUser}:${tb.registryPassword}`) } } }),
      { mode: 0o600 },
    );
  });

  afterAll(async () => {
    await cleanUp({ runId: run, workspaceIds, refs });
    for (const ref of pushed) {
      // Delete what this test pushed (the registry allows deletes); best effort.
      const { registry, repo, tag } = splitRef(ref);
      const head = await fetch(`http://${registry}/v2/${repo}/manifests/${tag}`, {
        method: 'HEAD',
        headers: { Authorization: basic, Accept: MANIFEST_TYPES },
      }).catch(() => null);
      const digest = head?.ok ? head.headers.get('docker-content-digest') : null;
      if (digest)
        await fetch(`http://${registry}/v2/${repo}/manifests/${digest}`, { method: 'DELETE', headers: { Authorization: basic } }).catch(
          () => undefined,
        );
    }
    await server?.close();
    for (const d of [...stateDirs, ...repoRoots, scratch]) if (d) await rm(d, { recursive: true, force: true });
    console.log(`[secrets] audit: ${audited} places searched in total`);
  });

  it('the scanner finds planted needles in text, files, tars, gzip and docker-style base64 auth', async () => {
    const needles = secretNeedles();
    const dir = await mkdtemp(join(scratch, 'planted-'));
    await mkdir(join(dir, 'nested'));
    await writeFile(
      join(dir, 'nested', 'config.json'),
      JSON.stringify({ auths: { [tb.registry]: { auth: b64(`${tb.registryUser}:${tb.registryPassword}`) } } }),
    );
    await writeFile(join(dir, 'clean.txt'), 'nothing to see here\n');
    const inTar = await mkdtemp(join(scratch, 'planted-tar-'));
    await writeFile(join(inTar, 'leak'), `prefix ${token} suffix`);
    const layer = (await execa('tar', ['-c', '-f', '-', '-C', inTar, '.'], { encoding: 'buffer' })).stdout;
    const outer = await mkdtemp(join(scratch, 'planted-outer-'));
    await writeFile(join(outer, 'layer.tar'), layer);
    const saveTar = (await execa('tar', ['-c', '-f', '-', '-C', outer, '.'], { encoding: 'buffer' })).stdout;
    await writeFile(join(dir, 'image.tar.gz'), gzipSync(saveTar));
    const places: Place[] = [
      { name: 'odd-aligned base64', bytes: Buffer.from(b64(`xy${wrongToken}zzz`)) },
      { name: 'basic header', bytes: Buffer.from(`Authorization: Basic ${b64(`${GIT_HTTP_USER}:${token}`)}`) },
      ...(await placesFromTree(dir, 'planted/', scratch)),
    ];
    const hits = scan(places, needles);
    const where = (place: string): string[] => hits.filter((h) => h.place.includes(place)).map((h) => h.needle);
    expect(where('odd-aligned base64')).toContain('wrong git token base64 core@2');
    expect(where('basic header')).toContain(`git token base64(${GIT_HTTP_USER}:…)`);
    expect(where('nested/config.json')).toEqual(
      expect.arrayContaining([`registry password base64(${tb.registryUser}:…)`, 'registry password base64 core@0']),
    );
    // the token inside a file inside a layer tar inside a gzipped save tar: found at every level
    expect(where('image.tar.gz (gunzipped)')).toContain('git token raw');
    expect(where('image.tar.gz!layer.tar!leak')).toEqual(['git token raw']);
    expect(hits.filter((h) => h.place.includes('clean.txt'))).toEqual([]);
  });

  it('the clone needs the token: a wrong one fails with GIT_CLONE_FAILED, exit 1, and is printed nowhere', async () => {
    // Sanity: the server is real HTTPS with a certificate git must be told to trust.
    const untrusted = await execa('git', ['ls-remote', urlOf('Secret-Small')], {
      reject: false,
      env: { GIT_TERMINAL_PROMPT: '0', GIT_SSL_CAINFO: '' },
    });
    expect(untrusted.exitCode).not.toBe(0);
    expect(String(untrusted.stderr)).toMatch(/certificate|SSL|TLS/i);

    const id = `${run}-wrong`;
    workspaceIds.push(id);
    const env = await testEnv(tb.baseImage, {
      WARMSTART_GIT_TOKEN: wrongToken,
      // The node's token serves only its configured hosts: this server is one.
      WARMSTART_GIT_TOKEN_HOSTS: new URL(server.url).host,
      GIT_SSL_CAINFO: server.caFile,
      WARMSTART_RUNTIME_DIR: join(scratch, 'runtime-wrong'),
    });
    stateDirs.push(env.WARMSTART_STATE_DIR!);
    const from = server.requests.length;
    const w = await watchedRun(
      [
        'up',
        urlOf('Secret-Small'),
        '--workspace-id',
        id,
        '--cache-registry',
        `${tb.registry}/warmstart-test/${run}/wrong`,
        '--registry-username',
        tb.registryUser,
        '--registry-password-stdin',
        '--json',
      ],
      { env, input: `${tb.registryPassword}\n` },
      scratch,
    );
    const result = parseResult(w.cli);
    expect(w.cli.code, w.cli.stderr).toBe(1);
    expect(result.outcome).toBe('failed');
    expect(result.error?.code).toBe('GIT_CLONE_FAILED');
    const seen = server.requests.slice(from);
    expect(seen.some((r) => r.auth === 'wrong')).toBe(true); // git did present the wrong token
    expect(seen.filter((r) => r.auth === 'ok')).toEqual([]);
    expect(await volumeExists(`warmstart-ws-${id}`)).toBe(false);
    expect(w.left).toEqual([]);

    const places: Place[] = [
      { name: 'stdout', bytes: Buffer.from(w.cli.stdout) },
      { name: 'stderr', bytes: Buffer.from(w.cli.stderr) },
      ...(await placesFromTree(env.WARMSTART_STATE_DIR!, 'state/', scratch)),
      ...(await placesFromTree(w.tmp, 'cli-tmp/', scratch)),
    ];
    // The places hold what we think they hold: the failure is described, the state was written.
    expect(w.cli.stdout).toContain('GIT_CLONE_FAILED');
    expect(w.cli.stderr).toMatch(/clone/);
    expect(places.some((p) => p.name.endsWith('workspace.json'))).toBe(true);
    expect(scan(places, secretNeedles())).toEqual([]);
    audited += places.length;
    console.log(`[secrets] wrong token: ${places.length} places searched, 0 hits (${w.cli.wallMs} ms)`);
  });

  /**
   * One successful `up` that pushed its cache, then every place searched:
   * output, state, clones, the container, leftovers in TMPDIR, the user's
   * docker config, the image as the registry holds it and as a fresh pull saves it.
   */
  async function upAndAudit(o: {
    label: string;
    repoName: string;
    env: Record<string, string>;
    flags: string[];
    input?: string;
    probe?: boolean;
  }): Promise<void> {
    const id = `${run}-${o.label}`;
    const ns = `warmstart-test/${run}/${o.label}`;
    const ref = expectedCacheRef(`${tb.registry}/${ns}`, urlOf(o.repoName));
    workspaceIds.push(id);
    refs.push(ref);
    pushed.push(ref);
    // The node's token (WARMSTART_GIT_TOKEN, bound to this server's host) clones;
    // it is never offered inside the container, so it may be nowhere at all.
    const runtimeDir = join(scratch, `runtime-${o.label}`);
    const env = await testEnv(tb.baseImage, {
      WARMSTART_GIT_TOKEN: token,
      WARMSTART_GIT_TOKEN_HOSTS: new URL(server.url).host,
      GIT_SSL_CAINFO: server.caFile,
      WARMSTART_RUNTIME_DIR: runtimeDir,
      ...o.env,
    });
    stateDirs.push(env.WARMSTART_STATE_DIR!);
    const repoUrl = urlOf(o.repoName);

    const dockerConfigBefore = await sha256OrNull(userDockerConfig);
    const from = server.requests.length;
    const w = await watchedRun(
      ['up', repoUrl, '--workspace-id', id, '--cache-registry', `${tb.registry}/${ns}`, ...o.flags, '--json'],
      { env, ...(o.input !== undefined ? { input: o.input } : {}) },
      scratch,
    );
    const result = parseResult(w.cli);
    expect(w.cli.code, w.cli.stderr).toBe(0);
    expect(result.outcome).toBe('ready');
    expect(result.profile).toBe('devcontainer');
    // The password was used: the push to the htpasswd registry went through.
    expect(result.push, JSON.stringify(result)).toMatchObject({ status: 'pushed', ref });
    // The token was used: the server served the clone to an authorized client.
    const seen = server.requests.slice(from);
    expect(seen.some((r) => r.auth === 'ok' && r.status === 200 && r.method === 'POST')).toBe(true);

    // DOCKER_CONFIG: a per-job dir existed during the run, none is left; ~/.docker untouched.
    expect(
      w.seen.some((e) => /^job-[^/]+\/docker-config-/.test(e)),
      w.seen.join(', '),
    ).toBe(true);
    expect(w.left).toEqual([]);
    expect(await sha256OrNull(userDockerConfig)).toEqual(dockerConfigBefore);

    const places: Place[] = [
      { name: 'stdout', bytes: Buffer.from(w.cli.stdout) },
      { name: 'stderr', bytes: Buffer.from(w.cli.stderr) },
    ];
    const stateDir = env.WARMSTART_STATE_DIR!;
    const statePlaces = await placesFromTree(stateDir, 'state/', scratch);
    expect(statePlaces.map((p) => p.name)).toEqual(
      expect.arrayContaining([`state/workspaces/${id}/workspace.json`, `state/workspaces/${id}/events.ndjson`]),
    );
    places.push(...statePlaces);
    places.push(...(await placesFromTree(w.tmp, 'cli-tmp/', scratch)));

    // The host clone: its .git/config names the remote without credentials; every object, decompressed.
    const src = join(stateDir, 'workspaces', id, 'src');
    const hostGitConfig = await readFile(join(src, '.git', 'config'), 'utf8');
    expect(hostGitConfig).toMatch(new RegExp(`^\\s*url = ${repoUrl.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    expect(hostGitConfig).not.toMatch(/url = https:\/\/[^/\n]*@/);
    expect(hostGitConfig).not.toMatch(/credential|extraheader/i);
    places.push({ name: 'host clone .git/config', bytes: Buffer.from(hostGitConfig) });
    const objects = await execa('git', ['-C', src, 'cat-file', '--batch-all-objects', '--batch'], { encoding: 'buffer' });
    expect(objects.stdout.length).toBeGreaterThan(0);
    places.push({ name: 'host clone: every git object, decompressed', bytes: Buffer.from(objects.stdout) });

    // The workspace volume: its .git/config, and the whole volume as a tar.
    const volume = `warmstart-ws-${id}`;
    const volGitConfig = await readFromVolume(volume, '.git/config', tb.baseImage);
    expect(volGitConfig?.trimEnd()).toBe(hostGitConfig.trimEnd()); // the helper's output loses the last newline
    places.push({ name: 'volume .git/config', bytes: Buffer.from(volGitConfig!) });
    const volTar = await execa(
      'docker',
      ['run', '--rm', '--label', 'warmstart.test=read-volume', '-v', `${volume}:/v:ro`, tb.baseImage, 'tar', '-C', '/v', '-c', '-f', '-', '.'],
      { encoding: 'buffer' },
    );
    places.push(...(await placesFromBlob(`volume ${volume} (tar)`, Buffer.from(volTar.stdout), scratch)));

    // The container: inspect, and its Env / Labels / Mounts / Cmd on their own.
    const inspect = await docker(['inspect', result.containerId!]);
    expect(inspect.exitCode).toBe(0);
    const info = (JSON.parse(String(inspect.stdout)) as ContainerInspect[])[0]!;
    expect(info.Config.Labels['warmstart.workspace']).toBe(id);
    expect(info.Mounts.some((m) => m.Name === volume)).toBe(true);
    places.push({ name: 'docker inspect container', bytes: Buffer.from(String(inspect.stdout)) });
    for (const [k, v] of Object.entries({
      Env: info.Config.Env,
      Labels: info.Config.Labels,
      Mounts: info.Mounts,
      Cmd: info.Config.Cmd,
      Entrypoint: info.Config.Entrypoint,
    })) {
      places.push({ name: `container ${k}`, bytes: Buffer.from(JSON.stringify(v ?? null)) });
    }
    // The node's git token is never offered inside a container: no credential mount at all
    // (a job's own token is, test/security/container-token.test.ts).
    const gitMount = info.Mounts.find((m) => m.Destination === '/run/warmstart-git');
    expect(gitMount, JSON.stringify(info.Mounts)).toBeUndefined();
    const imageId = info.Image;
    const imageInspect = await docker(['image', 'inspect', imageId]);
    places.push({ name: 'docker inspect image', bytes: Buffer.from(String(imageInspect.stdout)) });
    // The image's devcontainer.metadata label travels with the cache image to other nodes:
    // this workspace's host paths (the credential mount) must not be in it.
    const metadata = String((JSON.parse(String(imageInspect.stdout)) as ImageInspect[])[0]!.Config.Labels['devcontainer.metadata'] ?? '');
    expect(metadata.length).toBeGreaterThan(0);
    expect(metadata).not.toContain('warmstart-git');
    expect(metadata).not.toContain(runtimeDir);
    if (o.probe) {
      // The repo's ${localEnv:...} really was substituted (HOME came through), so the
      // absence of the secrets below is meaningful, not a broken probe.
      const env = info.Config.Env as string[];
      expect(env).toContain(`PROBE_HOME=${process.env.HOME ?? homedir()}`);
    }

    // The pushed image as the registry holds it.
    const reg = await registryPlaces(ref, scratch);
    expect(await notThisImage(reg.config, reg.configDigest, imageId)).toBeNull();
    places.push(...reg.places);

    // ... and as a node that never saw it gets it: no container, no local image, pull, docker save.
    await cleanUp({ runId: run, workspaceIds: [id], refs: [ref] });
    await wipeImages(run, [ref]);
    expect(await imageExists(ref)).toBe(false);
    expect(await imageExists(imageId)).toBe(false);
    const pull = await docker(['pull', ref], { DOCKER_CONFIG: testDockerConfig });
    expect(pull.exitCode, String(pull.stderr)).toBe(0);
    const pulled = await docker(['image', 'inspect', '--format', '{{.Id}}', ref]);
    expect(String(pulled.stdout).trim()).toBe(reg.configDigest);
    const saveFile = join(scratch, `${o.label}-save.tar`);
    const save = await docker(['save', '-o', saveFile, ref]);
    expect(save.exitCode, String(save.stderr)).toBe(0);
    const savePlaces = await placesFromBlob('docker save', await readFile(saveFile), scratch);
    await rm(saveFile, { force: true });
    // The save was really opened down to the files of every layer: the fixture's own files are there.
    const file = o.probe ? 'probe' : 'which-config';
    const inLayer = savePlaces.find((p) => p.name.endsWith(`!${file}`));
    expect(
      inLayer,
      savePlaces
        .map((p) => p.name)
        .filter((n) => !n.includes('/bin/'))
        .join('\n'),
    ).toBeDefined();
    if (o.probe) expect(inLayer!.bytes.toString()).toMatch(/^probe:\/.*\|/);
    else expect(inLayer!.bytes.toString()).toBe('small\n');
    expect(savePlaces.some((p) => p.bytes.includes(`warmstart.test-run=${run}`) || p.bytes.includes(`"warmstart.test-run":"${run}"`))).toBe(true);
    places.push(...savePlaces);

    const hits = scan(places, secretNeedles());
    audited += places.length;
    const bytes = places.reduce((n, p) => n + p.bytes.length, 0);
    console.log(
      `[secrets] ${o.label}: ${places.length} places searched (${(bytes / 1e6).toFixed(1)} MB) for ${secretNeedles().length} needles, ` +
        `${hits.length} hits; up ${w.cli.wallMs} ms, push ${result.push.ms} ms`,
    );
    expect(hits, hits.map((h) => `${h.needle} in ${h.place} @${h.offset}`).join('\n')).toEqual([]);
  }

  it('password from --registry-password-stdin, token from WARMSTART_GIT_TOKEN: neither appears anywhere', async () => {
    await upAndAudit({
      label: 'stdin',
      repoName: 'Secret-Small',
      env: {},
      flags: ['--registry-username', tb.registryUser, '--registry-password-stdin'],
      input: `${tb.registryPassword}\n`,
    });
  });

  it('static credentials from WARMSTART_REGISTRY_USERNAME / _PASSWORD: neither secret appears anywhere', async () => {
    await upAndAudit({
      label: 'env',
      repoName: 'Secret-Small',
      env: { WARMSTART_REGISTRY_USERNAME: tb.registryUser, WARMSTART_REGISTRY_PASSWORD: tb.registryPassword },
      flags: [],
    });
  });

  it('a repo whose config reads ${localEnv:WARMSTART_*} gets neither secret into its image or container', async () => {
    await upAndAudit({
      label: 'probe',
      repoName: 'Secret-Probe',
      env: { WARMSTART_REGISTRY_USERNAME: tb.registryUser, WARMSTART_REGISTRY_PASSWORD: tb.registryPassword },
      flags: [],
      probe: true,
    });
  });
});
