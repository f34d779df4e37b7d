import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkspaceResult } from '../../shared/src/workspace-result.js';
import { parseResult, runCli, testEnv, type CliRun } from '../support/cli.js';
import { cleanUp, containersWithLabel, volumeExists } from '../support/docker.js';
import { faultRow, githubAppEnv, report, suiteSecrets, table } from '../support/faults.js';
import { agentInvariants, stateInvariants } from '../support/invariants.js';
import { makeRepo, runId } from '../support/repos.js';
import { startAgent, waitForStatus, type Agent } from '../support/serve.js';
import { loadTestbed } from '../support/testbed.js';

/**
 * Hostile repository content: a devcontainer.json that is garbage, huge or
 * nested without end, paths and symlinks that lead out of the clone, and
 * names that try to climb out of the state directory. Each run goes through
 * the real `warmstart up` or `warmstart serve`, Docker and the devcontainers
 * CLI. Beside the outcome, every row proves that nothing outside the
 * workspace was read or written: a sentinel directory beside the node holds
 * a canary whose bytes must show up nowhere (CLI output, events, state, the
 * volume, any image built) and whose access time must not move (so no
 * hashing or build read it), and the node's directory (the state and runtime
 * dirs' parent) changes only inside the workspace's own entry.
 */
const tb = loadTestbed();
const runs: { run: string; ids: string[] }[] = [];
const agents: Agent[] = [];
const sizes: string[][] = [];

/** Long ago: a read moves a file's atime forward (relatime: atime older than mtime). */
const OLD_ATIME = new Date('2001-02-03T04:05:06Z');

/** One row's world: a node dir (state + runtime), a sentinel dir beside it, its own run id. */
interface Sandbox {
  run: string;
  node: string;
  stateDir: string;
  runtimeDir: string;
  sentinel: string;
  /** the canary's bytes: they must appear nowhere */
  canary: string;
  /** every path planted in the sentinel, with its times */
  planted: Map<string, { atimeMs: number; mtimeMs: number; size: number }>;
  env: Record<string, string>;
  ids: string[];
}

async function sandbox(prefix: string): Promise<Sandbox> {
  const run = runId(prefix);
  const root = await mkdtemp(join(tmpdir(), 'warmstart-hostile-'));
  const node = join(root, 'node');
  const stateDir = join(node, 'state');
  const runtimeDir = join(node, 'runtime');
  const sentinel = join(root, 'sentinel');
  await mkdir(stateDir, { recursive: true });
  await mkdir(runtimeDir, { recursive: true });
  const canary = `canary-${randomBytes(16).toString('hex')}`;
  // What a repo might try to reach: a plain secret, a Dockerfile and a config
  // (each would echo the canary if built or read), a compose file, a dir.
  const files: Record<string, string> = {
    'canary.txt': `${canary}\n`,
    Dockerfile: `FROM ${tb.baseImage}\nLABEL warmstart.test-run=${run}\nRUN echo ${canary} > /canary\n`,
    'devcontainer.json': `{ "name": "${canary}", "build": { "dockerfile": "Dockerfile" } }\n`,
    'dc/devcontainer.json': `{ "name": "${canary}", "build": { "dockerfile": "Dockerfile" } }\n`,
    'dc/Dockerfile': `FROM ${tb.baseImage}\nLABEL warmstart.test-run=${run}\nRUN echo ${canary} > /canary\n`,
  };
  for (const [rel, text] of Object.entries(files)) {
    await mkdir(dirname(join(sentinel, rel)), { recursive: true });
    await writeFile(join(sentinel, rel), text);
  }
  const planted = new Map<string, { atimeMs: number; mtimeMs: number; size: number }>();
  await age(
    ['', 'dc', ...Object.keys(files)].map((rel) => join(sentinel, rel)),
    planted,
  );
  const env = await testEnv(tb.baseImage, {
    ...githubAppEnv(),
    WARMSTART_STATE_DIR: stateDir,
    WARMSTART_RUNTIME_DIR: runtimeDir,
    // A real registry: the content key is computed for Dockerfile configs.
    WARMSTART_CACHE_REGISTRY: `${tb.openRegistry}/warmstart-test/${run}`,
    WARMSTART_BUILD_TIMEOUT_SECONDS: '120',
    WARMSTART_PUSH_TIMEOUT_SECONDS: '20',
  });
  const sb: Sandbox = { run, node, stateDir, runtimeDir, sentinel, canary, planted, env, ids: [] };
  runs.push({ run, ids: sb.ids });
  return sb;
}

/** Sets each path's atime long ago (mtime kept) and records its times: a later read moves the atime. */
async function age(paths: string[], into: Map<string, { atimeMs: number; mtimeMs: number; size: number }>): Promise<void> {
  for (const p of paths) {
    const st = await lstat(p);
    await utimes(p, OLD_ATIME, st.mtime);
    const after = await lstat(p);
    into.set(p, { atimeMs: after.atimeMs, mtimeMs: after.mtimeMs, size: after.size });
  }
}

/**
 * The sentinel after a run: no planted path was read (atime), changed
 * (mtime, size) or joined by a new one. Reads nothing itself until the
 * times are checked.
 */
