/**
 * Acceptance (issue 5, golden images): a golden image made with `warmstart
 * image create` from a real `warmstart up` workspace (repo cloned over HTTPS
 * with a git token, registry password from stdin) has the labels of docs/machines.md "Golden images",
 * holds neither secret (the exported image searched down to every file of
 * every layer, and its config), is refused for a stopped workspace or
 * another owner, refuses bad names with exit 2 and makes nothing, and with
 * --push runs on a "fresh node" (everything of this run wiped locally)
 * straight from the registry.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkspaceResult } from '../../../shared/src/workspace-result.js';
import { parseResult, runCli, testEnv, type CliRun } from '../../support/cli.js';
import { cleanUp, imageExists } from '../../support/docker.js';
import { addBareRepo, GIT_HTTP_USER, startGitHttpsServer, type GitHttpsServer } from '../../support/git-https-server.js';
import { makeRepo, runId } from '../../support/repos.js';
import { b64, fakeToken, needlesFor, placesFromBlob, scan, type Needle, type Place } from '../../support/secret-scan.js';
import { loadTestbed } from '../../support/testbed.js';
import { expectedCacheRef } from '../../support/cache-ref.js';

const tb = loadTestbed();
const run = runId('golden');
const OWNER = 'Acme';
const REPO = 'Golden-Src';
const NAME = `g-${run}`;

const token = fakeToken();

const secretNeedles = (): Needle[] => [
  ...needlesFor('git token', token, GIT_HTTP_USER),
  ...needlesFor('registry password', tb.registryPassword, tb.registryUser),
];

/** Hits as `<needle> in <place>`. */
const findings = (places: Place[], needles: Needle[]): string[] => scan(places, needles).map((h) => `${h.needle} in ${h.place}`);

/** `docker save` of ref and `docker image inspect`, opened down to every file of every layer. */
async function imagePlaces(ref: string, scratch: string): Promise<Place[]> {
  const file = join(scratch, `save-${randomBytes(4).toString('hex')}.tar`);
  const save = await execa('docker', ['save', '-o', file, ref], { reject: false });
  expect(save.exitCode, String(save.stderr)).toBe(0);
  const places = await placesFromBlob(`docker save ${ref}`, await readFile(file), scratch);
  await rm(file, { force: true });
  const inspect = await execa('docker', ['image', 'inspect', ref]);
  places.push({ name: `docker image inspect ${ref}`, bytes: Buffer.from(String(inspect.stdout)) });
  return places;
}

// ----------------------------------------------------------------- helpers

interface ImageInspect {
  Id: string;
  Config: { Labels: Record<string, string>; Env: string[]; Entrypoint: string[] | null; Cmd: string[] | null };
}
async function inspectImage(ref: string): Promise<ImageInspect> {
  return (JSON.parse(String((await execa('docker', ['image', 'inspect', ref])).stdout)) as ImageInspect[])[0]!;
}

/** Images of this run (the fixture labels every one; a golden image inherits the label). */
async function runImages(): Promise<string[]> {
  const r = await execa('docker', ['image', 'ls', '-q', '--no-trunc', '--filter', `label=warmstart.test-run=${run}`]);
  return [...new Set(String(r.stdout).split('\n').filter(Boolean))].sort();
}

function errorCode(r: CliRun): string | undefined {
  return (JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { error?: { code: string } }).error?.code;
}

const MANIFEST_TYPES = ['application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.oci.image.manifest.v1+json'].join(', ');
const basic = `Basic ${b64(`${tb.registryUser}:${tb.registryPassword}`)}`;

/** Deletes a tag's manifest from the testbed registry (best effort). */
async function deleteFromRegistry(ref: string): Promise<void> {
  const slash = ref.indexOf('/');
  const colon = ref.lastIndexOf(':');
  const base = `http://${ref.slice(0, slash)}/v2/${ref.slice(slash + 1, colon)}`;
  const head = await fetch(`${base}/manifests/${ref.slice(colon + 1)}`, {
    method: 'HEAD',
    headers: { Authorization: basic, Accept: MANIFEST_TYPES },
  }).catch(() => null);
  const digest = head?.ok ? head.headers.get('docker-content-digest') : null;
  if (digest) await fetch(`${base}/manifests/${digest}`, { method: 'DELETE', headers: { Authorization: basic } }).catch(() => undefined);
}

