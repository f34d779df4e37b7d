/**
 * `npm run bench`: warmstart against the physical floor, side by side, on the
 * real engine, registry and devcontainers CLI (test/testbed/up.sh).
 *
 * Every case starts from a "fresh node" (every image of this bench run
 * removed: they all carry LABEL warmstart.bench-run=<id>) and runs N times
 * (default 5). Runs are interleaved, i = 1..N:
 *
 *   plain-cold_i, overhead_i, warm-cold_i, floor_i, warm-exact_i, warm-layers_i (= push-on_i), push-off_i
 *
 * so that the two runs of every pair behind a ratio ran next to each other;
 * a ratio is the median of the per-pair ratios (run i of A / run i of B).
 * Then `warmstart serve`: RSS idle and with 3 jobs, /health p99 while 2 build.
 *
 * Usage: node dist/test/bench/run.js [--runs N] [--only ROWS] [--serve-runs K] [--quick] [--out FILE] [--wait-quiet SECONDS]
 *   --runs N     runs per case (default 5, or BENCH_RUNS)
 *   --only ROWS  run only these groups of rows, comma-separated: cases, serve, pinning, signature, lxd (default all)
 *   --serve-runs K  measure `warmstart serve` K times (default 1); its rows are then medians over the K
 *   --serve-node-args=ARGS  node options for the measured daemon, space-separated (e.g. --serve-node-args="--cpu-prof --cpu-prof-dir=DIR");
 *                           default: the unit's WARMSTART_NODE_OPTIONS
 *   --quick      shrink the fixture's sleeps and layer: a smoke test of the harness, NOT the real fixture
 *   --out FILE   where to write the results (default bench/results.json)
 *   --wait-quiet wait up to SECONDS for other workloads (tests, builds) on this machine to end first
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ContentionWatch } from './contention.js';
import { builderRef } from '../../agent/src/cache/ref.js';
import { BENCH_CONTAINER_LABEL, docker, engineVersion, removeContainers, removeWorkspace, runImages, wipeRunImages } from './docker.js';
import { loadTestbed, makeBenchRepo, newExactKey } from './fixture.js';
import { benchMachineUpHit, type MachineUpBenchResult } from './lxd.js';
import { sh } from './proc.js';
import { Registry } from './registry.js';
import { measurePinning, pinRow, type PinMeasurement } from './pin.js';
import { measureSignatureCheck, signatureRow, type SignatureMeasurement } from './signature.js';
import { measureServe, medianServe, serveRow, type ServeMeasurement } from './serve.js';
import { median, pairRatio, round, type PairRatio } from './stats.js';
import { devcontainerUp, pullAndRun, warmstartUp, type RunRecord, type Tools } from './warmstart.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BUDGET_MS = 25 * 60_000;

const CASES = [
  'plain-cold',
  'overhead',
  'warm-cold',
  'floor',
  'warm-exact',
  'warm-layers',
  'push-on',
  'push-off',
  'bk-plain-cold',
  'bk-warm-cold',
  'bk-floor',
  'bk-warm-exact',
  'bk-warm-layers',
  'bk-pull-first',
] as const;
type CaseName = (typeof CASES)[number];

const MEASURE: Record<CaseName, string> = {
  'plain-cold': 'wall time of `devcontainer up` (pinned CLI, no warmstart), spawn to exit',
  overhead: 'warmstart up --no-cache: spawn to its "ready" line',
  'warm-cold': 'warmstart up, empty registry namespace: spawn to its "ready" line (the push runs after ready)',
  floor: 'docker pull of the finished image + the CLI\'s `up` of {"image": ref} (wall times summed; `docker run -d` timed separately, see details)',
  'warm-exact': 'warmstart up, exact tag in the registry: spawn to its "ready" line',
  'warm-layers': 'warmstart up, another content key (the config\'s name changed), the same build steps: spawn to its "ready" line',
  'push-on': 'timings.ready of the warm-layers runs (push on)',
  'push-off': 'timings.ready of warmstart up --no-push, moving tag only',
  'bk-plain-cold': 'node 2 (engine 26, BuildKit): wall time of `devcontainer up`, no warmstart',
  'bk-warm-cold': "node 2: warmstart up, empty registry namespace (seeds BuildKit's moving tag and the exact tag)",
  'bk-floor': 'node 2: docker pull of BuildKit\'s moving image + the CLI\'s `up` of {"image": ref}',
  'bk-warm-exact': 'node 2: warmstart up, exact tag in the registry',
  'bk-warm-layers': 'node 2: warmstart up, moving tag only; the build does not wait for the pull (WARMSTART_CACHE_PULL_FIRST=auto)',
  'bk-pull-first': 'node 2: as bk-warm-layers, but the build waits for the moving pull first (WARMSTART_CACHE_PULL_FIRST=always)',
};

interface Goal {
  name: string;
  value: number | null;
  goal: number;
  unit: string;
  met: boolean | null;
  /** value - goal when missed */
  missedBy: number | null;
  missedByPct: number | null;
  note?: string;
}

function goal(name: string, value: number | null, target: number, unit: string, note?: string): Goal {
  const met = value === null ? null : value <= target;
  return {
    name,
    value,
    goal: target,
    unit,
    met,
    missedBy: met === false && value !== null ? round(value - target, 3) : null,
    missedByPct: met === false && value !== null ? round((100 * (value - target)) / target, 1) : null,
    ...(note ? { note } : {}),
  };
}