async function sentinelUntouched(sb: Sandbox): Promise<string> {
  for (const [p, before] of sb.planted) {
    const st = await lstat(p);
    expect(st.atimeMs, `${relative(sb.sentinel, p) || 'sentinel dir'} was read (atime moved)`).toBe(before.atimeMs);
    expect(st.mtimeMs, `${relative(sb.sentinel, p) || 'sentinel dir'} was written`).toBe(before.mtimeMs);
    expect(st.size).toBe(before.size);
  }
  const now = [...(await snapshot(sb.sentinel)).keys()].map((rel) => join(sb.sentinel, rel)).sort();
  expect(now).toEqual([...sb.planted.keys()].filter((p) => p !== sb.sentinel).sort());
  // That listing read the directories: age them again for the next run.
  await age(
    [...sb.planted.keys()].filter((p) => p === sb.sentinel || p.endsWith('/dc')),
    sb.planted,
  );
  return `sentinel: ${sb.planted.size} paths unread, unchanged`;
}

/** Every path below `dir` (not following symlinks) with type, mtime and size; reads no file. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  // A running agent replaces files as it goes (write, rename): what vanishes meanwhile is skipped.
  const gone = (err: unknown): null => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  };
  const walk = async (rel: string): Promise<void> => {
    for (const d of (await readdir(join(dir, rel), { withFileTypes: true }).catch(gone)) ?? []) {
      const child = rel ? `${rel}/${d.name}` : d.name;
      const st = await lstat(join(dir, child)).catch(gone);
      if (st === null) continue;
      out.set(child, `${st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'f'} ${st.mtimeMs} ${st.size}`);
      if (d.isDirectory()) await walk(child);
    }
  };
  await walk('');
  return out;
}

/**
 * Paths of the node dir that changed between two snapshots outside `allowed`
 * (prefixes relative to the node dir). A directory holding an allowed path
 * may change its mtime: an entry was added to it.
 */
function changedOutside(before: Map<string, string>, after: Map<string, string>, allowed: string[]): string[] {
  const ok = (p: string): boolean => allowed.some((a) => p === a || p.startsWith(`${a}/`) || a.startsWith(`${p}/`));
  const changed = new Set<string>();
  for (const [p, v] of after) if (before.get(p) !== v) changed.add(p);
  for (const p of before.keys()) if (!after.has(p)) changed.add(p);
  return [...changed].filter((p) => !ok(p)).sort();
}

/** Where the canary's bytes turn up: CLI/agent output, any file under the node dir, the volume, images of the run. */
async function canaryFound(sb: Sandbox, o: { output?: string; volume?: string }): Promise<string[]> {
  const found: string[] = [];
  if (o.output?.includes(sb.canary)) found.push('output');
  const files = await snapshot(sb.node);
  for (const [rel, v] of files) {
    if (!v.startsWith('f')) continue;
    const text = await readFile(join(sb.node, rel)).catch(() => Buffer.alloc(0));
    if (text.includes(sb.canary)) found.push(`node:${rel}`);
  }
  if (o.volume && (await volumeExists(o.volume))) {
    // A tar of the volume read from a throwaway container: the canary is not put on its command line.
    const r = await execa(
      'docker',
      ['run', '--rm', '--label', `warmstart.test-run=${sb.run}`, '-v', `${o.volume}:/v:ro`, tb.baseImage, 'tar', '-cf', '-', '-C', '/v', '.'],
      { encoding: 'buffer', reject: false },
    );
    expect(r.exitCode, String(r.stderr)).toBe(0);
    if (Buffer.from(r.stdout).includes(sb.canary)) found.push(`volume:${o.volume}`);
  }
  const images = await execa('docker', ['image', 'ls', '-aq', '--filter', `label=warmstart.test-run=${sb.run}`]);
  for (const image of new Set(String(images.stdout).split('\n').filter(Boolean))) {
    const saved = await execa('docker', ['image', 'save', image], { encoding: 'buffer', reject: false, maxBuffer: 512 * 1024 * 1024 });
    if (Buffer.from(saved.stdout).includes(sb.canary)) found.push(`image:${image}`);
  }
  return found;
}

/** Phase names in the order they started, from the workspace's event log. */
async function phasesOf(sb: Sandbox, id: string): Promise<string[]> {
  const text = await readFile(join(sb.stateDir, 'workspaces', id, 'events.ndjson'), 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; phase?: string })
    .filter((e) => e.type === 'phase-start')
    .map((e) => e.phase!);
}

async function inspectImage(containerId: string): Promise<{ image: string; running: boolean; profile: string }> {
  const r = await execa('docker', ['inspect', containerId]);
  const c = (JSON.parse(String(r.stdout)) as { Config: { Image: string; Labels: Record<string, string> }; State: { Running: boolean } }[])[0]!;
  return { image: c.Config.Image, running: c.State.Running, profile: c.Config.Labels['warmstart.profile'] ?? '' };
}