// ------------------------------------------------------------------- tests

describe('golden images from a workspace (real engine, registry, git over HTTPS, devcontainers CLI)', () => {
  let scratch: string;
  let server: GitHttpsServer;
  let env: Record<string, string>;
  let runtimeDir: string;
  let up: WorkspaceResult;
  let testDockerConfig: string;
  const id = `${run}-ws`;
  const repoRoots: string[] = [];
  const localRefs: string[] = [];
  const registryRefs: string[] = [];
  const image = (args: string[], input?: string): Promise<CliRun> => runCli(['image', ...args], { env, ...(input !== undefined ? { input } : {}) });

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'warmstart-golden-'));
    const projectRoot = join(scratch, 'git-root');
    const dir = await makeRepo(
      {
        '.devcontainer/Dockerfile': [
          'FROM @@BASE_IMAGE@@',
          'LABEL warmstart.test-run=@@RUN_ID@@',
          // capabilities of the source image: inherited by golden images made from it
          'LABEL dev.warmstart.capabilities="shell,custom:gpu"',
          `RUN printf 'ID="wsos"\\nVERSION_ID=1\\n' > /etc/os-release && echo golden-src > /which-config`,
          '',
        ].join('\n'),
        '.devcontainer/devcontainer.json': JSON.stringify({
          build: { dockerfile: 'Dockerfile' },
          remoteUser: 'root',
          // something in the container's own layer, so the commit has a layer of its own
          postCreateCommand: 'echo created-in-workspace > /created.txt',
        }),
      },
      { runId: run, baseImage: tb.baseImage, owner: OWNER, name: REPO },
    );
    repoRoots.push(join(dir, '..', '..'));
    await addBareRepo(dir, projectRoot, OWNER, REPO);
    server = await startGitHttpsServer({ projectRoot, token });
    testDockerConfig = join(scratch, 'docker-config');
    await mkdir(testDockerConfig, { mode: 0o700 });
    await writeFile(
      join(testDockerConfig, 'config.json'),
      JSON.stringify({ auths: { [tb.registry]: { auth: b64(`${tb.registryUser}:${tb.registryPassword}`) } } }),
      { mode: 0o600 },
    );

    runtimeDir = join(scratch, 'runtime');
    env = await testEnv(tb.baseImage, {
      WARMSTART_GIT_TOKEN: token,
      WARMSTART_GIT_TOKEN_HOSTS: new URL(server.url).host,
      GIT_SSL_CAINFO: server.caFile,
      WARMSTART_RUNTIME_DIR: runtimeDir,
    });
    const cacheRegistry = `${tb.registry}/warmstart-test/${run}/up`;
    registryRefs.push(expectedCacheRef(cacheRegistry, `${server.url}/${OWNER}/${REPO}.git`));
    const r = await runCli(
      [
        'up',
        `${server.url}/${OWNER}/${REPO}.git`,
        '--workspace-id',
        id,
        '--cache-registry',
        cacheRegistry,
        '--registry-username',
        tb.registryUser,
        '--registry-password-stdin',
        '--json',
      ],
      { env, input: `${tb.registryPassword}\n` },
    );
    expect(r.code, r.stderr).toBe(0);
    up = parseResult(r);
    expect(up).toMatchObject({ outcome: 'ready', profile: 'devcontainer' });
    // Both secrets were really used: the password pushed the cache, the token cloned.
    expect(up.push.status, JSON.stringify(up.push)).toBe('pushed');
    expect(server.requests.some((q) => q.auth === 'ok' && q.status === 200)).toBe(true);
  });

  afterAll(async () => {
    await cleanUp({ runId: run, workspaceIds: [id], refs: [...localRefs, ...registryRefs] });
    for (const ref of registryRefs) await deleteFromRegistry(ref);
    await server?.close();
    for (const d of [...repoRoots, env?.WARMSTART_STATE_DIR, env?.WARMSTART_RUNTIME_DIR, scratch])
      if (d) await rm(d, { recursive: true, force: true });
  });

  it('refuses bad names, tags and capabilities with exit 2 and the stable codes, and makes nothing', async () => {
    const before = await runImages();
    const cases: [string[], string][] = [
      [['--name', 'Golden'], 'INVALID_IMAGE_NAME'],
      [['--name', 'g'], 'INVALID_IMAGE_NAME'],
      [['--name', 'g'.repeat(65)], 'INVALID_IMAGE_NAME'],
      [['--name', '.golden'], 'INVALID_IMAGE_NAME'],
      [['--name', NAME, '--tag', 'v'.repeat(64)], 'INVALID_IMAGE_TAG'],
      [['--name', NAME, '--tag', 'v:1'], 'INVALID_IMAGE_TAG'],
      [['--name', NAME, ...Array.from({ length: 11 }, (_, i) => ['--capability', `c${i}`]).flat()], 'INVALID_CAPABILITY'],
      [['--name', NAME, '--capability', 'x'.repeat(41)], 'INVALID_CAPABILITY'],
      [['--name', NAME, '--capability', 'gpu,cuda'], 'INVALID_CAPABILITY'],
      [['--name', NAME, '--owner', 'not an owner'], 'INVALID_ARGUMENT'],
      [['--name', NAME, '--push'], 'INVALID_REGISTRY'], // no --cache-registry, none configured
    ];
    for (const [args, code] of cases) {
      const r = await image(['create', '--workspace', id, ...args, '--json']);
      expect(r.code, `${args.join(' ').slice(0, 80)}: ${r.stderr}`).toBe(2);
      expect(errorCode(r)).toBe(code);
      expect(r.stderr).toContain(`warmstart: ${code}:`);
    }
    expect((await image(['create', '--workspace', 'Bad_Id', '--name', NAME, '--json'])).code).toBe(2);
    expect((await image(['rm', 'Bad:x', '--json'])).code).toBe(2);
    expect((await image(['frobnicate'])).code).toBe(2);
    expect(await runImages()).toEqual(before);
    expect(await imageExists(`warmstart-golden/${NAME}:latest`)).toBe(false);
  });

  it('creates a golden image with the documented labels (docs/machines.md), inherited and custom capabilities merged, holding neither secret', async () => {
    // The node's git token (WARMSTART_GIT_TOKEN) cloned the repository but is never offered
    // inside the container (test/security/container-token.test.ts): no credential mount, no helper env.
    type Inspect = { Mounts: { Type: string; Source: string; Destination: string; RW: boolean }[]; Config: { Env: string[] } };
    const info = (JSON.parse(String((await execa('docker', ['inspect', up.containerId!])).stdout)) as Inspect[])[0]!;
    const gitMount = info.Mounts.find((m) => m.Destination === '/run/warmstart-git');
    expect(gitMount, JSON.stringify(info.Mounts)).toBeUndefined();
    expect(info.Config.Env.join('\n')).not.toContain('/run/warmstart-git');

    const r = await image([
      'create',
      '--workspace',
      id,
      '--name',
      NAME,
      '--tag',
      'v1',
      '--capability',
      'gpu',
      '--capability',
      'python 3.12',
      '--capability',
      'gpu',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as {
      image: { ref: string; id: string; name: string; tag: string; os: string; owner: string | null; capabilities: string[] };
      push: { status: string };
    };
    const ref = `warmstart-golden/${NAME}:v1`;
    localRefs.push(ref);
    expect(result.image).toMatchObject({
      ref,
      name: NAME,
      tag: 'v1',
      os: 'wsos',
      owner: null,
      capabilities: ['shell', 'custom:gpu', 'custom:python 3.12'],
    });
    expect(result.push.status).toBe('skipped');

    const img = await inspectImage(ref);
    expect(img.Id).toBe(result.image.id);
    expect(img.Config.Labels).toMatchObject({
      'dev.warmstart.managed': 'true',
      'dev.warmstart.os': 'wsos',
      'dev.warmstart.owner': '',
      'dev.warmstart.source': 'workspace-commit',
      'dev.warmstart.capabilities': 'shell,custom:gpu,custom:python 3.12',
      'warmstart.test-run': run,
      // containers run from it are not taken for the workspace
      'warmstart.workspace': '',
    });
    // Nothing of this host travels with it: not the state dir (the CLI's host paths), not the credential mount.
    console.log(`[golden] labels: ${Object.keys(img.Config.Labels).sort().join(', ')}`);
    expect(JSON.stringify(img.Config)).not.toContain(env.WARMSTART_STATE_DIR!);
    expect(JSON.stringify(img.Config)).not.toContain(runtimeDir);
    // No credential helper env travels with it.
    expect((img.Config.Env as string[]).join('\n')).not.toContain('/run/warmstart-git');
    // It starts like its source image: no devcontainer keep-alive entrypoint.
    expect(img.Config.Entrypoint ?? []).toEqual([]);
    expect(img.Config.Cmd).toEqual(['/bin/sh']);

    const list = await image(['list', '--json']);
    expect(list.code, list.stderr).toBe(0);
    const listed = (JSON.parse(list.stdout) as { images: { ref: string; capabilities: string[] }[] }).images.find((i) => i.ref === ref);
    expect(listed?.capabilities).toEqual(['shell', 'custom:gpu', 'custom:python 3.12']);

    const places = await imagePlaces(ref, scratch);
    // The save was opened down to the files of the workspace's own layer and the source's.
    expect(places.find((p) => p.name.endsWith('!created.txt'))?.bytes.toString()).toBe('created-in-workspace\n');
    expect(places.find((p) => p.name.endsWith('!which-config'))?.bytes.toString()).toBe('golden-src\n');
    expect(places.some((p) => p.bytes.includes('"dev.warmstart.source":"workspace-commit"'))).toBe(true);
    // The scanner finds the token where it is planted, so zero hits below means something.
    expect(findings([{ name: 'planted token', bytes: Buffer.from(`x${token}x`) }], secretNeedles())).toContain('git token raw in planted token');
    const hits = findings(places, secretNeedles());
    const bytes = places.reduce((n, p) => n + p.bytes.length, 0);
    console.log(
      `[golden] ${places.length} places (${(bytes / 1e6).toFixed(1)} MB) searched for ${secretNeedles().length} needles: ${hits.length} hits`,
    );
    expect(hits).toEqual([]);
  });

  it("refuses another owner than the workspace's (OWNER_MISMATCH) and records the workspace's owner", async () => {
    // The record's owner (the subject of the JWT that created it, set by the API) is the workspace's owner; here written by hand.
    const recordFile = join(env.WARMSTART_STATE_DIR!, 'workspaces', id, 'workspace.json');
    const record = JSON.parse(await readFile(recordFile, 'utf8')) as Record<string, unknown>;
    await writeFile(recordFile, JSON.stringify({ ...record, owner: 'alice' }));
    const before = await runImages();
    const r = await image(['create', '--workspace', id, '--name', NAME, '--tag', 'bob', '--owner', 'bob', '--json']);
    expect(r.code, r.stderr).toBe(1);
    expect(errorCode(r)).toBe('OWNER_MISMATCH');
    expect(await runImages()).toEqual(before);

    for (const [tag, flags] of [
      ['alice', ['--owner', 'alice']],
      ['inherited', []],
    ] as const) {
      const ok = await image(['create', '--workspace', id, '--name', NAME, '--tag', tag, ...flags, '--json']);
      expect(ok.code, ok.stderr).toBe(0);
      localRefs.push(`warmstart-golden/${NAME}:${tag}`);
      expect((await inspectImage(`warmstart-golden/${NAME}:${tag}`)).Config.Labels['dev.warmstart.owner']).toBe('alice');
    }
    await writeFile(recordFile, JSON.stringify(record));
  });

  it('refuses to commit a container whose own layer holds a credential file, naming it, and commits once it is gone', async () => {
    const sh = (script: string) => execa('docker', ['exec', up.containerId!, 'sh', '-c', script]);
    await sh('mkdir -p /root && printf "https://x-access-token:not-the-token@example.com\\n" > /root/.git-credentials');
    const before = await runImages();
    const r = await image(['create', '--workspace', id, '--name', NAME, '--tag', 'leaky', '--json']);
    expect(r.code, r.stderr).toBe(1);
    expect(errorCode(r)).toBe('BACKEND_PRECONDITION');
    expect(r.stderr).toContain('/root/.git-credentials');
    expect(await runImages()).toEqual(before);
    await sh('rm /root/.git-credentials');
    const ok = await image(['create', '--workspace', id, '--name', NAME, '--tag', 'clean', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    localRefs.push(`warmstart-golden/${NAME}:clean`);
  });

  it('with --with-workspace, the repository at its last state is in the image; a credential in the folder refuses it and makes nothing', async () => {
    const sh = (script: string) => execa('docker', ['exec', up.containerId!, 'sh', '-c', script]);
    const info = (
      JSON.parse(String((await execa('docker', ['inspect', up.containerId!])).stdout)) as { Mounts: { Name?: string; Destination: string }[] }[]
    )[0]!;
    const folder = info.Mounts.find((m) => m.Name === `warmstart-ws-${id}`)?.Destination;
    expect(folder, JSON.stringify(info.Mounts)).toMatch(/^\/workspaces\//);
    // The workspace's last state: a tracked file changed, one added, one owned by another user, one removed.
    await sh(
      `cd ${folder} && echo changed >> .devcontainer/Dockerfile && echo new-in-workspace > added.txt && echo theirs > owned.txt && chown 1234:2345 owned.txt && rm .devcontainer/devcontainer.json`,
    );
    const expected = String((await sh(`cd ${folder} && find . -path ./.git/objects -prune -o -print | sort && cat .git/HEAD .git/config`)).stdout);
    const allImages = async (): Promise<string[]> =>
      String((await execa('docker', ['image', 'ls', '-a', '-q', '--no-trunc', '--filter', `label=warmstart.test-run=${run}`])).stdout)
        .split('\n')
        .filter(Boolean)
        .sort();
    const before = await allImages();

    // Refused, naming the file, for each kind of credential; nothing is left behind, not even the step image.
    const leaks: [string, string, string][] = [
      ['a credential file', `printf 'https://u:p@example.com\\n' > ${folder}/sub/.git-credentials`, 'sub/.git-credentials is a credential file'],
      ['the git token itself', `printf 'x%sx' '${token}' > ${folder}/notes.txt`, 'notes.txt holds a known secret'],
      [
        'a header in .git/config',
        `printf '[http]\\n\\textraheader = AUTHORIZATION: basic eA==\\n' >> ${folder}/.git/config`,
        '.git/config sets an http extraheader',
      ],
      [
        'a password in a remote URL',
        `printf '[remote "x"]\\n\\turl = https://me:pw@example.com/r.git\\n' >> ${folder}/.git/config`,
        '.git/config sets a URL with a password',
      ],
    ];
    const cleanConfig = String((await sh(`cat ${folder}/.git/config`)).stdout);
    for (const [what, plant, named] of leaks) {
      await sh(`mkdir -p ${folder}/sub && ${plant}`);
      const r = await image(['create', '--workspace', id, '--name', NAME, '--tag', 'leaky-ws', '--with-workspace', '--json']);
      expect(r.code, `${what}: ${r.stderr}`).toBe(1);
      expect(errorCode(r), what).toBe('BACKEND_PRECONDITION');
      expect(r.stderr, what).toContain(named);
      expect(r.stdout + r.stderr, what).not.toContain(token);
      expect(await allImages(), what).toEqual(before);
      await execa('docker', ['exec', '-i', up.containerId!, 'sh', '-c', `rm -rf ${folder}/sub ${folder}/notes.txt && cat > ${folder}/.git/config`], {
        input: `${cleanConfig}\n`,
      }); // execa took the last newline off
    }

    const r = await image(['create', '--workspace', id, '--name', NAME, '--tag', 'with-ws', '--with-workspace', '--owner', 'someone-else', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const ref = `warmstart-golden/${NAME}:with-ws`;
    localRefs.push(ref);
    const result = JSON.parse(r.stdout) as { image: { owner: string | null; labels: Record<string, string> } };
    // The owner is the workspace's (none here), never the one asked for.
    expect(result.image.owner).toBeNull();
    expect(result.image.labels['dev.warmstart.workspace-folder']).toBe(folder);

    // A container started from the image, with no volume, sees the repository as the workspace left it.
    const ran = await execa(
      'docker',
      [
        'run',
        '--rm',
        '--label',
        'warmstart.test=golden',
        ref,
        'sh',
        '-c',
        `cd ${folder} && find . -path ./.git/objects -prune -o -print | sort && cat .git/HEAD .git/config && echo --- && cat added.txt && tail -n 1 .devcontainer/Dockerfile && stat -c %u:%g owned.txt && ls .git/objects | head -n 1`,
      ],
      { reject: false },
    );
    expect(ran.exitCode, String(ran.stderr)).toBe(0);
    const [tree, rest] = String(ran.stdout).split('\n---\n');
    expect(tree).toBe(expected);
    expect(rest!.split('\n').slice(0, 3)).toEqual(['new-in-workspace', 'changed', '1234:2345']);
    expect(rest!.split('\n')[3], 'git objects travel with the repository').toMatch(/^([0-9a-f]{2}|pack|info)$/);
    // The rest of the container's layer is there too, and the image holds neither secret.
    expect(String((await execa('docker', ['run', '--rm', '--label', 'warmstart.test=golden', ref, 'cat', '/created.txt'])).stdout)).toBe(
      'created-in-workspace',
    );
    expect(findings(await imagePlaces(ref, scratch), secretNeedles())).toEqual([]);
  });

  it('refuses a workspace that is not running (WORKSPACE_NOT_RUNNING) or not there (WORKSPACE_NOT_FOUND)', async () => {
    const before = await runImages();
    const missing = await image(['create', '--workspace', `${run}-nope`, '--name', NAME, '--json']);
    expect(missing.code, missing.stderr).toBe(1);
    expect(errorCode(missing)).toBe('WORKSPACE_NOT_FOUND');

    await execa('docker', ['stop', '-t', '2', up.containerId!]);
    try {
      const r = await image(['create', '--workspace', id, '--name', NAME, '--tag', 'stopped', '--json']);
      expect(r.code, r.stderr).toBe(1);
      expect(errorCode(r)).toBe('WORKSPACE_NOT_RUNNING');
      expect(await imageExists(`warmstart-golden/${NAME}:stopped`)).toBe(false);
      expect(await runImages()).toEqual(before);
    } finally {
      await execa('docker', ['start', up.containerId!]);
    }
  });

  it('with --push, the image runs on a fresh node straight from the registry', async () => {
    const cacheRegistry = `${tb.registry}/warmstart-test/${run}`;
    const pushed = `${cacheRegistry}/golden/${NAME}:pushed`;
    registryRefs.push(pushed);
    const r = await image(
      [
        'create',
        '--workspace',
        id,
        '--name',
        NAME,
        '--tag',
        'pushed',
        '--capability',
        'fresh-node',
        '--push',
        '--cache-registry',
        cacheRegistry,
        '--registry-username',
        tb.registryUser,
        '--registry-password-stdin',
        '--json',
      ],
      `${tb.registryPassword}\n`,
    );
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { image: { id: string; pushedRefs: string[] }; push: { status: string; ref: string } };
    expect(result.push).toMatchObject({ status: 'pushed', ref: pushed });
    expect(result.image.pushedRefs).toEqual([pushed]);
    localRefs.push(`warmstart-golden/${NAME}:pushed`);
    expect(r.stdout + r.stderr).not.toContain(tb.registryPassword);

    // `image rm` takes the local tags (golden and pushed) away...
    const rmOut = await image(['rm', `${NAME}:pushed`, '--json']);
    expect(rmOut.code, rmOut.stderr).toBe(0);
    expect(await imageExists(`warmstart-golden/${NAME}:pushed`)).toBe(false);
    expect(await imageExists(pushed)).toBe(false);
    expect((await image(['rm', `${NAME}:pushed`, '--json'])).code).toBe(1); // IMAGE_NOT_FOUND now

    // ... and a fresh node has nothing of this run: no workspace, no image built or committed here.
    await cleanUp({ runId: run, workspaceIds: [id], refs: localRefs });
    expect(await runImages()).toEqual([]);
    expect(await imageExists(result.image.id)).toBe(false);

    const pull = await execa('docker', ['pull', pushed], { reject: false, env: { DOCKER_CONFIG: testDockerConfig } });
    expect(pull.exitCode, String(pull.stderr)).toBe(0);
    expect(String((await execa('docker', ['image', 'inspect', '--format', '{{.Id}}', pushed])).stdout).trim()).toBe(result.image.id);
    const ran = await execa('docker', ['run', '--rm', '-i', '--label', 'warmstart.test=golden', pushed], {
      reject: false,
      input: 'cat /created.txt /which-config; . /etc/os-release; echo "$ID"\n',
    });
    expect(ran.exitCode, String(ran.stderr)).toBe(0);
    expect(String(ran.stdout)).toBe('created-in-workspace\ngolden-src\nwsos'); // execa drops the last newline
    expect((await inspectImage(pushed)).Config.Labels['dev.warmstart.capabilities']).toBe('shell,custom:gpu,custom:fresh-node');

    // As pulled from the registry, it holds neither secret either.
    const hits = findings(await imagePlaces(pushed, scratch), secretNeedles());
    expect(hits).toEqual([]);
  });
});