/** Groups of rows `--only` can pick; every group runs by default. */
const ROW_GROUPS = ['cases', 'serve', 'pinning', 'signature', 'lxd'] as const;
type RowGroup = (typeof ROW_GROUPS)[number];
/** The node options the unit gives the daemon (deploy/warmstart.service), so the serve rows measure it as it runs on a node. */
async function unitNodeOptions(): Promise<string> {
  const unit = await readFile(join(ROOT, 'deploy', 'warmstart.service'), 'utf8');
  return /^Environment=WARMSTART_NODE_OPTIONS=(.*)$/m.exec(unit)?.[1] ?? '';
}

const USAGE =
  'usage: node dist/test/bench/run.js [--runs N] [--only cases,serve,pinning,signature,lxd] [--serve-runs K] [--serve-node-args=ARGS] [--quick] [--out FILE] [--wait-quiet SECONDS]\n';

/** `--only a,b`: the groups asked for, each checked against ROW_GROUPS. */
function rowGroups(text: string | undefined): Set<RowGroup> {
  if (text === undefined) return new Set(ROW_GROUPS);
  const asked = text
    .split(',')
    .map((g) => g.trim())
    .filter((g) => g !== '');
  const unknown = asked.filter((g) => !(ROW_GROUPS as readonly string[]).includes(g));
  if (asked.length === 0 || unknown.length > 0) throw new Error(`--only takes some of ${ROW_GROUPS.join(', ')}, got ${JSON.stringify(text)}`);
  return new Set(asked as RowGroup[]);
}

const secs = (ms: number | null | undefined): string => (ms === null || ms === undefined ? '—' : `${(ms / 1000).toFixed(2)}s`);
const clock = (ms: number): string => `${Math.floor(ms / 60_000)}:${String(Math.floor((ms % 60_000) / 1000)).padStart(2, '0')}`;