/** Commits symlinks into a repo made by makeRepo (the clone recreates them as links). */
async function addSymlinks(repo: string, links: Record<string, string>): Promise<void> {
  for (const [rel, target] of Object.entries(links)) {
    await mkdir(dirname(join(repo, rel)), { recursive: true });
    await symlink(target, join(repo, rel));
  }
  const git = (args: string[]) => execa('git', ['-c', 'user.email=test@warmstart.invalid', '-c', 'user.name=warmstart test', ...args], { cwd: repo });
  await git(['add', '-A']);
  await git(['commit', '-q', '-m', 'links']);
}

/** The clone's config dir for workspace `id` (where the CLI resolves the config's relative paths). */
function cloneConfigDir(sb: Sandbox, id: string): string {
  return join(sb.stateDir, 'workspaces', id, 'src', '.devcontainer');
}

interface Refusal {
  cli: CliRun;
  result: WorkspaceResult;
  phases: string[];
}

/**
 * `up` of a repo whose config must be refused at discovery: recovery on the
 * default image with DEVCONTAINER_CONFIG_INVALID, the message matching
 * `message`, no content key, no override, no devcontainer CLI run; nothing
 * outside the workspace read or written. Returns the observed summary.
 */
async function expectRefusedConfig(
  sb: Sandbox,
  id: string,
  repo: string,
  message: RegExp,
): Promise<Refusal & { outcome: string; checks: string; summary: string }> {
  sb.ids.push(id);
  const before = await snapshot(sb.node);
  const cli = await runCli(['up', repo, '--workspace-id', id, '--json'], { env: sb.env });
  const result = parseResult(cli);
  expect(cli.code, cli.stderr).toBe(3);
  expect(result.outcome).toBe('recovery');
  expect(result.profile).toBe('recovery');
  expect(result.error?.code).toBe('DEVCONTAINER_CONFIG_INVALID');
  expect(result.error?.message).toMatch(message);
  expect(cli.stderr).toContain('DEVCONTAINER_CONFIG_INVALID');
  // Nothing past discovery ran: no key hashed, no override, no `devcontainer up`.
  const phases = await phasesOf(sb, id);
  expect(phases).toContain('config');
  expect(phases).toContain('fallback');
  for (const p of ['key', 'override', 'up']) expect(phases).not.toContain(p);
  const c = await inspectImage(result.containerId!);
  expect(c).toEqual({ image: tb.baseImage, running: true, profile: 'recovery' });
  const untouched = await sentinelUntouched(sb);
  const leaks = await canaryFound(sb, { output: cli.stdout + cli.stderr, volume: `warmstart-ws-${id}` });
  expect(leaks, 'canary bytes found').toEqual([]);
  const outside = changedOutside(before, await snapshot(sb.node), [`state/workspaces/${id}`, 'runtime']);
  expect(outside, 'written outside the workspace').toEqual([]);
  const inv = await stateInvariants(sb.stateDir, [id], [`warmstart-ws-${id}`]);
  const outcome = `exit ${cli.code} ${result.outcome} ${result.error!.code}: "${result.error!.message}"`;
  const checks = `no key/override/up; ${untouched}; canary in 0 places; node dir changed only in its workspace; ${inv}`;
  return { cli, result, phases, outcome, checks, summary: `${outcome}; ${checks}` };
}

/** One observed line for several refusals: each outcome, then the checks every one passed. */
function refusals(list: Array<[string, { outcome: string; checks: string }]>): string {
  return `${list.map(([what, r]) => `${what}: ${r.outcome}`).join('; ')}; each: ${list[list.length - 1]![1].checks}`;
}

afterAll(async () => {
  // An agent whose event loop is stuck cannot handle SIGTERM: kill it after a while.
  for (const a of agents) {
    await Promise.race([a.term(), new Promise((r) => setTimeout(r, 15_000))]).catch(() => undefined);
    if (a.process.exitCode === null) await a.kill9().catch(() => undefined);
  }
  for (const r of runs) {
    await cleanUp({ runId: r.run, workspaceIds: r.ids });
    // A failed build step's container, if any, carries the fixture's label.
    const left = await containersWithLabel(`warmstart.test-run=${r.run}`);
    if (left.length) await execa('docker', ['rm', '-f', ...left], { reject: false });
    await cleanUp({ runId: r.run });
  }
  if (sizes.length) report('Hostile repository content: agent memory', table(['config', 'file size', 'agent peak RSS before', 'after'], sizes));
});

describe('hostile repository content, through the daemon', () => {
  let sb: Sandbox;
  let agent: Agent;

  beforeAll(async () => {
    sb = await sandbox('hostd');
    agent = await startAgent(sb.env, { token: suiteSecrets().apiToken });
    agents.push(agent);
  });

  async function post(body: unknown): Promise<{ status: number; body: { code?: string; message?: string } }> {
    const r = await agent.request('/v1/workspaces', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: r.status, body: (await r.json()) as { code?: string; message?: string } };
  }

  /** Posts a job for `repo`, waits for it to settle; the config must be refused at discovery. */
  async function refusedThroughDaemon(
    id: string,
    repo: string,
  ): Promise<{ view: Record<string, unknown>; phases: string[]; before: Map<string, string> }> {
    sb.ids.push(id);
    const before = await snapshot(sb.node);
    const created = await post({ id, repository: repo });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    const view = await waitForStatus(agent, id, ['ready', 'recovery', 'failed'], 60_000);
    expect(view.status).toBe('recovery');
    expect(view.profile).toBe('recovery');
    expect((view.error as { code: string }).code).toBe('DEVCONTAINER_CONFIG_INVALID');
    const phases = await phasesOf(sb, id);
    expect(phases).toEqual(expect.arrayContaining(['clone', 'volume', 'config', 'fallback']));
    for (const p of ['key', 'override', 'up']) expect(phases).not.toContain(p);
    const c = await inspectImage(String(view.containerId));
    expect(c).toEqual({ image: tb.baseImage, running: true, profile: 'recovery' });
    return { view, phases, before };
  }

  it('a devcontainer.json that is not JSON', async () => {
    await faultRow(
      {
        fault: 'devcontainer.json is garbage, not JSON (daemon)',
        expected: 'recovery on the default image, DEVCONTAINER_CONFIG_INVALID with line:col, nothing past discovery',
      },
      async () => {
        const id = `${sb.run}-garbage`;
        const garbage = `<<<not json>>> \u0007 ${randomBytes(48).toString('base64')} {{{ ]]] "unterminated\n`;
        const repo = await makeRepo(
          { '.devcontainer/devcontainer.json': garbage, '.devcontainer/Dockerfile': `FROM ${tb.baseImage}\n` },
          { runId: sb.run, baseImage: tb.baseImage, owner: 'acme', name: 'garbage' },
        );
        const { view, phases, before } = await refusedThroughDaemon(id, repo);
        const error = view.error as { code: string; message: string; detail?: string };
        expect(error.message).toBe('.devcontainer/devcontainer.json is not valid JSON(C)');
        expect(error.detail).toMatch(/^\.devcontainer\/devcontainer\.json:1:\d+: \w+ \(offset \d+\)/);
        const untouched = await sentinelUntouched(sb);
        expect(await canaryFound(sb, { output: agent.output(), volume: `warmstart-ws-${id}` })).toEqual([]);
        expect(changedOutside(before, await snapshot(sb.node), [`state/workspaces/${id}`, 'runtime'])).toEqual([]);
        const inv = await agentInvariants(agent, [id], [`warmstart-ws-${id}`]);
        return `${view.status} ${error.code}: "${error.message}" (${error.detail?.split(';')[0]}); phases ${phases.join(',')}; ${untouched}; ${inv}`;
      },
    );
  });

  it('a 50 MB devcontainer.json', async () => {
    await faultRow(
      {
        fault: 'devcontainer.json of 50 MB (daemon)',
        expected:
          'recovery, DEVCONTAINER_CONFIG_INVALID naming the 1 MiB limit; the file is never read whole (agent peak RSS grows < 32 MiB over a control job)',
      },
      async () => {
        const id = `${sb.run}-huge`;
        const size = 50 * 1024 * 1024;
        const head = '{ "image": "x", "pad": "';
        const text = `${head}${'a'.repeat(size - head.length - 3)}" }`;
        const repo = await makeRepo(
          { '.devcontainer/devcontainer.json': text },
          { runId: sb.run, baseImage: tb.baseImage, owner: 'acme', name: 'huge' },
        );
        const peak = async (): Promise<number> => {
          const status = await readFile(`/proc/${agent.process.pid}/status`, 'utf8');
          return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
        };
        // Control first: the same 50 MB as a plain file beside a garbage
        // config. Copying the clone into the volume costs the agent a bounded
        // buffer; with that in the peak already, what the next job adds is
        // what reading its config costs.
        const control = await makeRepo(
          { '.devcontainer/devcontainer.json': 'not json', 'big.txt': 'a'.repeat(size) },
          { runId: sb.run, baseImage: tb.baseImage, owner: 'acme', name: 'huge-control' },
        );
        const peakStart = await peak();
        await refusedThroughDaemon(`${sb.run}-control`, control);
        const peakBefore = await peak();
        const { view, before } = await refusedThroughDaemon(id, repo);
        const peakAfter = await peak();
        const error = view.error as { code: string; message: string };
        expect(error.message).toBe(`.devcontainer/devcontainer.json is too large: ${size} bytes, the limit is 1 MiB (1048576 bytes)`);
        // The clone really holds the 50 MB file the agent refused.
        expect((await stat(join(sb.stateDir, 'workspaces', id, 'src', '.devcontainer', 'devcontainer.json'))).size).toBe(size);
        // Reading it would take at least its size again (a Buffer) plus a string of it.
        const grew = peakAfter - peakBefore;
        expect(grew).toBeLessThan(32 * 1024 * 1024);
        const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;
        sizes.push(['50 MB plain file (control)', mib(size), mib(peakStart), mib(peakBefore)]);
        sizes.push(['50 MB devcontainer.json', mib(size), mib(peakBefore), mib(peakAfter)]);
        expect(changedOutside(before, await snapshot(sb.node), [`state/workspaces/${id}`, 'runtime'])).toEqual([]);
        const inv = await agentInvariants(agent, [id, `${sb.run}-control`], [`warmstart-ws-${id}`]);
        return `${view.status} ${error.code}: "${error.message}"; agent peak RSS ${mib(peakStart)} -> ${mib(peakBefore)} (control) -> ${mib(peakAfter)}; ${inv}`;
      },
    );
  });

  it('a .dockerignore and a COPY wildcard built to make pattern matching backtrack', async () => {
    await faultRow(
      {
        fault: '.dockerignore line of 24 "**/" and "COPY *a*a...(30)X" over near-miss paths, with a cache registry (content key computed)',
        expected: 'the key is computed (no stall of the agent), the build runs; agent serves throughout',
      },
      async () => {
        const id = `${sb.run}-globs`;
        sb.ids.push(id);
        const deep = `${'a/'.repeat(30)}b`;
        const repo = await makeRepo(
          {
            '.devcontainer/devcontainer.json': JSON.stringify({ build: { dockerfile: 'Dockerfile', context: '..' } }),
            '.devcontainer/Dockerfile': `FROM ${tb.baseImage}\nLABEL warmstart.test-run=${sb.run}\nCOPY ${'*a'.repeat(30)}X /x/\nCOPY . /ctx/\n`,
            '.dockerignore': `${'**/'.repeat(24)}nomatch\n`,
            [`${'a'.repeat(60)}X`]: 'the one the wildcard copies\n',
            ['a'.repeat(60)]: 'a near miss for the wildcard\n',
            [deep]: 'a near miss for the .dockerignore line\n',
          },
          { runId: sb.run, baseImage: tb.baseImage, owner: 'acme', name: 'globs' },
        );
        const before = await snapshot(sb.node);
        const created = await post({ id, repository: repo });
        expect(created.status, JSON.stringify(created.body)).toBe(202);
        const view = await waitForStatus(agent, id, ['ready', 'recovery', 'failed'], 120_000);
        const events = (await readFile(join(sb.stateDir, 'workspaces', id, 'events.ndjson'), 'utf8'))
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { type: string; phase?: string; status?: string; ms?: number; text?: string });
        const key = events.find((e) => e.type === 'phase-end' && e.phase === 'key');
        expect(key?.status).toBe('ok');
        expect(events.some((e) => e.type === 'note' && e.text?.includes('no content key'))).toBe(false);
        expect(events.some((e) => e.type === 'phase-start' && e.phase === 'up')).toBe(true);
        expect(view.status, JSON.stringify(view.error)).toBe('ready');
        expect(changedOutside(before, await snapshot(sb.node), [`state/workspaces/${id}`, 'runtime'])).toEqual([]);
        const inv = await agentInvariants(agent, [id], [`warmstart-ws-${id}`]);
        const cache = view.cache as { hit: string } | null;
        return `${view.status}; key phase ok in ${key?.ms} ms; cache ${cache?.hit}; ${inv}`;
      },
    );
  });

  it('API bodies nested 10,000 levels, and names with NUL', async () => {
    await faultRow(
      {
        fault: 'POST /v1/workspaces: body nested 10,000 levels; id, configName, repository with NUL or %-escapes',
        expected: '400 with INVALID_* each, agent keeps serving, no state entry, no volume',
      },
      async () => {
        const before = await snapshot(sb.node);
        sb.ids.push(...['deep', 'nul', 'enc', 'repo'].map((x) => `${sb.run}-${x}`)); // for the clean-up, should one get through
        const deepArray = `{"id":"${sb.run}-deep","repository":"/x","cache":${'['.repeat(10_000)}${']'.repeat(10_000)}}`;
        // "constructor" makes the JSON parser walk the whole tree for prototype poisoning.
        const deepObject = `{"id":"${sb.run}-deep","repository":"/x","cache":${'{"a":'.repeat(10_000)}{"constructor":1}${'}'.repeat(10_000)}}`;
        const cases: Array<[string, string | Record<string, unknown>, string]> = [
          ['body [[[... x10000', deepArray, 'INVALID_REQUEST'],
          ['body {"a":{... x10000', deepObject, 'INVALID_REQUEST'],
          ['id with NUL', { id: `${sb.run}\u0000x`, repository: '/x' }, 'INVALID_REQUEST'],
          ['id ../x', { id: '../x', repository: '/x' }, 'INVALID_REQUEST'],
          ['configName with NUL', { id: `${sb.run}-nul`, repository: '/x', configName: 'a\u0000b' }, 'INVALID_CONFIG_NAME'],
          ['configName %2e%2e%2fetc', { id: `${sb.run}-enc`, repository: '/x', configName: '%2e%2e%2fetc' }, 'INVALID_CONFIG_NAME'],
          ['repository with NUL', { id: `${sb.run}-repo`, repository: '/tmp/a\u0000b' }, 'INVALID_REPOSITORY'],
        ];
        const seen: string[] = [];
        for (const [what, body, code] of cases) {
          const r = await post(body);
          expect(r.status, `${what}: ${JSON.stringify(r.body)}`).toBe(400);
          expect(r.body.code, what).toBe(code);
          seen.push(`${what}: ${r.status} ${r.body.code}`);
        }
        for (const id of [`${sb.run}-deep`, `${sb.run}-nul`, `${sb.run}-enc`, `${sb.run}-repo`]) {
          expect(existsSync(join(sb.stateDir, 'workspaces', id)), id).toBe(false);
          expect(await volumeExists(`warmstart-ws-${id}`)).toBe(false);
        }
        expect(changedOutside(before, await snapshot(sb.node), [])).toEqual([]);
        const inv = await agentInvariants(agent, [`${sb.run}-deep`, `${sb.run}-nul`]);
        return `${seen.join('; ')}; node dir unchanged; ${inv}`;
      },
    );
  });
});