async function main(): Promise<number> {
  let started = performance.now();
  let waitedMs = 0;
  const startedAt = new Date().toISOString();
  const { values } = parseArgs({
    options: {
      runs: { type: 'string' },
      quick: { type: 'boolean' },
      out: { type: 'string' },
      'wait-quiet': { type: 'string' },
      only: { type: 'string' },
      'serve-runs': { type: 'string' },
      'serve-node-args': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const only = rowGroups(values.only);
  const serveRunsText = values['serve-runs'] ?? '1';
  const serveRuns = Number(serveRunsText);
  if (!Number.isInteger(serveRuns) || serveRuns < 1 || serveRuns > 20)
    throw new Error(`--serve-runs takes a whole number 1..20, got ${serveRunsText}`);
  const runsText = values.runs ?? process.env.BENCH_RUNS ?? '5';
  const N = Number(runsText);
  if (!Number.isInteger(N) || N < 1 || N > 50) throw new Error(`--runs takes a whole number 1..50, got ${runsText}`);
  const quick = values.quick === true;
  const outFile = resolve(values.out ?? join(ROOT, 'bench', 'results.json'));
  const log = (text: string): void => {
    process.stdout.write(`[${clock(performance.now() - started)}] ${text}\n`);
  };
  if (quick) log('QUICK MODE: the fixture sleeps 1 s per step and its layer is 5 MB. NOT the real fixture; the numbers mean nothing.');

  const tools: Tools = {
    node: process.execPath,
    cli: join(ROOT, 'dist/agent/src/cli/main.js'),
    devcontainer: join(ROOT, 'node_modules/@devcontainers/cli/devcontainer.js'),
  };
  const tb = await loadTestbed();
  const registry = new Registry(tb.registry, tb.registryUser, tb.registryPassword);
  if (!(await registry.ping())) throw new Error(`registry ${tb.registry} does not answer (run test/testbed/up.sh)`);
  const engine = await engineVersion();
  if (!engine) throw new Error('no Docker engine answers (run test/testbed/up.sh)');
  const cliVersion = (await sh(tools.node, [tools.devcontainer, '--version'])).stdout.trim();

  // Lowercase, short: it goes into workspace ids, registry namespaces and labels.
  const runId = `b${Date.now().toString(36).slice(-6)}${Math.random().toString(36).slice(2, 5)}`;
  const workDir = await mkdtemp('/tmp/warmstart-bench-');
  const workspaceIds = new Set<string>();
  const namespaces = new Set<string>();
  const warnings: string[] = [];
  const warn = (text: string): void => {
    warnings.push(text);
    log(`WARNING: ${text}`);
  };
  log(`bench run ${runId}: ${N} run(s) per case, engine ${engine}, devcontainers CLI ${cliVersion}, work dir ${workDir}`);

  // A private docker config with the registry's credentials (for `docker pull` in the floor case); ~/.docker is never touched.
  const dockerConfigDir = join(workDir, 'docker-config');
  await mkdir(dockerConfigDir, { recursive: true, mode: 0o700 });
  await writeFile(
    join(dockerConfigDir, 'config.json'),
    JSON.stringify({ auths: { [tb.registry]: { auth: Buffer.from(`${tb.registryUser}:${tb.registryPassword}`).toString('base64') } } }),
    { mode: 0o600 },
  );
  const dockerEnv = { ...process.env, DOCKER_CONFIG: dockerConfigDir };
  // Node 2: the same credentials, and its buildx plugin, so `devcontainer up` there builds with BuildKit.
  const node2ConfigDir = join(workDir, 'docker-config-node2');
  await mkdir(node2ConfigDir, { recursive: true, mode: 0o700 });
  await writeFile(
    join(node2ConfigDir, 'config.json'),
    JSON.stringify({
      auths: { [tb.registry]: { auth: Buffer.from(`${tb.registryUser}:${tb.registryPassword}`).toString('base64') } },
      cliPluginsExtraDirs: tb.node2.pluginDirs.split(':'),
    }),
    { mode: 0o600 },
  );
  const node2Env = { ...process.env, DOCKER_CONFIG: node2ConfigDir, DOCKER_HOST: tb.node2.dockerHost };

  const repo = await makeBenchRepo(join(workDir, 'repos', 'bench', 'app'), { runId, baseImage: tb.baseImage, quick });
  const stateDir = join(workDir, 'state');
  const runtimeDir = join(workDir, 'runtime');
  await mkdir(runtimeDir, { recursive: true, mode: 0o700 });
  const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WARMSTART_')));
  const warmEnv = (namespace: string | null): NodeJS.ProcessEnv => ({
    ...cleanEnv,
    WARMSTART_STATE_DIR: stateDir,
    WARMSTART_RUNTIME_DIR: runtimeDir,
    WARMSTART_DEFAULT_IMAGE: tb.baseImage,
    WARMSTART_CACHE_REGISTRY: namespace ? `${tb.registry}/${namespace}` : '',
    WARMSTART_REGISTRY_USERNAME: tb.registryUser,
    WARMSTART_REGISTRY_PASSWORD: tb.registryPassword,
  });
  const warmEnv2 = (namespace: string, pullFirst = false): NodeJS.ProcessEnv => ({
    ...warmEnv(namespace),
    DOCKER_HOST: tb.node2.dockerHost,
    WARMSTART_DOCKER_CLI_PLUGIN_DIRS: tb.node2.pluginDirs,
    ...(pullFirst ? { WARMSTART_CACHE_PULL_FIRST: 'always' } : {}),
  });

  // The cache ref as warmstart derives it (so the bench never guesses its naming).
  const refOut = await sh(tools.node, [tools.cli, 'cache', 'ref', repo, '--cache-registry', `${tb.registry}/${runId}-probe`, '--json'], {
    env: warmEnv(null),
  });
  const probeRef = (JSON.parse(refOut.stdout) as { ref: string }).ref;
  const refPath = probeRef.slice(`${tb.registry}/${runId}-probe/`.length); // owner/name:tag
  const movingTag = refPath.slice(refPath.lastIndexOf(':') + 1);
  const repoPathIn = (ns: string): string => `${ns}/${refPath.slice(0, refPath.lastIndexOf(':'))}`;
  const movingRefIn = (ns: string): string => `${tb.registry}/${ns}/${refPath}`;
  const buildkitTag = builderRef(probeRef, 'buildkit').slice(probeRef.lastIndexOf(':') + 1);

  const cases = Object.fromEntries(CASES.map((c) => [c, [] as RunRecord[]])) as Record<CaseName, RunRecord[]>;
  const coldTimeout = quick ? 180_000 : 420_000;
  const warmTimeout = 240_000;
  /** The floor: `docker pull` of the finished image, then the CLI's `up` of an `image:` config (and `docker run -d` timed apart). */
  const floorRun = async (i: number, ref: string, env: NodeJS.ProcessEnv, label: string): Promise<RunRecord> => {
    const rec: RunRecord = { i, ok: false, ms: null };
    try {
      const { pullMs, runMs } = await pullAndRun(ref, runId, env);
      const dir = join(workDir, 'floor', label);
      await mkdir(join(dir, '.devcontainer'), { recursive: true });
      await writeFile(join(dir, '.devcontainer', 'devcontainer.json'), `${JSON.stringify({ image: ref })}\n`);
      const cli = await devcontainerUp(i, { tools, workspaceFolder: dir, runId, caseLabel: `${runId}-${label}`, env, timeoutMs: warmTimeout });
      Object.assign(rec, { pullMs, runMs, upMs: cli.ms ?? undefined, postCreate: cli.postCreate, wallMs: pullMs + runMs + (cli.ms ?? 0) });
      if (!cli.ok) throw new Error(cli.error ?? 'devcontainer up failed');
      rec.ms = pullMs + (cli.ms ?? 0);
      rec.ok = true;
    } catch (err) {
      rec.error = (err as Error).message;
    }
    return rec;
  };
  const serves: ServeMeasurement[] = [];
  let serve: ServeMeasurement | null = null;
  let pinning: PinMeasurement | null = null;
  let signature: SignatureMeasurement | null = null;
  let lxd: MachineUpBenchResult | null = null;

  const report = (c: CaseName, r: RunRecord): void => {
    cases[c].push(r);
    const bits = [`${c} #${r.i}: ${r.ok ? secs(r.ms) : 'FAILED'}`];
    if (r.hit) bits.push(`hit ${r.hit}${r.hitMismatch ? ` (EXPECTED ${r.expectedHit})` : ''}`);
    if (r.readyMs !== undefined && c !== 'push-on') bits.push(`ready ${secs(r.readyMs)}`);
    if (r.push) bits.push(`push ${r.push.status}${r.push.ms !== null ? ` ${secs(r.push.ms)}` : ''}`);
    if (r.pullMs !== undefined) bits.push(`pull ${secs(r.pullMs)} run ${secs(r.runMs)} up ${secs(r.upMs)}`);
    if (r.peakRssMb !== undefined && r.peakRssMb !== null) bits.push(`rss ${r.peakRssMb} MB`);
    if (r.postCreate === false) bits.push('NO postCreate marker');
    if (r.error) bits.push(`error: ${r.error.slice(0, 600)}`);
    log(bits.join(', '));
    if (r.hitMismatch) warn(`${c} #${r.i}: warmstart reported cache.hit "${r.hit}", the case expects "${r.expectedHit}"`);
    if (r.postCreate === false) warn(`${c} #${r.i}: the postCreateCommand marker is missing in the container`);
    if (r.leftoverImages) warn(`${c} #${r.i}: ${r.leftoverImages} image(s) of this run were still on the engine at its start (not a fresh node)`);
  };

  /** A fresh node: no containers of the bench, no image of this run. Returns how many images could not be removed. */
  const freshNode = async (env?: NodeJS.ProcessEnv): Promise<number> => {
    await removeContainers(`${BENCH_CONTAINER_LABEL}=${runId}`, env);
    const { left } = await wipeRunImages(runId, [], env);
    // BuildKit keeps a build cache of its own beside the images: a fresh node has none.
    if (env) await docker(['builder', 'prune', '-af'], env);
    return left;
  };

  /**
   * One run of a case: a fresh node first, then `fn(attempt)`. A run whose
   * build failed because another build on this engine retagged the CLI's
   * shared feature-content image is not warmstart's doing: it is retried (at
   * most twice) and the retry is recorded. Other workloads seen on the
   * machine during the run are recorded too.
   */
  const MAX_RETRIES = 2;
  const measure = async (c: CaseName, i: number, fn: (attempt: number) => Promise<RunRecord>, nodeEnv?: NodeJS.ProcessEnv): Promise<RunRecord> => {
    let r: RunRecord = { i, ok: false, ms: null };
    for (let attempt = 0; attempt <= MAX_RETRIES; attempt++) {
      const left = await freshNode(nodeEnv);
      const t0 = performance.now();
      try {
        r = { ...(await fn(attempt)), leftoverImages: left };
      } catch (err) {
        // the bench's own setup for the run failed (registry call, docker): a failed run, not a failed bench
        r = { i, ok: false, ms: null, error: `bench setup: ${(err as Error).message}`, leftoverImages: left };
      }
      const others = watch.seenBetween(t0, performance.now());
      if (others.length) r.contention = others;
      if (attempt > 0) r.retries = attempt;
      if (!r.featureContentCollision || attempt === MAX_RETRIES) break;
      warn(`${c} #${i}: the build lost its feature content to another build on this engine (dev_container_feature_content_temp); retrying`);
    }
    report(c, r);
    if (r.contention) warn(`${c} #${i}: other workloads ran on this machine meanwhile (timing disturbed): ${r.contention.slice(0, 3).join(' | ')}`);
    return r;
  };

  const watch = new ContentionWatch();
  const quietWaitMs = Number(values['wait-quiet'] ?? 0) * 1000;
  if (quietWaitMs > 0) {
    const until = performance.now() + quietWaitMs;
    let quietSince = performance.now();
    let shown = '';
    while (performance.now() < until && performance.now() - quietSince < 10_000) {
      const others = await watch.now();
      if (others.length) {
        if (others.join(', ') !== shown) log(`waiting for other workloads to end: ${(shown = others.join(', '))}`);
        quietSince = performance.now();
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
    // The budget and the total wall time count from here, not from the wait.
    waitedMs = Math.round(performance.now() - started);
    started = performance.now();
    log(`waited ${secs(waitedMs)} for a quiet machine`);
  }
  watch.start();
  const before = await watch.now();
  if (before.length) warn(`other workloads are running on this machine at the start (timings will be disturbed): ${before.slice(0, 3).join(' | ')}`);
  let exitCode = 0;
  try {
    for (let i = 1; i <= (only.has('cases') ? N : 0); i++) {
      const iterStart = performance.now();
      const ns = `${runId}-c${i}`;
      namespaces.add(ns);
      const ws = (c: string, attempt: number): string => {
        const id = `${runId}-${c}-${i}${attempt ? `r${attempt}` : ''}`;
        workspaceIds.add(id);
        return id;
      };
      const up = (c: string, attempt: number, o: { noCache?: boolean; noPush?: boolean; expectedHit: string; timeoutMs: number }) =>
        warmstartUp(i, { tools, repo, workspaceId: ws(c, attempt), env: warmEnv(ns), stateDir, ...o });

      // plain-cold: what a user does today.
      await measure('plain-cold', i, (a) =>
        devcontainerUp(i, { tools, workspaceFolder: repo, runId, caseLabel: `${runId}-plain-${i}-${a}`, timeoutMs: coldTimeout }),
      );

      // overhead: warmstart with the cache disabled, right after plain-cold.
      await measure('overhead', i, (a) => up('ovh', a, { noCache: true, expectedHit: 'disabled', timeoutMs: coldTimeout }));

      // warm-cold: an empty namespace; its push seeds the cases below.
      const cold = await measure('warm-cold', i, (a) => up('cold', a, { expectedHit: 'miss', timeoutMs: coldTimeout }));
      const seeded = (await registry.digest(repoPathIn(ns), movingTag)) !== null;
      if (!seeded) {
        warn(
          `warm-cold #${i} left no moving tag in ${repoPathIn(ns)} (push ${cold.push?.status ?? '?'}: ${cold.push?.reason ?? ''}): floor, warm-* and push-* of run ${i} are skipped`,
        );
        for (const c of ['floor', 'warm-exact', 'warm-layers', 'push-on', 'push-off'] as const) {
          cases[c].push({ i, ok: false, ms: null, error: 'no cache image in the registry (warm-cold did not push)' });
        }
        continue;
      }
      const exactTags = async (): Promise<boolean> => (await registry.tags(repoPathIn(ns))).some((t) => t.startsWith('exact-'));

      // floor: pull the finished image, start it without and with the CLI.
      await measure('floor', i, (a) => floorRun(i, movingRefIn(ns), dockerEnv, `floor-${i}-${a}`));

      // warm-exact: the exact tag warm-cold pushed.
      const hadExact = await exactTags();
      if (!hadExact) warn(`warm-exact #${i}: the registry holds no exact-* tag after warm-cold's push (warmstart did not push one)`);
      await measure('warm-exact', i, async (a) => ({
        ...(await up('exact', a, { expectedHit: 'exact', timeoutMs: warmTimeout })),
        exactTagInRegistry: hadExact,
      }));

      // warm-layers (= push-on): the moving tag only.
      const layers = await measure('warm-layers', i, async (a) => {
        await newExactKey(repo, `warm-layers ${i}.${a}`);
        return { ...(await up('layers', a, { expectedHit: 'layers', timeoutMs: warmTimeout })), exactTagInRegistry: false };
      });
      cases['push-on'].push({ ...layers, ms: layers.ok ? (layers.readyMs ?? null) : null });

      // push-off: the same situation, --no-push.
      await measure('push-off', i, async (a) => {
        await newExactKey(repo, `push-off ${i}.${a}`);
        const r = await up('nopush', a, { noPush: true, expectedHit: 'layers', timeoutMs: warmTimeout });
        // push-on/push-off compare timings.ready (the brief's measure), not spawn→ready.
        return { ...r, ms: r.ok ? (r.readyMs ?? null) : null, exactTagInRegistry: false };
      });

      // Node 2 (engine 26, BuildKit): its own namespace, since node 1's exact tag would be a hit there.
      const ns2 = `${runId}-k${i}`;
      namespaces.add(ns2);
      const up2 = (c: string, attempt: number, o: { expectedHit: string; timeoutMs: number; pullFirst?: boolean }) =>
        warmstartUp(i, { tools, repo, workspaceId: ws(c, attempt), env: warmEnv2(ns2, o.pullFirst), stateDir, ...o });
      await measure(
        'bk-plain-cold',
        i,
        (a) =>
          devcontainerUp(i, { tools, workspaceFolder: repo, runId, caseLabel: `${runId}-bkplain-${i}-${a}`, env: node2Env, timeoutMs: coldTimeout }),
        node2Env,
      );
      const cold2 = await measure('bk-warm-cold', i, (a) => up2('bkcold', a, { expectedHit: 'miss', timeoutMs: coldTimeout }), node2Env);
      if ((await registry.digest(repoPathIn(ns2), buildkitTag)) === null) {
        warn(
          `bk-warm-cold #${i} left no BuildKit moving tag (push ${cold2.push?.status ?? '?'}: ${cold2.push?.reason ?? ''}): node 2's warm cases of run ${i} are skipped`,
        );
        for (const c of ['bk-floor', 'bk-warm-exact', 'bk-warm-layers', 'bk-pull-first'] as const) {
          cases[c].push({ i, ok: false, ms: null, error: 'no BuildKit cache image in the registry (bk-warm-cold did not push)' });
        }
      } else {
        await measure('bk-floor', i, (a) => floorRun(i, `${tb.registry}/${repoPathIn(ns2)}:${buildkitTag}`, node2Env, `bkfloor-${i}-${a}`), node2Env);
        await measure('bk-warm-exact', i, (a) => up2('bkexact', a, { expectedHit: 'exact', timeoutMs: warmTimeout }), node2Env);
        // The layer cases alternate which goes first, so neither always runs on a warmer machine.
        const layerCases = [
          ['bk-warm-layers', false],
          ['bk-pull-first', true],
        ] as const;
        for (const [c, pullFirst] of i % 2 === 0 ? [...layerCases].reverse() : layerCases) {
          await measure(
            c,
            i,
            async (a) => {
              await newExactKey(repo, `${c} ${i}.${a}`);
              return {
                ...(await up2(c === 'bk-warm-layers' ? 'bklayers' : 'bkpull', a, { expectedHit: 'layers', timeoutMs: warmTimeout, pullFirst })),
                exactTagInRegistry: false,
              };
            },
            node2Env,
          );
        }
      }

      const elapsed = performance.now() - started;
      const perIter = performance.now() - iterStart;
      const projected = elapsed + perIter * (N - i) + 60_000;
      log(`run ${i}/${N} took ${secs(perIter)}; projected total ${clock(projected)} (budget ${clock(BUDGET_MS)} incl. build)`);
      if (i === 1 && N > 1 && projected > BUDGET_MS - 60_000) warn(`projected total ${clock(projected)} is close to or over the 25-minute budget`);
    }

    // warmstart serve: memory and /health under load, --serve-runs times from a fresh node each.
    for (let k = 1; k <= (only.has('serve') ? serveRuns : 0); k++) {
      await freshNode();
      log(`warmstart serve${serveRuns > 1 ? ` (${k}/${serveRuns})` : ''}: idle 20 s, then 3 small jobs (2 build at once)`);
      const serveT0 = performance.now();
      const serveNs = `${runId}-serve${k}`;
      namespaces.add(serveNs);
      const one = await measureServe({
        cli: tools.cli,
        workDir,
        runId,
        attempt: k,
        baseImage: tb.baseImage,
        env: { ...warmEnv(null) },
        registry: tb.registry,
        registryUser: tb.registryUser,
        registryPassword: tb.registryPassword,
        namespace: serveNs,
        quick,
        workspaceIds,
        timeoutMs: 240_000,
        nodeArgs: (values['serve-node-args'] ?? (await unitNodeOptions())).split(' ').filter((a) => a !== ''),
      });
      log(serveRow(one));
      for (const e of one.errors) warn(`serve: ${e}`);
      const serveOthers = watch.seenBetween(serveT0, performance.now());
      if (serveOthers.length) {
        one.contention = serveOthers;
        warn(`serve: other workloads ran on this machine meanwhile: ${serveOthers.slice(0, 3).join(' | ')}`);
      }
      for (const j of one.jobs) if (j.status !== 'ready') warn(`serve job ${j.id} ended ${j.status}${j.error ? `: ${j.error}` : ''}`);
      serves.push(one);
    }
    serve = medianServe(serves);
    if (serve && serves.length > 1) log(`serve, medians over ${serves.length} runs: ${serveRow(serve)}`);

    // Pinning bases and remote features (manifest HEADs beside the content key): what it adds to a start.
    if (only.has('pinning')) {
      pinning = await measurePinning({ runs: 20, baseImage: tb.baseImage });
      log(pinRow(pinning));
    }

    // Checking a cache image's signature, as a start with WARMSTART_CACHE_TRUSTED_KEYS does (moving + exact tag).
    if (only.has('signature')) {
      signature = await measureSignatureCheck({ runs: 20, registry: tb.registry, username: tb.registryUser, password: tb.registryPassword });
      log(signatureRow(signature));
    }

    // machine up on a cache hit vs the raw launch of the same image, on real LXD.
    if (!only.has('lxd')) {
      // not asked for
    } else if (tb.lxd) {
      log('machine up (incus backend on LXD): cache hit vs raw lxc launch');
      lxd = await benchMachineUpHit({
        socket: tb.lxd.socket,
        baseImage: tb.lxd.image,
        prefix: `b${runId.replace(/[^a-z0-9]/g, '')}`,
        runs: Math.max(N, 9),
      });
      log(`machine up hit median ${lxd.medianHitMs} ms vs raw lxc launch ${lxd.medianRawLaunchMs} ms: ratio ${round(lxd.ratio, 2)}`);
    } else warn('no LXD in the testbed: machine up vs lxc launch not measured');
  } catch (err) {
    exitCode = 1;
    warn(`bench aborted: ${(err as Error).stack ?? String(err)}`);
  } finally {
    watch.stop();
    log('cleaning up: containers, workspaces, images of this run, registry namespaces, work dir');
    await removeContainers(`${BENCH_CONTAINER_LABEL}=${runId}`);
    await removeContainers(`${BENCH_CONTAINER_LABEL}=${runId}`, node2Env);
    for (const id of workspaceIds) {
      await removeWorkspace(id);
      await removeWorkspace(id, node2Env);
    }
    await freshNode(node2Env);
    const { left } = await wipeRunImages(runId);
    if (left > 0) warn(`${left} image(s) labelled ${runId} could not be removed`);
    for (const ns of namespaces) {
      for (const repoPath of [repoPathIn(ns), `${ns}/bench/small-1`, `${ns}/bench/small-2`, `${ns}/bench/small-3`]) {
        await registry.purgeRepository(repoPath).catch(() => undefined);
      }
    }
    await rm(workDir, { recursive: true, force: true }).catch(() => undefined);
    if ((await runImages(runId)).length > 0) warn('images of this run are still on the engine');
  }

  // --- results -------------------------------------------------------------
  const totalWallMs = Math.round(performance.now() - started);
  const values_ = (c: CaseName): (number | null)[] => {
    const byI = new Map(cases[c].map((r) => [r.i, r.ok ? r.ms : null]));
    return Array.from({ length: N }, (_, k) => byI.get(k + 1) ?? null);
  };
  const ratioDefs: [string, CaseName, CaseName, number][] = [
    ['warm-layers/plain-cold', 'warm-layers', 'plain-cold', 0.15],
    ['warm-layers/floor', 'warm-layers', 'floor', 1.3],
    ['warm-exact/floor', 'warm-exact', 'floor', 1.1],
    ['push-on/push-off', 'push-on', 'push-off', 1.05],
    ['overhead/plain-cold', 'overhead', 'plain-cold', 1.1],
    ['BuildKit warm-exact/floor', 'bk-warm-exact', 'bk-floor', 1.1],
    ['BuildKit warm-layers/plain-cold', 'bk-warm-layers', 'bk-plain-cold', 0.15],
    ['BuildKit warm-layers/floor', 'bk-warm-layers', 'bk-floor', 1.3],
    // Whether the build should wait for the moving pull under BuildKit: ≤ 1 says not waiting is no slower.
    ['BuildKit no-wait/pull-first', 'bk-warm-layers', 'bk-pull-first', 1.0],
  ];
  const ratios: Record<string, PairRatio & { goal: number }> = {};
  for (const [name, a, b, g] of ratioDefs) {
    const r = pairRatio(values_(a), values_(b));
    ratios[name] = { median: round(r.median, 3), pairs: r.pairs.map((p) => round(p, 3)), n: r.n, goal: g };
  }

  const upRss = CASES.filter((c) => !['push-on', 'plain-cold', 'floor', 'bk-plain-cold', 'bk-floor'].includes(c))
    .flatMap((c) => cases[c])
    .map((r) => r.peakRssMb)
    .filter((v): v is number => typeof v === 'number');
  const upRssMax = upRss.length ? Math.max(...upRss) : null;

  const goals: Goal[] = [
    ...ratioDefs.map(([name, , , g]) => goal(name, ratios[name]!.median, g, 'ratio (median of per-pair ratios)')),
    goal('peak RSS of warmstart up', upRssMax, 150, 'MB', 'the largest VmHWM of the warmstart process over every warmstart up run of the bench'),
    goal('warmstart serve RSS idle', serve?.idleRssMb ?? null, 80, 'MB', 'VmRSS 5 s after /health first answered'),
    goal('warmstart serve RSS with 3 jobs', serve?.jobsPeakRssMb ?? null, 150, 'MB'),
    goal('/health p99 during 2 builds', serve?.health.p99Ms ?? null, 20, 'ms'),
    goal(
      'signature check per start (moving + exact)',
      signature?.perStartMedianMs ?? null,
      50,
      'ms',
      'twice the median of 20 checks of one signature (manifest + document from the password-protected registry, Ed25519 verify)',
    ),
    goal(
      'pinning: added to a start',
      pinning?.addedMedianMs ?? null,
      100,
      'ms',
      'median over 20 pairs of (content key + HEADs of the bases and features) - (content key alone), bench fixture, real registry',
    ),
  ];

  const phaseMedians = (c: CaseName): Record<string, number | null> => {
    const ok = cases[c].filter((r) => r.ok && r.timings);
    const keys = [...new Set(ok.flatMap((r) => Object.keys(r.timings!)))];
    return Object.fromEntries(keys.map((k) => [k, round(median(ok.map((r) => r.timings![k]).filter((v): v is number => typeof v === 'number')), 0)]));
  };
  const phases = {
    'warm-layers': phaseMedians('warm-layers'),
    'warm-exact': phaseMedians('warm-exact'),
    'warm-cold': phaseMedians('warm-cold'),
    'push-off': phaseMedians('push-off'),
    overhead: phaseMedians('overhead'),
    'bk-warm-exact': phaseMedians('bk-warm-exact'),
    'bk-warm-layers': phaseMedians('bk-warm-layers'),
    'bk-pull-first': phaseMedians('bk-pull-first'),
  };
  /** Median start and end of each phase (ms from the job's first event): which phases overlap. */
  const windowMedians = (c: CaseName): Record<string, { start: number; end: number }> => {
    const ok = cases[c].filter((r) => r.ok && r.phaseWindows);
    const keys = [...new Set(ok.flatMap((r) => Object.keys(r.phaseWindows!)))];
    const pick = (k: string, side: 'start' | 'end'): number =>
      round(median(ok.map((r) => r.phaseWindows![k]?.[side]).filter((v): v is number => typeof v === 'number')), 0) ?? -1;
    return Object.fromEntries(
      keys
        .map((k) => [k, { start: pick(k, 'start'), end: pick(k, 'end') }])
        .sort((a, b) => (a[1] as { start: number }).start - (b[1] as { start: number }).start),
    );
  };
  const phaseWindows = {
    'warm-exact': windowMedians('warm-exact'),
    'bk-warm-exact': windowMedians('bk-warm-exact'),
    'warm-layers': windowMedians('warm-layers'),
    'bk-warm-layers': windowMedians('bk-warm-layers'),
  };

  const caseResults = Object.fromEntries(
    CASES.map((c) => {
      const ok = cases[c].filter((r) => r.ok && r.ms !== null).map((r) => r.ms!);
      const hits = cases[c].map((r) => r.hit).filter((h): h is string => !!h);
      return [
        c,
        {
          medianMs: round(median(ok), 0),
          runs: values_(c),
          measure: MEASURE[c],
          failed: cases[c].filter((r) => !r.ok).length,
          ...(hits.length ? { hits, hitMismatches: cases[c].filter((r) => r.hitMismatch).length } : {}),
          ...(c === 'push-on' ? { sameRunsAs: 'warm-layers' } : {}),
          details: cases[c],
        },
      ];
    }),
  );

  const results = {
    ...caseResults,
    memory: {
      warmstartUpPeakRssMb: { max: upRssMax, medianOfRuns: round(median(upRss), 1), runs: upRss },
      serveIdleRssMb: serve?.idleRssMb ?? null,
      serveWith3JobsPeakRssMb: serve?.jobsPeakRssMb ?? null,
      serveVmHWMMb: serve?.hwmMb ?? null,
      serveJobs: serve?.jobs ?? [],
      serveJobsWallMs: serve?.jobsWallMs ?? null,
      serveEventLoopDelay: serve?.eventLoopDelay ?? null,
      serveMainThread: serve?.mainThread ?? null,
      serveIdleSettledRssMb: serve?.idleSettledRssMb ?? null,
      serveRuns: serves.map((r) => ({
        idleRssMb: r.idleRssMb,
        idleSettledRssMb: r.idleSettledRssMb,
        jobsPeakRssMb: r.jobsPeakRssMb,
        healthP99Ms: r.health.p99Ms,
        eventLoopDelay: r.eventLoopDelay,
        mainThread: r.mainThread,
        contention: r.contention ?? [],
      })),
    },
    health: serve?.health ?? null,
    lxdMachineUp: lxd,
    pinning,
    signature,
    ratios,
    goals,
    phases,
    phaseWindows,
    meta: {
      runId,
      runsPerCase: N,
      rows: [...only],
      serveRuns: serves.length,
      quick,
      fixture: quick
        ? 'QUICK: sleeps 1 s, 5 MB layer (not the real fixture)'
        : 'test/fixtures/repos/bench (sleep 22 + 110 MB layer, sleep 5, feature sleep 4)',
      order:
        'per i: node 1 (classic): plain-cold, overhead, warm-cold, floor, warm-exact, warm-layers (= push-on), push-off; node 2 (BuildKit): bk-plain-cold, bk-warm-cold, bk-floor, bk-warm-exact, bk-warm-layers and bk-pull-first (alternating first); then warmstart serve',
      ratios: 'pair by pair: run i of A / run i of B (adjacent in time), then the median of those ratios',
      startedAt,
      totalWallMs,
      waitedForQuietMs: waitedMs,
      machine: { cpus: cpus().length, memoryGb: round(totalmem() / 2 ** 30, 1) },
      engine,
      devcontainersCli: cliVersion,
      registry: tb.registry,
      serveLogTail: serves.find((r) => r.errors.length > 0 || r.jobs.some((j) => j.status !== 'ready'))?.log,
      otherWorkloads: {
        atStart: before,
        contendedRuns: CASES.filter((c) => c !== 'push-on').flatMap((c) => cases[c].filter((r) => r.contention).map((r) => `${c}#${r.i}`)),
      },
    },
    warnings,
  };
  await mkdir(dirname(outFile), { recursive: true });
  await writeFile(outFile, `${JSON.stringify(results, null, 2)}\n`);

  // --- table ---------------------------------------------------------------
  const out: string[] = [''];
  if (quick) out.push('*** QUICK MODE: not the real fixture; these numbers say nothing about warmstart ***', '');
  out.push(`${'case'.padEnd(14)} ${'median'.padStart(8)}  runs`);
  for (const c of CASES) {
    const r = caseResults[c]!;
    const runs = r.runs.map((v) => (v === null ? 'FAIL' : (v / 1000).toFixed(2))).join(' ');
    const hits = r.hits ? `  hits: ${r.hits.join(',')}` : '';
    out.push(`${c.padEnd(14)} ${secs(r.medianMs).padStart(8)}  ${runs}${hits}`);
  }
  out.push('', 'ratios (median of per-pair ratios, run i of A / run i of B):');
  for (const g of goals) {
    const v = g.value === null ? '—' : g.unit === 'MB' || g.unit === 'ms' ? `${g.value} ${g.unit}` : g.value.toFixed(3);
    const verdict =
      g.met === null
        ? 'no data'
        : g.met
          ? 'goal met'
          : `MISSED by ${g.missedBy}${g.unit === 'MB' || g.unit === 'ms' ? ` ${g.unit}` : ''} (${g.missedByPct}%)`;
    out.push(`  ${g.name.padEnd(34)} ${v.padStart(10)}  goal ≤ ${g.goal}${g.unit === 'MB' || g.unit === 'ms' ? ` ${g.unit}` : ''}: ${verdict}`);
  }
  out.push('', 'phase medians (ms, from timings):');
  for (const [c, p] of Object.entries(phases))
    out.push(
      `  ${c.padEnd(14)} ${Object.entries(p)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
    );
  out.push('', 'phase windows (median start-end, ms from the job start; overlapping windows ran side by side):');
  for (const [c, p] of Object.entries(phaseWindows))
    out.push(
      `  ${c.padEnd(14)} ${Object.entries(p)
        .map(([k, w]) => `${k} ${w.start}-${w.end}`)
        .join(', ')}`,
    );
  if (warnings.length) out.push('', `${warnings.length} warning(s):`, ...warnings.map((w) => `  - ${w}`));
  out.push(
    '',
    `total wall time of the bench (harness only; npm run bench adds the build and testbed check): ${clock(totalWallMs)} (${secs(totalWallMs)})`,
  );
  out.push(`results: ${outFile}`);
  process.stdout.write(`${out.join('\n')}\n`);
  const failed =
    (only.has('cases') && CASES.some((c) => cases[c].length < N || cases[c].some((r) => !r.ok))) ||
    (only.has('serve') && serves.some((r) => r.errors.length > 0 || r.jobs.some((j) => j.status !== 'ready')));
  return exitCode || (failed ? 1 : 0);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