describe('hostile repository content, through warmstart up', () => {
  it('a devcontainer.json nested 10,000 levels', async () => {
    await faultRow(
      {
        fault: 'devcontainer.json nesting 10,000 levels ({"a":{"a":... and [[[[...)',
        expected: 'no stack overflow: recovery, DEVCONTAINER_CONFIG_INVALID naming the 64-level limit',
      },
      async () => {
        const sb = await sandbox('hostdeep');
        const shapes: Record<string, string> = {
          objects: `{ "image": "x", "a": ${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)} }`,
          arrays: `{ "image": "x", "a": ${'['.repeat(10_000)}${']'.repeat(10_000)} }`,
        };
        const seen: Array<[string, { outcome: string; checks: string }]> = [];
        for (const [shape, text] of Object.entries(shapes)) {
          const repo = await makeRepo(
            { '.devcontainer/devcontainer.json': text },
            { runId: sb.run, baseImage: tb.baseImage, owner: 'acme', name: shape },
          );
          const r = await expectRefusedConfig(
            sb,
            `${sb.run}-${shape}`,
            repo,
            /^\.devcontainer\/devcontainer\.json nests objects or arrays deeper than 64 levels$/,
          );
          expect(r.result.error?.detail).toMatch(/devcontainer\.json:1:\d+: level 65 opens here/);
          expect(r.cli.stderr).not.toMatch(/Maximum call stack|RangeError/);
          seen.push([shape, r]);
        }
        return refusals(seen);
      },
    );
  });

  it('a Dockerfile path outside the repository', async () => {
    await faultRow(
      {
        fault:
          'build.dockerfile "../../etc/passwd", "/etc/passwd", a relative and an absolute path to a canary Dockerfile, "${localEnv:HOME}/Dockerfile"',
        expected: 'recovery, DEVCONTAINER_CONFIG_INVALID naming build.dockerfile; canary unread and nowhere; /etc/passwd nowhere',
      },
      async () => {
        const sb = await sandbox('hostdf');
        const passwd = (await readFile('/etc/passwd', 'utf8')).split('\n')[0]!;
        const seen: Array<[string, { outcome: string; checks: string }]> = [];
        const cases: Array<[string, (id: string) => string, RegExp]> = [
          ['../../etc/passwd', () => '../../etc/passwd', /points outside the repository/],
          ['/etc/passwd', () => '/etc/passwd', /points outside the repository/],
          ['relative to canary', (id) => relative(cloneConfigDir(sb, id), join(sb.sentinel, 'Dockerfile')), /points outside the repository/],
          ['absolute canary', () => join(sb.sentinel, 'Dockerfile'), /points outside the repository/],
          ['${localEnv:HOME}', () => '${localEnv:HOME}/Dockerfile', /uses a variable other than \$\{localWorkspaceFolder\}/],
        ];
        for (const [what, dockerfile, why] of cases) {
          const id = `${sb.run}-${seen.length}`;
          const value = dockerfile(id);
          const repo = await makeRepo(
            {
              '.devcontainer/devcontainer.json': JSON.stringify({ build: { dockerfile: value } }),
              '.devcontainer/Dockerfile': `FROM ${tb.baseImage}\nLABEL warmstart.test-run=${sb.run}\n`,
            },
            { runId: sb.run, baseImage: tb.baseImage, owner: 'acme', name: `df${seen.length}` },
          );
          const field = new RegExp(
            `^\\.devcontainer/devcontainer\\.json: build\\.dockerfile ${JSON.stringify(value).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} ${why.source}`,
          );
          const r = await expectRefusedConfig(sb, id, repo, field);
          expect(r.cli.stdout + r.cli.stderr).not.toContain(passwd);
          seen.push([what, r]);
        }
        return refusals(seen);
      },
    );
  });

  it('a build context outside the repository', async () => {
    await faultRow(
      {
        fault: 'build.context is the canary dir beside the node (the Dockerfile COPYs canary.txt)',
        expected: 'recovery, DEVCONTAINER_CONFIG_INVALID naming build.context; nothing sent to a build, no image holds the canary',
      },
      async () => {
        const sb = await sandbox('hostctx');
        const id = `${sb.run}-ctx`;
        const context = relative(cloneConfigDir(sb, id), sb.sentinel);
        const repo = await makeRepo(
          {
            '.devcontainer/devcontainer.json': JSON.stringify({ build: { dockerfile: 'Dockerfile', context } }),
            '.devcontainer/Dockerfile': `FROM ${tb.baseImage}\nLABEL warmstart.test-run=${sb.run}\nCOPY canary.txt /canary.txt\n`,
          },
          { runId: sb.run, baseImage: tb.baseImage, owner: 'acme', name: 'ctx' },
        );
        const r = await expectRefusedConfig(sb, id, repo, /: build\.context "[./]+sentinel" points outside the repository$/);
        return r.summary;
      },
    );
  });

  it('symlinks out of the repository: the config, the .devcontainer dir, the Dockerfile', async () => {
    await faultRow(
      {
        fault: 'devcontainer.json a symlink to a file outside; .devcontainer a symlink to a dir outside; build.dockerfile a symlink outside',
        expected: 'recovery, DEVCONTAINER_CONFIG_INVALID (points/leads outside the repository); no link followed out',
      },
      async () => {
        const sb = await sandbox('hostln');
        const seen: Array<[string, { outcome: string; checks: string }]> = [];
        const cases: Array<[string, Record<string, string>, Record<string, string>, RegExp]> = [
          [
            'config link',
            {},
            { '.devcontainer/devcontainer.json': join(sb.sentinel, 'devcontainer.json') },
            /^\.devcontainer\/devcontainer\.json points outside the repository$/,
          ],
          [
            '.devcontainer link',
            {},
            { '.devcontainer': join(sb.sentinel, 'dc') },
            /^\.devcontainer\/devcontainer\.json points outside the repository$/,
          ],
          [
            'Dockerfile link',
            { '.devcontainer/devcontainer.json': JSON.stringify({ build: { dockerfile: 'Dockerfile' } }) },
            { '.devcontainer/Dockerfile': join(sb.sentinel, 'Dockerfile') },
            /^\.devcontainer\/devcontainer\.json: build\.dockerfile "Dockerfile" leads outside the repository through a symlink$/,
          ],
        ];
        for (const [what, files, links, message] of cases) {
          const repo = await makeRepo(
            { 'README.md': `${what}\n`, ...files },
            { runId: sb.run, baseImage: tb.baseImage, owner: 'acme', name: `ln${seen.length}` },
          );
          await addSymlinks(repo, links);
          const r = await expectRefusedConfig(sb, `${sb.run}-${seen.length}`, repo, message);
          seen.push([what, r]);
        }
        return refusals(seen);
      },
    );
  });

  it('COPY sources that are symlinks out of the repository', async () => {
    await faultRow(
      {
        fault: 'the Dockerfile COPYs a file symlink and a dir symlink that point outside (content key computed, build runs)',
        expected:
          'contained: the key hashes the link text only; docker resolves the link inside the context, finds nothing, recovery; canary unread and nowhere',
      },
      async () => {
        const sb = await sandbox('hostcp');
        const id = `${sb.run}-copy`;
        sb.ids.push(id);
        const repo = await makeRepo(
          {
            '.devcontainer/devcontainer.json': JSON.stringify({ build: { dockerfile: 'Dockerfile', context: '..' } }),
            '.devcontainer/Dockerfile': `FROM ${tb.baseImage}\nLABEL warmstart.test-run=${sb.run}\nCOPY secret.txt /secret.txt\nCOPY linked/ /linked/\n`,
          },
          { runId: sb.run, baseImage: tb.baseImage, owner: 'acme', name: 'copylinks' },
        );
        await addSymlinks(repo, { 'secret.txt': join(sb.sentinel, 'canary.txt'), linked: sb.sentinel });
        const before = await snapshot(sb.node);
        const cli = await runCli(['up', repo, '--workspace-id', id, '--json'], { env: sb.env });
        const result = parseResult(cli);
        const phases = await phasesOf(sb, id);
        // The key was computed over the links (not refused, not skipped) and the build ran.
        expect(phases).toEqual(expect.arrayContaining(['key', 'override', 'up']));
        const events = await readFile(join(sb.stateDir, 'workspaces', id, 'events.ndjson'), 'utf8');
        expect(events).not.toContain('no content key');
        // Docker resolves a link inside the build context: the file link's
        // target is not there, so the build stops at that COPY (the failure is
        // the containment) and the default image runs.
        expect(result.outcome).toBe('recovery');
        expect(result.error?.code).toBe('DEVCONTAINER_UP_FAILED');
        const cause = /[^\n"]*secret\.txt\W[^\n"]*(?:not found|does not exist)[^\n"]*/.exec(events.replaceAll('\\n', '\n'))?.[0];
        expect(cause, 'the build log says the linked source is not in the context').toBeDefined();
        const untouched = await sentinelUntouched(sb);
        const leaks = await canaryFound(sb, { output: cli.stdout + cli.stderr, volume: `warmstart-ws-${id}` });
        expect(leaks, 'canary bytes found').toEqual([]);
        expect(changedOutside(before, await snapshot(sb.node), [`state/workspaces/${id}`, 'runtime'])).toEqual([]);
        const inv = await stateInvariants(sb.stateDir, [id], [`warmstart-ws-${id}`]);
        const firstError = result.error ? ` ${result.error.code}` : '';
        return `exit ${cli.code} ${result.outcome}${firstError} ("${cause!.trim()}"); cache ${result.cache.hit}; phases key,override,up ran; ${untouched}; canary in 0 places; ${inv}`;
      },
    );
  });

  it('config names, workspace ids and repositories that try to leave their directory', async () => {
    await faultRow(
      {
        fault: '--config-name ../../etc, .., /etc, %2e%2e%2fetc; --workspace-id ../x, /, .., 64 and 10,000 chars; repository /, 3,000 chars',
        expected: 'exit 2 with INVALID_CONFIG_NAME / INVALID_WORKSPACE_ID / INVALID_REPOSITORY; no state entry, no volume, node dir unchanged',
      },
      async () => {
        const sb = await sandbox('hostname');
        const repo = await makeRepo('small', { runId: sb.run, baseImage: tb.baseImage, owner: 'acme', name: 'names' });
        const good = `${sb.run}-ok`;
        sb.ids.push(good); // for the clean-up, should one of these get through
        const cases: Array<[string, string[], string]> = [
          ...['../../etc', '..', '/etc', '%2e%2e%2fetc', '%2E%2E'].map((n): [string, string[], string] => [
            `--config-name ${n}`,
            ['up', repo, '--workspace-id', good, '--config-name', n],
            'INVALID_CONFIG_NAME',
          ]),
          ...['../x', '/', '..', 'a'.repeat(64), 'b'.repeat(10_000)].map((w): [string, string[], string] => [
            `--workspace-id ${w.length > 20 ? `<${w.length} chars>` : w}`,
            ['up', repo, '--workspace-id', w],
            'INVALID_WORKSPACE_ID',
          ]),
          ['repository /', ['up', '/', '--workspace-id', good], 'INVALID_REPOSITORY'],
          ['repository <3000 chars>', ['up', `/${'r/'.repeat(1500)}`, '--workspace-id', good], 'INVALID_REPOSITORY'],
        ];
        const before = await snapshot(sb.node);
        const seen: string[] = [];
        for (const [what, args, code] of cases) {
          const cli = await runCli([...args, '--json'], { env: sb.env });
          expect(cli.code, `${what}: ${cli.stderr}`).toBe(2);
          const lines = cli.stdout.trim().split('\n');
          expect(lines).toHaveLength(1);
          const body = JSON.parse(lines[0]!) as { error: { code: string; message: string } };
          expect(body.error.code, what).toBe(code);
          expect(cli.stderr).toContain(code);
          seen.push(`${what}: exit 2 ${body.error.code}`);
        }
        expect(await volumeExists(`warmstart-ws-${good}`)).toBe(false);
        expect(await containersWithLabel(`warmstart.workspace=${good}`)).toEqual([]);
        expect(changedOutside(before, await snapshot(sb.node), []), 'node dir changed').toEqual([]);
        expect(await readdir(sb.stateDir)).toEqual([]);
        const inv = await stateInvariants(sb.stateDir, [good]);
        return `${seen.join('; ')}; node dir unchanged; ${inv}`;
      },
    );
  });

  it('an initializeCommand, which the devcontainers CLI would run on the node itself', async () => {
    await faultRow(
      {
        fault: "initializeCommand writes a file beside the node (a host command as the agent's user)",
        expected: 'not run unless WARMSTART_ALLOW_INITIALIZE_COMMAND=1; workspace ready; a note says why',
      },
      async () => {
        const sb = await sandbox('hostinit');
        const marker = join(sb.node, '..', `init-ran-${sb.run}`);
        const config = { build: { dockerfile: 'Dockerfile' }, initializeCommand: `touch ${marker}`, remoteUser: 'root' };
        const repo = await makeRepo(
          {
            '.devcontainer/devcontainer.json': JSON.stringify(config),
            '.devcontainer/Dockerfile': `FROM ${tb.baseImage}\nLABEL warmstart.test-run=${sb.run}\n`,
          },
          { runId: sb.run, baseImage: tb.baseImage, owner: 'acme', name: 'init' },
        );
        const up = async (id: string, extra: Record<string, string>): Promise<WorkspaceResult> => {
          sb.ids.push(id);
          const cli = await runCli(['up', repo, '--workspace-id', id, '--json'], { env: { ...sb.env, ...extra } });
          const result = parseResult(cli);
          expect(cli.code, cli.stderr).toBe(0);
          expect(result.profile).toBe('devcontainer');
          return result;
        };
        const id = `${sb.run}-init`;
        const refused = await up(id, {});
        expect(existsSync(marker), 'initializeCommand ran on the node').toBe(false);
        const events = await readFile(join(sb.stateDir, 'workspaces', id, 'events.ndjson'), 'utf8');
        expect(events).toContain('initializeCommand not run');
        const inv = await stateInvariants(sb.stateDir, [id], [`warmstart-ws-${id}`]);
        // The switch is real: allowed, the same repository's command does run.
        const allowed = await up(`${sb.run}-init2`, { WARMSTART_ALLOW_INITIALIZE_COMMAND: '1' });
        expect(existsSync(marker), 'allowed initializeCommand did not run').toBe(true);
        return `${refused.outcome}, command not run, note in events; with WARMSTART_ALLOW_INITIALIZE_COMMAND=1: ${allowed.outcome}, command ran; ${inv}`;
      },
    );
  });
});
